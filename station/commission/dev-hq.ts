/**
 * The development headquarters of `station init`: an HQ root key in its own SoftHSM2 token ("LS Offline Root"), its
 * self-signed root certificate (pki/root.pem of the data dir), and the issuing side of commissioning with the same
 * core functions the registry uses (core/hq/commission-issue.ts): check the request, issue the station CA (path
 * length 0), answer signed with the root key. The station pins that root, so its chain is station -> station CA ->
 * dev HQ root, as a production station's is station -> station CA -> HQ (intermediate) -> HQ root.
 * For development and tests only: a real HQ root never sits on a station.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DEFAULT_ORGANIZATION } from '../../core/hq/commission.js';
import { checkCommissionRequest, issueStationCa, signCommissionAnswer } from '../../core/hq/commission-issue.js';
import { createRootCertificate, type SimpleSubject } from '../../core/pki/ca.js';
import { fromPem, toPem } from '../../core/pki/pem.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';

/** The registry id the development HQ names in its answers. */
export const DEV_HQ_ID = 'development-hq';

export interface DevHq {
  /** The root certificate (DER): the station pins it. */
  readonly root: Uint8Array;
  /** Answer a commissioning request (checked first), signed with the root key. */
  answer(requestJws: string): Promise<Result<string>>;
  close(): Promise<void>;
}

export interface DevHqOptions {
  readonly module: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** The root key's label in the token. */
  readonly keyLabel: string;
  /** The root certificate file: made with the key the first time, read afterwards (the key must match it). */
  readonly rootFile: string;
  readonly subject: SimpleSubject;
  readonly rootDays: number;
  readonly issuingCaDays: number;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** Open (or, the first time, create: key + root certificate) the development HQ. */
export async function openDevHq(o: DevHqOptions): Promise<Result<DevHq>> {
  const h = await openHsm({ module: o.module, tokenLabel: o.tokenLabel, pin: o.pin, logger: o.logger });
  if (!h.ok) return h;
  const hsm = h.value;
  const made = await rootOf(hsm, o);
  if (!made.ok) {
    await hsm.close();
    return made;
  }
  const { signer, root } = made.value;
  return ok({
    root,
    answer: (requestJws) => answer(requestJws, signer, root, o),
    close: () => hsm.close(),
  });
}

async function rootOf(hsm: HsmAdmin, o: DevHqOptions): Promise<Result<{ signer: Signer; root: Uint8Array }>> {
  const key = await hsm.findKey(o.keyLabel);
  if (!key.ok) return key;
  if (!key.value) {
    const g = await hsm.generateSigningKey(o.keyLabel, 'P-256');
    if (!g.ok) return g;
  }
  const signer = await hsm.signer(o.keyLabel);
  if (!signer.ok) return signer;
  if (existsSync(o.rootFile)) {
    const root = fromPem(readFileSync(o.rootFile, 'utf8'), 'CERTIFICATE');
    if (!root.ok) return root;
    return ok({ signer: signer.value, root: root.value });
  }
  const root = await createRootCertificate({
    signer: signer.value,
    subject: o.subject,
    validityDays: o.rootDays,
    clock: o.clock,
  });
  if (!root.ok) return root;
  const imp = await hsm.importCertificate(o.keyLabel, root.value);
  if (!imp.ok) return imp;
  writeFileAtomic(o.rootFile, toPem(root.value, 'CERTIFICATE'));
  return ok({ signer: signer.value, root: root.value });
}

async function answer(requestJws: string, signer: Signer, root: Uint8Array, o: DevHqOptions): Promise<Result<string>> {
  const now = o.clock.now();
  const verified = await checkCommissionRequest(requestJws, { organization: DEFAULT_ORGANIZATION, now });
  if (!verified.ok) return verified;
  const ca = await issueStationCa({
    hqIssuer: { signer, certificate: root },
    verified: verified.value,
    validityDays: o.issuingCaDays,
    now,
  });
  if (!ca.ok) return ca;
  const signed = await signCommissionAnswer({
    signer,
    signerCertificate: root,
    registryId: DEV_HQ_ID,
    verified: verified.value,
    caCertificate: ca.value.der,
    hqChain: [root],
    workOrders: [],
    now,
  });
  return signed.ok ? ok(signed.value.jws) : signed;
}
