/**
 * Headquarters' CA in the registry token (issue 15; docs/deployment.md "HQ root ceremony"): the HQ CA key
 * (`hq-ca`, P-256, generated in the token: sensitive, non-extractable) certifies the stations' issuing CAs.
 *  - development (`registry init`, `registry hq-ca init`): a self-signed HQ root for that key; hq-chain.pem = [root];
 *  - production (the offline-root ceremony): `registry hq-ca request` writes a PKCS#10 request for the token key,
 *    the offline root signs it, `registry hq-ca install --chain chain.pem` checks the certificate (for the token key,
 *    a CA that may certify CAs, chaining to the root given as the chain's last certificate) and installs it:
 *    hq-chain.pem = [HQ CA, ..., root], hq-root.pem = the root. The root key never comes near the registry.
 * Files in the data dir (public): hq-chain.pem (HQ CA first, root last), hq-root.pem (what stations pin).
 * Imports core/, native/ (atomic file) and the HsmAdmin type; the X.509 stack (core/pki) inside the functions that
 * use it, so that `HQ_FILES` costs a command nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bytesEqual, sha256Hex } from '../../core/bytes.js';
import { fail } from '../../core/errors.js';
import type { Clock, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { writeFileAtomic } from '../../native/atomic-file.js';

/** The token label of the HQ CA key (and of its certificate object). */
export const HQ_CA_KEY_LABEL = 'hq-ca';
/** The HQ files of a registry data dir. */
export const HQ_FILES = { chain: 'hq-chain.pem', root: 'hq-root.pem' } as const;

/** The open HQ CA: its token signer and its chain (HQ CA certificate first, root last). */
export interface HqCa {
  readonly signer: Signer;
  readonly chain: readonly Uint8Array[];
  readonly rootSha256: string;
}

/** The HQ CA's subject: CN "Line Station HQ CA <registryId>", O = the organisation. */
export const hqCaSubject = (registryId: string, organization: string) => ({
  commonName: `Line Station HQ CA ${registryId}`,
  organization,
});

const missing = (dataDir: string) =>
  fail(
    'CONFIG_NOT_FOUND',
    `this registry has no HQ CA (data dir made before commissioning): run \`registry hq-ca init --data-dir ${dataDir}\` for a development root, or the offline-root ceremony \`registry hq-ca request\` / \`registry hq-ca install\` (docs/deployment.md)`,
  );

/** The HQ CA key's signer, generating the key in the token when `create` and it is not there. */
async function hqKey(hsm: HsmAdmin, create: boolean): Promise<Result<Signer | null>> {
  const found = await hsm.findKey(HQ_CA_KEY_LABEL);
  if (!found.ok) return found;
  if (!found.value) {
    if (!create) return ok(null);
    const g = await hsm.generateSigningKey(HQ_CA_KEY_LABEL, 'P-256');
    if (!g.ok) return g;
  }
  return hsm.signer(HQ_CA_KEY_LABEL);
}

function writeChain(dataDir: string, chain: readonly Uint8Array[]): void {
  writeFileAtomic(join(dataDir, HQ_FILES.chain), chain.map((d) => toPem(d, 'CERTIFICATE')).join(''));
  writeFileAtomic(join(dataDir, HQ_FILES.root), toPem(chain[chain.length - 1]!, 'CERTIFICATE'));
}

/**
 * Development HQ: the HQ CA key in the token and a self-signed root for it (10 years), unless hq-chain.pem exists
 * (idempotent: `created` false). The key stays when a production chain is installed later (same key, same name).
 */
export async function initDevHqCa(o: {
  dataDir: string;
  hsm: HsmAdmin;
  registryId: string;
  organization: string;
  clock: Clock;
}): Promise<Result<{ created: boolean }>> {
  const dir = resolve(o.dataDir);
  if (existsSync(join(dir, HQ_FILES.chain))) return ok({ created: false });
  const signer = await hqKey(o.hsm, true);
  if (!signer.ok) return signer;
  const { createRootCertificate } = await import('../../core/pki/ca.js');
  const root = await createRootCertificate({
    signer: signer.value!,
    subject: hqCaSubject(o.registryId, o.organization),
    validityDays: 3650,
    clock: o.clock,
  });
  if (!root.ok) return root;
  const imp = await o.hsm.importCertificate(HQ_CA_KEY_LABEL, root.value);
  if (!imp.ok) return imp;
  writeChain(dir, [root.value]);
  return ok({ created: true });
}

/** The production ceremony, step 1: a PKCS#10 request (DER) for the token's HQ CA key (generated if absent). */
export async function requestHqCa(o: {
  hsm: HsmAdmin;
  registryId: string;
  organization: string;
}): Promise<Result<{ csr: Uint8Array; publicKeySha256: string }>> {
  const signer = await hqKey(o.hsm, true);
  if (!signer.ok) return signer;
  const { createCsr } = await import('../../core/pki/csr.js');
  const csr = await createCsr(signer.value!, hqCaSubject(o.registryId, o.organization));
  if (!csr.ok) return csr;
  return ok({ csr: csr.value, publicKeySha256: await sha256Hex(signer.value!.publicKeySpki) });
}

