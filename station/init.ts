/**
 * `station init`: create a development station in a data dir.
 *
 * - two SoftHSM2 tokens: "LS Offline Root" (the root CA key: in production it lives offline and is
 *   never attached to a station) and "LS Station" (issuing CA key + station signing key, both
 *   generated inside the token, sensitive and never extractable: neither can leave the token, not even wrapped,
 *   docs/hsm.md);
 * - the chain root -> issuing CA -> (device certificates, station certificate), PEM files in pki/
 *   and certificate objects in the station token;
 * - config.json, the SQLite database with its first audit entry.
 *
 * Development PINs are random and kept in 0600 files under secrets/; production stations use a vendor
 * PKCS#11 module and take the PIN from the environment (see docs/hsm.md).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { sha256Hex } from '../core/bytes.js';
import { fail } from '../core/errors.js';
import type { Logger, Clock } from '../core/ports.js';
import { systemClock } from '../core/ports.js';
import { ok, type Result } from '../core/result.js';
import { createRootCertificate, issueCaCertificate, issueStationCertificate } from '../core/pki/ca.js';
import { fromPem, toPem } from '../core/pki/pem.js';
import { openHsm } from '../native/hsm/index.js';
import { createSoftHsmEnv, initToken, findSoftHsmModule } from '../native/softhsm-dev.js';
import { openStore } from '../native/store/index.js';
import { checkStationDataDir, CONFIG_FILE, type StationConfig } from './config.js';
import { writeFileAtomic } from '../native/atomic-file.js';
import { preparePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../native/data-dir.js';
import { PACKAGE_ROOT } from '../native/package-root.js';

export const REPO_ROOT = PACKAGE_ROOT;

export const ROOT_TOKEN = 'LS Offline Root';
export const STATION_TOKEN = 'LS Station';
export const KEY_LABELS = { root: 'root-ca', issuingCa: 'issuing-ca', station: 'station-signing' } as const;

/**
 * Certificate lifetimes of a new station (docs/formats.md "Device certificate profile"). Device certificates are
 * valid `validityDays` of their board profile (3,650 days for the bundled ones) but never past the issuing CA's
 * notAfter (core/pki/device-cert.ts caps them). The issuing CA lives 20 years so that a board certified in its first
 * 10 years gets its full 10 years; after that, device certificates come out shorter (capped, and `station` warns at
 * start-up), the sign to give the station a new issuing CA. The root outlives the issuing CA (30 years); the
 * station's own signing certificate is short (825 days) and rotated (`station rotate-key`).
 */
export const ROOT_CA_DAYS = 30 * 365;
export const ISSUING_CA_DAYS = 20 * 365;
export const STATION_CERT_DAYS = 825;

