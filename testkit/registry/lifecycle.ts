/**
 * Test support: a station PKI whose issuing CA key is generated in a real station HSM token (sensitive, never
 * extractable, as `station init` makes it). Root and station keys are test signers. Also: a lifecycle registry on
 * loopback (startLifecycleRegistry) and the delegated revocation signer exchange over HTTP (delegateOverHttp).
 */
import { systemClock, type Clock } from '../../core/ports.js';
import { createRootCertificate, issueCaCertificate, issueStationCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../pki/test-signer.js';
import { must } from '../pki/test-util.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { delegateRevocationSigner, type DelegationOutcome } from '../../station/revocation-signer.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { startRegistry, type RunningRegistry } from '../../registry/http/server.js';
import type { TestStation } from './fixtures.js';
import { quietLogger } from './harness.js';
import { type LifecycleConfig } from '../../registry/common/context.js';

export type HsmStation = TestStation & { readonly caLabel: string; readonly root: Uint8Array; readonly ca: Uint8Array };

/** Make station `id` with its issuing CA key generated in `stationHsm` (validity in days per certificate). */
export async function createHsmStation(
  stationHsm: HsmAdmin,
  id: string,
  o: { workOrder?: string; validityDays?: { root: number; ca: number; station: number } } = {},
): Promise<HsmStation> {
  const days = o.validityDays ?? { root: 3650, ca: 1825, station: 365 };
  const caLabel = `issuing-ca-${id}`;
  must(await stationHsm.generateSigningKey(caLabel, 'P-256'));
  const caSigner = must(await stationHsm.signer(caLabel));
  const rootSigner = await createTestSigner('P-256');
  const signer = await createTestSigner('P-256');
  const clock = systemClock;
  const root = must(
    await createRootCertificate({
      signer: rootSigner,
      subject: { commonName: `Root ${id}` },
      validityDays: days.root,
      clock,
    }),
  );
  const ca = must(
    await issueCaCertificate({
      issuer: { signer: rootSigner, certificate: root },
      subjectPublicKeySpki: caSigner.publicKeySpki,
      subject: { commonName: `Issuing CA ${id}` },
      validityDays: days.ca,
      pathLength: 0,
      clock,
    }),
  );
  const stc = must(
    await issueStationCertificate({
      issuer: { signer: caSigner, certificate: ca },
      subjectPublicKeySpki: signer.publicKeySpki,
      stationId: id,
      validityDays: days.station,
      clock,
    }),
  );
  const chain = [stc, ca, root];
  return {
    id,
    signer,
    caSigner: caSigner as TestSigner,
    chain,
    chainPem: chain.map((d) => toPem(d, 'CERTIFICATE')).join(''),
    workOrder: o.workOrder ?? 'WO-LC-1',
    caLabel,
    root,
    ca,
  };
}

/**
 * A registry on loopback for tests: a fresh self-signed registry key (test signer; its certificate is
 * `reg.context.registryChain[0]`), the admin token, and `lifecycle` (registry HSM, officer token hash, failpoints...).
 */
export async function startLifecycleRegistry(
  db: RegistryDb | string,
  o: { registryId: string; adminToken: string; lifecycle?: LifecycleConfig; clock?: Clock },
): Promise<RunningRegistry> {
  const signer = await createTestSigner('P-256');
  const cert = must(
    await createRootCertificate({
      signer,
      subject: { commonName: `Registry ${o.registryId}` },
      validityDays: 30,
      clock: systemClock,
    }),
  );
  return must(
    await startRegistry({
      db,
      port: 0,
      signer,
      registryChain: [cert],
      registryId: o.registryId,
      adminToken: o.adminToken,
      clock: o.clock ?? systemClock,
      logger: quietLogger,
      ...(o.lifecycle ? { lifecycle: o.lifecycle } : {}),
    }),
  );
}

/**
 * Certify a revocation signer of the serving registry for `station` the way `station enroll --revocation-signer`
 * does (station/revocation-signer.ts, LS-Sig of the station key, answers checked against the registry
 * certificate). Throws on any refusal.
 */
export async function delegateOverHttp(reg: RunningRegistry, station: HsmStation): Promise<DelegationOutcome> {
  return must(
    await delegateRevocationSigner({
      url: reg.url,
      registryCertificate: reg.context.registryChain[0]!,
      tlsCertificate: null,
      stationId: station.id,
      signer: station.signer,
      caSigner: station.caSigner,
      caChain: [station.ca, station.root],
      clock: systemClock,
      audit: () => undefined,
    }),
  );
}
