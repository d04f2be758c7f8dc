/**
 * Test support: a station PKI whose issuing CA key is a WRAPPABLE key in a real station HSM token (as
 * `station init` makes it), so it can be escrowed to the registry. Root and station keys are test signers.
 */
import { systemClock } from '../../core/ports.js';
import { createRootCertificate, issueCaCertificate, issueStationCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../core/pki/test-signer.js';
import { must } from '../../core/pki/test-util.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import type { TestStation } from '../test/fixtures.js';

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