/**
 * The production ceremony, step 2: install the HQ CA certificate the offline root issued. `chainPem`: the HQ CA
 * certificate first, the root last (intermediates between). Checks: the first certificate is for the token's HQ CA
 * key, is a CA that may issue CA certificates (pathLen ≥ 1 or none, keyCertSign), valid now; the chain validates to
 * its last certificate, a self-signed root. INPUT_INVALID otherwise; nothing is written then.
 */
export async function installHqCa(o: {
  dataDir: string;
  hsm: HsmAdmin;
  chainPem: string;
  now: Date;
}): Promise<Result<{ rootSha256: string; hqCaSha256: string; notAfter: string }>> {
  const chain = fromPemChain(o.chainPem);
  if (!chain.ok) return fail('INPUT_INVALID', `HQ chain: ${chain.error.message}`);
  if (chain.value.length < 2 || chain.value.length > 4)
    return fail('INPUT_INVALID', 'HQ chain: expected 2..4 certificates, the HQ CA first and the offline root last');
  const signer = await hqKey(o.hsm, false);
  if (!signer.ok) return signer;
  if (!signer.value)
    return fail('INPUT_INVALID', 'no HQ CA key in the registry token: run `registry hq-ca request` first');
  const [hqCa] = chain.value as [Uint8Array];
  const root = chain.value[chain.value.length - 1]!;
  const [{ parseCertificate, verifyCertificateChain }, { loadIssuer }] = await Promise.all([
    import('../../core/pki/chain.js'),
    import('../../core/pki/x509.js'),
  ]);
  const cert = parseCertificate(hqCa, 'HQ CA certificate');
  if (!cert.ok) return fail('INPUT_INVALID', cert.error);
  if (!bytesEqual(new Uint8Array(cert.value.publicKey.rawData), signer.value.publicKeySpki))
    return fail('INPUT_INVALID', 'HQ chain: the first certificate is not for the HQ CA key in the registry token');
  const issuer = loadIssuer({ signer: signer.value, certificate: hqCa }, o.now, true);
  if (!issuer.ok) return fail('INPUT_INVALID', `HQ chain: ${issuer.error.message}`);
  const rootCert = parseCertificate(root, 'HQ root');
  if (!rootCert.ok) return fail('INPUT_INVALID', rootCert.error);
  if (rootCert.value.subject !== rootCert.value.issuer)
    return fail('INPUT_INVALID', 'HQ chain: the last certificate is not a self-signed root');
  const path = await verifyCertificateChain(chain.value.slice(0, -1), [root], o.now);
  if (!path.ok) return fail('INPUT_INVALID', `HQ chain: ${path.error}`);
  if (path.value.path.length !== chain.value.length)
    return fail('INPUT_INVALID', 'HQ chain: every certificate must be on the path from the HQ CA to the root');
  const imp = await o.hsm.importCertificate(HQ_CA_KEY_LABEL, hqCa);
  if (!imp.ok) return imp;
  writeChain(resolve(o.dataDir), chain.value);
  return ok({
    rootSha256: await sha256Hex(root),
    hqCaSha256: await sha256Hex(hqCa),
    notAfter: cert.value.notAfter.toISOString(),
  });
}

/**
 * Open the HQ CA of a data dir: hq-chain.pem and the token key, which must be the chain's first certificate's.
 * CONFIG_NOT_FOUND (saying what to run) when the data dir has none, CONFIG_INVALID when they do not match.
 */
export async function openHqCa(dataDir: string, hsm: Pick<HsmAdmin, 'findKey' | 'signer'>): Promise<Result<HqCa>> {
  const dir = resolve(dataDir);
  const file = join(dir, HQ_FILES.chain);
  if (!existsSync(file)) return missing(dir);
  const chain = fromPemChain(readFileSync(file, 'utf8'));
  if (!chain.ok) return fail('CONFIG_INVALID', `${file}: ${chain.error.message}`);
  const found = await hsm.findKey(HQ_CA_KEY_LABEL);
  if (!found.ok) return found;
  if (!found.value) return missing(dir);
  const signer = await hsm.signer(HQ_CA_KEY_LABEL);
  if (!signer.ok) return signer;
  const { parseCertificate } = await import('../../core/pki/chain.js');
  const cert = parseCertificate(chain.value[0]!, 'HQ CA certificate');
  if (!cert.ok) return fail('CONFIG_INVALID', `${file}: ${cert.error}`);
  if (!bytesEqual(new Uint8Array(cert.value.publicKey.rawData), signer.value.publicKeySpki))
    return fail('CONFIG_INVALID', `${file}: the first certificate is not for the HQ CA key in the registry token`);
  return ok({
    signer: signer.value,
    chain: chain.value,
    rootSha256: await sha256Hex(chain.value[chain.value.length - 1]!),
  });
}