export interface InitOptions {
  readonly dataDir: string;
  readonly stationId?: string;
  /** Vendor attestation root certificates (PEM files) to trust. */
  readonly attestationRoots: readonly string[];
  readonly extraPorts?: readonly string[];
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** Initialise a development station (idempotent: an initialised data dir is left as it is). */
export async function initStation(o: InitOptions): Promise<Result<{ created: boolean; config: StationConfig }>> {
  const clock = o.clock ?? systemClock;
  const dir = resolve(o.dataDir);
  const cfgFile = join(dir, CONFIG_FILE);
  if (existsSync(cfgFile)) {
    const insecure = checkStationDataDir(dir);
    if (!insecure.ok) return insecure;
    return ok({ created: false, config: JSON.parse(readFileSync(cfgFile, 'utf8')) as StationConfig });
  }
  if (o.attestationRoots.length === 0)
    return fail('CONFIG_INVALID', 'at least one --attestation-root (vendor root PEM) is required');
  for (const f of o.attestationRoots)
    if (!existsSync(f)) return fail('CONFIG_INVALID', `attestation root ${f} not found`);
  const log = o.logger.child('[init]');
  // Private from the first write (docs/architecture.md "Data directory permissions"): a folder made by hand for the
  // station (e.g. 0755) is tightened to 0700; another user's folder is refused.
  const own = preparePrivateDir(dir);
  if (!own.ok) return own;
  for (const d of ['', 'secrets', 'pki', 'pki/attestation-roots', 'logs']) {
    mkdirSync(join(dir, d), { recursive: true, mode: PRIVATE_DIR_MODE });
    chmodSync(join(dir, d), PRIVATE_DIR_MODE);
  }

  const module = findSoftHsmModule();
  if (!module) return fail('HSM_MODULE_LOAD_FAILED', 'SoftHSM2 is not installed (apt-get install softhsm2)');
  const env = await createSoftHsmEnv(join(dir, 'hsm'));
  const pins = {
    rootSo: randomBytes(12).toString('hex'),
    rootUser: randomBytes(12).toString('hex'),
    so: randomBytes(12).toString('hex'),
    user: randomBytes(12).toString('hex'),
  };
  writeFileSync(join(dir, 'secrets', 'root-user.pin'), pins.rootUser, { mode: PRIVATE_FILE_MODE });
  writeFileSync(join(dir, 'secrets', 'root-so.pin'), pins.rootSo, { mode: PRIVATE_FILE_MODE });
  writeFileSync(join(dir, 'secrets', 'hsm-so.pin'), pins.so, { mode: PRIVATE_FILE_MODE });
  writeFileSync(join(dir, 'secrets', 'hsm-user.pin'), pins.user, { mode: PRIVATE_FILE_MODE });

  const t1 = await initToken(env, { label: ROOT_TOKEN, soPin: pins.rootSo, pin: pins.rootUser });
  if (!t1.ok) return t1;
  const t2 = await initToken(env, { label: STATION_TOKEN, soPin: pins.so, pin: pins.user });
  if (!t2.ok) return t2;
  log.log('info', 'SoftHSM2 tokens created', { tokens: [ROOT_TOKEN, STATION_TOKEN] });

  // Root CA: generated in its own token.
  const rootHsm = await openHsm({ module: env.module, tokenLabel: ROOT_TOKEN, pin: pins.rootUser, logger: log });
  if (!rootHsm.ok) return rootHsm;
  const stationHsm = await openHsm({ module: env.module, tokenLabel: STATION_TOKEN, pin: pins.user, logger: log });
  if (!stationHsm.ok) return stationHsm;
  try {
    const rk = await rootHsm.value.generateSigningKey(KEY_LABELS.root, 'P-256');
    if (!rk.ok) return rk;
    const rootSigner = await rootHsm.value.signer(KEY_LABELS.root);
    if (!rootSigner.ok) return rootSigner;
    const root = await createRootCertificate({
      signer: rootSigner.value,
      subject: { commonName: `Line Station Dev Root CA (${o.stationId ?? 'station'})`, organization: 'Line Station' },
      validityDays: ROOT_CA_DAYS,
      clock,
    });
    if (!root.ok) return root;

    // Sensitive, never extractable, not copyable (docs/hsm.md "Key attributes"): the issuing CA key never leaves
    // the station token, not even wrapped. Headquarters signs CRLs and OCSP with its own delegated key instead
    // (station/revocation-signer.ts, docs/lifecycle.md "Delegated revocation signer").
    const ck = await stationHsm.value.generateSigningKey(KEY_LABELS.issuingCa, 'P-256');
    if (!ck.ok) return ck;
    const sk = await stationHsm.value.generateSigningKey(KEY_LABELS.station, 'P-256');
    if (!sk.ok) return sk;
    const stationId = o.stationId ?? `station-${randomBytes(3).toString('hex')}`;
    const ca = await issueCaCertificate({
      issuer: { signer: rootSigner.value, certificate: root.value },
      subjectPublicKeySpki: ck.value.publicKeySpki,
      subject: { commonName: `Line Station Issuing CA ${stationId}`, organization: 'Line Station' },
      validityDays: ISSUING_CA_DAYS,
      pathLength: 0,
      clock,
    });
    if (!ca.ok) return ca;
    const caSigner = await stationHsm.value.signer(KEY_LABELS.issuingCa);
    if (!caSigner.ok) return caSigner;
    const st = await issueStationCertificate({
      issuer: { signer: caSigner.value, certificate: ca.value },
      subjectPublicKeySpki: sk.value.publicKeySpki,
      stationId,
      validityDays: STATION_CERT_DAYS,
      clock,
    });
    if (!st.ok) return st;
    for (const [label, der] of [
      [KEY_LABELS.issuingCa, ca.value],
      [KEY_LABELS.station, st.value],
      [KEY_LABELS.root, root.value],
    ] as const) {
      const imp = await stationHsm.value.importCertificate(label, der);
      if (!imp.ok) return imp;
    }
    const pem = (ders: Uint8Array[]) => ders.map((d) => toPem(d, 'CERTIFICATE')).join('');
    writeFileAtomic(join(dir, 'pki', 'root.pem'), pem([root.value]));
    writeFileAtomic(join(dir, 'pki', 'ca-chain.pem'), pem([ca.value, root.value]));
    writeFileAtomic(join(dir, 'pki', 'station-chain.pem'), pem([st.value, ca.value, root.value]));
    const roots: string[] = [];
    for (const f of o.attestationRoots) {
      const text = readFileSync(f, 'utf8');
      const parsed = fromPem(text);
      if (!parsed.ok) return fail('CONFIG_INVALID', `attestation root ${f}: ${parsed.error.message}`);
      const rel = join('pki', 'attestation-roots', basename(f));
      writeFileAtomic(join(dir, rel), text); // a copy would keep the source file's mode
      roots.push(rel);
    }

    const config: StationConfig = {
      schema: 'line-station/station-config/v1',
      stationId,
      hsm: {
        module: env.module,
        tokenLabel: STATION_TOKEN,
        softhsmConf: env.conf,
        pin: { file: 'secrets/hsm-user.pin' },
        keys: { issuingCa: KEY_LABELS.issuingCa, station: KEY_LABELS.station },
      },
      pki: { caChain: 'pki/ca-chain.pem', stationChain: 'pki/station-chain.pem', attestationRoots: roots },
      paths: {
        profilesDir: join(REPO_ROOT, 'resources', 'boards'),
        workOrdersDir: join(REPO_ROOT, 'resources', 'work-orders'),
      },
      ports: { extra: [...(o.extraPorts ?? [])], pollMs: 250 },
    };
    const store = openStore(join(dir, 'station.db'));
    if (!store.ok) return store;
    store.value.appendAudit('station.init', {
      stationId,
      tokenLabel: STATION_TOKEN,
      rootSha256: await sha256Hex(root.value),
      issuingCaSha256: await sha256Hex(ca.value),
      stationCertSha256: await sha256Hex(st.value),
    });
    store.value.close();
    writeFileAtomic(cfgFile, JSON.stringify(config, null, 2) + '\n');
    log.log('info', 'station initialised', { stationId, dataDir: dir });
    return ok({ created: true, config });
  } finally {
    await rootHsm.value.close();
    await stationHsm.value.close();
  }
}
