/**
 * The HQ CA's revocation status (docs/lifecycle.md "Station revocation"): the station CA of a revoked station goes
 * on the HQ CRL (`GET /v1/hq/ca.crl`, signed by the HQ CA key, issuer = the HQ CA, CRL number + 1 on every
 * regeneration: on change, on demand past half its validity, on the CRL schedule) and OCSP for certificates the HQ CA
 * issued is answered with the HQ CA key; `GET /v1/hq/crl-signer/S.pem` is the HQ-certified certificate of station S's
 * delegated CRL signer key (what `openssl verify -crl_check_all` needs). Also `revokeStationCaIn`, the station CA's part of a station revocation
 * (inside its transaction). Imports core, registry/common and ./.
 */
import { CRL_REASON_CODES, isRevocationReason, type RevocationReason } from '../../core/lifecycle.js';
import { createCrl, type CrlEntry } from '../../core/pki/crl.js';
import {
  certIdMatchesIssuer,
  createOcspResponse,
  ocspErrorResponse,
  type OcspAnswer,
  type ParsedOcspRequest,
} from '../../core/pki/ocsp.js';
import { normaliseSerial } from '../../core/lifecycle.js';
import type { SqlExec } from '../../core/hq/registry-db.js';
import { ok, type Result } from '../../core/result.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { crlInterval, type RegistryContext } from '../common/context.js';
import { commissioningOf } from './service.js';
import * as cs from './store.js';
import { signerOf } from '../store/lifecycle.js';
import { issueHqCrlSignerCertificate } from '../../core/pki/ca.js';
import { bytesEqual } from '../../core/bytes.js';
import { fromPem, toPem } from '../../core/pki/pem.js';
import { parseCertificate } from '../../core/pki/chain.js';

/** Mark a station's CA certificate revoked (first revocation wins); false when the station has none (legacy). */
export function revokeStationCaIn(x: SqlExec, stationId: string, at: string, reason: RevocationReason) {
  return cs.revokeStationCa(x, stationId, at, reason);
}

const reasonCode = (r: string | null): number =>
  CRL_REASON_CODES[r !== null && isRevocationReason(r) ? r : 'unspecified'];

let hqCrlQueue: Promise<unknown> = Promise.resolve();

/** Sign a new HQ CRL (number + 1) listing every revoked station CA. Calls run one after another. */
export function refreshHqCrl(ctx: RegistryContext): Promise<Result<cs.HqCrlRow, ApiError>> {
  const run = hqCrlQueue.then(() => refreshHqCrlNow(ctx));
  hqCrlQueue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

async function refreshHqCrlNow(ctx: RegistryContext): Promise<Result<cs.HqCrlRow, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  const { hq } = settings.value;
  return guarded(async () => {
    const x = ctx.db.sql;
    const entries: CrlEntry[] = (await cs.stationCas(x))
      .filter((c) => c.revokedAt !== null)
      .map((c) => ({ serial: c.serial, revokedAt: c.revokedAt!, reason: reasonCode(c.reason) }));
    const prev = await cs.getHqCrl(x);
    const thisUpdate = ctx.clock.now();
    const nextUpdate = new Date(thisUpdate.getTime() + crlInterval(ctx) * 1000);
    const crlNumber = (prev?.crlNumber ?? 0) + 1;
    const der = await createCrl({
      signer: hq.signer,
      issuerCertificate: hq.chain[0]!,
      thisUpdate,
      nextUpdate,
      crlNumber,
      entries,
    });
    if (!der.ok) return apiFail('INTERNAL', `HQ CRL: ${der.error.code}: ${der.error.message}`);
    const row: cs.HqCrlRow = {
      crlNumber,
      thisUpdate: thisUpdate.toISOString(),
      nextUpdate: nextUpdate.toISOString(),
      der: der.value,
    };
    await cs.putHqCrl(x, row);
    return ok(row);
  });
}

