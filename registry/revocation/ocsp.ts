/**
 * OCSP (RFC 6960) answers for the certificates of stations with a revocation signer, signed by it as a delegated
 * responder, and for station CA certificates (registry/commissioning/hq-revocation.ts, signed by the HQ CA key).
 * Imports core, registry/common, registry/store, registry/commissioning and ./crl.ts.
 */
import { CRL_REASON_CODES, credentialRevocation, normaliseSerial } from '../../core/lifecycle.js';
import {
  certIdMatchesIssuer,
  createOcspResponse,
  ocspErrorResponse,
  parseOcspRequest,
  type OcspAnswer,
} from '../../core/pki/ocsp.js';
import { fromPem } from '../../core/pki/pem.js';
import * as st from '../store/lifecycle.js';
import { crlInterval, type LifecycleContext } from '../common/context.js';
import { caOf } from './crl.js';
import { answerHqOcsp } from '../commissioning/hq-revocation.js';

/** Answer a DER OCSP request (always a DER OCSPResponse; errors as unsigned error responses). */
export async function answerOcsp(ctx: LifecycleContext, der: Uint8Array): Promise<Uint8Array> {
  const req = parseOcspRequest(der);
  if (!req.ok) return ocspErrorResponse('malformedRequest');
  try {
    // Certificates the HQ CA issued (station CAs) are answered with the HQ CA key.
    const hq = await answerHqOcsp(ctx, req.value);
    if (hq) return hq;
    const x = ctx.db.sql;
    const keys = await st.activeSigners(x);
    let station: st.SignerRow | undefined;
    let caDer: Uint8Array | undefined;
    for (const k of keys) {
      const d = fromPem(k.caPem ?? '', 'CERTIFICATE');
      if (d.ok && (await certIdMatchesIssuer(req.value.queries[0]!.certId, d.value))) {
        station = k;
        caDer = d.value;
        break;
      }
    }
    if (!station || !caDer) return ocspErrorResponse('unauthorized');
    const answers: OcspAnswer[] = [];
    for (const q of req.value.queries) {
      if (!(await certIdMatchesIssuer(q.certId, caDer))) {
        answers.push({ certId: q.certId, status: { status: 'unknown' } });
        continue;
      }
      // A failed issuance (no record, never in service) is revoked whatever else is stored for the serial.
      const failed = await st.failedIssuance(x, station.stationId, normaliseSerial(q.serial));
      if (failed) {
        answers.push({
          certId: q.certId,
          status: { status: 'revoked', revokedAt: failed.revokedAt, reason: CRL_REASON_CODES[failed.reason] },
        });
        continue;
      }
      const c = await st.credentialBySerial(x, station.stationId, normaliseSerial(q.serial));
      const d = c ? await st.findDevice(x, c.serialNumber) : null;
      if (!c || !d) {
        answers.push({ certId: q.certId, status: { status: 'unknown' } });
        continue;
      }
      const s = credentialRevocation(d.state, c, d.suspendedAt);
      answers.push({
        certId: q.certId,
        status: s.status === 'good' ? s : { status: 'revoked', revokedAt: s.at || c.createdAt, reason: s.reason },
      });
    }
    const ca = await caOf(ctx, station.stationId);
    if (!ca.ok) return ocspErrorResponse('internalError');
    const t = ctx.clock.now();
    // A delegated responder (RFC 6960 4.2.2.2): signed by the signer key, its certificate in `certs`.
    const resp = await createOcspResponse({
      signer: ca.value.signer,
      issuerCertificate: ca.value.signerDer,
      responderCertificates: [ca.value.signerDer],
      producedAt: t,
      thisUpdate: t,
      nextUpdate: new Date(t.getTime() + crlInterval(ctx) * 1000),
      answers,
      nonce: req.value.nonce,
    });
    return resp.ok ? resp.value : ocspErrorResponse('internalError');
  } catch (e) {
    ctx.logger.log('error', 'OCSP failed', { error: e instanceof Error ? e.message : String(e) });
    return ocspErrorResponse('internalError');
  }
}
