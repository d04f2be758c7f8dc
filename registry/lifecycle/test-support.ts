/**
 * Test support: a station PKI whose issuing CA key is a WRAPPABLE key in a real station HSM token (as
 * `station init` makes it), so it can be escrowed to the registry. Root and station keys are test signers. Also:
 * a lifecycle registry on loopback (startLifecycleRegistry) and escrow over HTTP (escrowOverHttp).
 */
import { systemClock, type Clock } from '../../core/ports.js';
import { createRootCertificate, issueCaCertificate, issueStationCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../core/pki/test-signer.js';
import { must } from '../../core/pki/test-util.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { wrapIssuingCaForEscrow } from '../../station/ca-escrow.js';
import type { RegistryDb } from '../db.js';
import { startRegistry, type RunningRegistry } from '../server.js';
import type { TestStation } from '../test/fixtures.js';
import { call, quietLogger } from '../test/harness.js';
import type { LifecycleConfig } from './service.js';

export type HsmStation = TestStation & { readonly caLabel: string; readonly root: Uint8Array; readonly ca: Uint8Array };

/** Make station `id` with its issuing CA key generated in `stationHsm` (validity in days per certificate). */
export async function createHsmStation(
  stationHsm: HsmAdmin,
  id: string,
  o: { workOrder?: string; validityDays?: { root: number; ca: number; station: number } } = {},
): Promise<HsmStation> {
  const days = o.validityDays ?? { root: 3650, ca: 1825, station: 365 };
  const caLabel = `issuing-ca-${id}`;
  must(await stationHsm.generateSigningKey(caLabel, 'P-256', { wrappable: true }));
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
 * `reg.context.registryChain[0]`), the admin token, and `lifecycle` (escrow HSM, officer token hash, failpoints...).
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
 * Escrow `station`'s issuing CA key into the serving registry the way `station enroll --escrow` does: escrow/begin,
 * wrap the key in the station token for the registry's transport key, escrow/complete. Throws on any refusal.
 */
export async function escrowOverHttp(
  url: string,
  adminToken: string,
  stationHsm: HsmAdmin,
  station: HsmStation,
): Promise<void> {
  const begin = await call(url, 'POST', `/v1/admin/stations/${station.id}/escrow/begin`, { bearer: adminToken });
  if (begin.status !== 200) throw new Error(`escrow/begin: ${begin.status} ${begin.text}`);
  const body = must(
    await wrapIssuingCaForEscrow({
      hsm: stationHsm,
      caKeyLabel: station.caLabel,
      stationSigner: station.signer,
      begin: begin.json as never,
    }),
  );
  const done = await call(url, 'POST', `/v1/admin/stations/${station.id}/escrow/complete`, {
    bearer: adminToken,
    body,
  });
  if (done.status !== 200) throw new Error(`escrow/complete: ${done.status} ${done.text}`);
}