/** The current HQ CRL (regenerated when missing or past half its validity). */
export async function currentHqCrl(ctx: RegistryContext): Promise<Result<cs.HqCrlRow, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  const r = await guarded(async () => ok(await cs.getHqCrl(ctx.db.sql)));
  if (!r.ok) return r;
  const half = (crlInterval(ctx) * 1000) / 2;
  if (r.value && Date.parse(r.value.nextUpdate) - ctx.clock.now().getTime() > half) return ok(r.value);
  return refreshHqCrl(ctx);
}

/**
 * An OCSP answer for a request about certificates the HQ CA issued (the first query's issuer is the HQ CA), signed
 * by the HQ CA key: revoked (time, reason) or good for a station CA in station_cas, unknown otherwise. null when the
 * request is not about the HQ CA (the station responders answer it) or there is no HQ CA.
 */
export async function answerHqOcsp(ctx: RegistryContext, req: ParsedOcspRequest): Promise<Uint8Array | null> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return null;
  const { hq } = settings.value;
  const hqCa = hq.chain[0]!;
  if (!(await certIdMatchesIssuer(req.queries[0]!.certId, hqCa))) return null;
  const answers: OcspAnswer[] = [];
  for (const q of req.queries) {
    const row = (await certIdMatchesIssuer(q.certId, hqCa))
      ? await cs.stationCaBySerial(ctx.db.sql, normaliseSerial(q.serial))
      : null;
    answers.push({
      certId: q.certId,
      status: !row
        ? { status: 'unknown' }
        : row.revokedAt
          ? { status: 'revoked', revokedAt: row.revokedAt, reason: reasonCode(row.reason) }
          : { status: 'good' },
    });
  }
  const t = ctx.clock.now();
  const resp = await createOcspResponse({
    signer: hq.signer,
    issuerCertificate: hqCa,
    responderCertificates: [],
    producedAt: t,
    thisUpdate: t,
    nextUpdate: new Date(t.getTime() + crlInterval(ctx) * 1000),
    answers,
    nonce: req.nonce,
  });
  return resp.ok ? resp.value : ocspErrorResponse('internalError');
}

/** The public key (SPKI DER) of a PEM certificate, or null. */
function pemKey(pem: string | null): Uint8Array | null {
  const der = pem ? fromPem(pem, 'CERTIFICATE') : null;
  const c = der?.ok ? parseCertificate(der.value, 'certificate') : null;
  return c?.ok ? new Uint8Array(c.value.publicKey.rawData) : null;
}

/**
 * The HQ-certified certificate (PEM) of station `stationId`'s active delegated CRL signer key: subject = its station
 * CA's name, issued by the HQ CA (core/pki/ca.ts `issueHqCrlSignerCertificate`), made when first asked for (and again
 * when the station certified another signer key), kept in `station_cas`. NOT_FOUND for a station without an
 * HQ-issued station CA or without an installed revocation signer.
 */
export async function hqCrlSigner(ctx: RegistryContext, stationId: string): Promise<Result<string, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  const { hq } = settings.value;
  return guarded(async () => {
    const x = ctx.db.sql;
    const ca = await cs.stationCaOf(x, stationId);
    if (!ca) return apiFail('NOT_FOUND', `station ${stationId} has no station CA certified by this registry's HQ CA`);
    const active = await signerOf(x, stationId, 'active');
    const key = pemKey(active?.certificatePem ?? null);
    if (!key) return apiFail('NOT_FOUND', `no revocation signer is installed for station ${stationId}`);
    const stored = pemKey(ca.crlSignerPem);
    if (stored && bytesEqual(stored, key)) return ok(ca.crlSignerPem!);
    const caDer = fromPem(ca.certificatePem, 'CERTIFICATE');
    if (!caDer.ok) return apiFail('INTERNAL', 'stored station CA certificate unreadable');
    const cert = await issueHqCrlSignerCertificate({
      hqIssuer: { signer: hq.signer, certificate: hq.chain[0]! },
      stationCaCertificate: caDer.value,
      subjectPublicKeySpki: key,
      clock: ctx.clock,
    });
    if (!cert.ok) return apiFail('INTERNAL', `HQ CRL signer certificate: ${cert.error.code}: ${cert.error.message}`);
    const pem = toPem(cert.value.der, 'CERTIFICATE');
    await cs.setCrlSigner(x, stationId, pem);
    return ok(pem);
  });
}
