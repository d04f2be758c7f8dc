/**
 * CRLs (docs/lifecycle.md): each station's, signed by its delegated revocation signer from the credential table
 * and the failed issuances, regenerated on change, on demand past half its validity, and on a schedule.
 * Imports core, registry/common and registry/store.
 */
import { CRL_REASON_CODES, credentialRevocation } from '../../core/lifecycle.js';
import type { Signer } from '../../core/ports.js';
import { createCrl } from '../../core/pki/crl.js';
import { fromPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { crlInterval, type LifecycleContext } from '../common/context.js';

/** The station's active delegated signer: its token key, its certificate, the issuing CA certificate. */
export async function caOf(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ signer: Signer; signerDer: Uint8Array; caDer: Uint8Array }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return apiFail('INTERNAL', 'the registry has no HSM configured (no revocation signers)');
  const k = await st.signerOf(ctx.db.sql, stationId, 'active');
  if (!k?.certificatePem || !k.caPem)
    return apiFail('NOT_FOUND', `no revocation signer is installed for station ${stationId}`);
  const der = fromPem(k.certificatePem, 'CERTIFICATE');
  const ca = fromPem(k.caPem, 'CERTIFICATE');
  if (!der.ok || !ca.ok) return apiFail('INTERNAL', 'stored revocation signer certificate unreadable');
  const signer = await hsm.signer(k.keyLabel);
  if (!signer.ok) return apiFail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  return ok({ signer: signer.value, signerDer: der.value, caDer: ca.value });
}

const crlLocks = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * Sign a new CRL for a station's issuing CA (number + 1) from the current credential table. Calls for one station
 * run one after another; a station's queue entry goes when its last call is done (the public CRL route reaches
 * this with any station id: nothing may stay behind per id).
 */
export async function refreshCrl(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  let locks = crlLocks.get(ctx.db);
  if (!locks) crlLocks.set(ctx.db, (locks = new Map()));
  const queue = locks;
  const prev = queue.get(stationId) ?? Promise.resolve();
  const run = prev.then(() => refreshCrlNow(ctx, stationId));
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  queue.set(stationId, tail);
  void tail.then(() => {
    if (queue.get(stationId) === tail) queue.delete(stationId);
  });
  return run;
}

async function refreshCrlNow(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  return guarded(async () => {
    const x = ctx.db.sql;
    const ca = await caOf(ctx, stationId);
    if (!ca.ok) return ca;
    const entries = [];
    for (const c of await st.crlCandidates(x, stationId)) {
      const s = credentialRevocation(c.deviceState, c, c.suspendedAt);
      if (s.status === 'revoked') entries.push({ serial: c.serial, revokedAt: s.at || c.createdAt, reason: s.reason });
    }
    // Certificates issued for runs that ended without a record (failed-issuance events): all revoked.
    const listed = new Set(entries.map((e) => e.serial));
    for (const f of await st.failedIssuances(x, stationId))
      if (!listed.has(f.certSerial))
        entries.push({ serial: f.certSerial, revokedAt: f.revokedAt, reason: CRL_REASON_CODES[f.reason] });
    const prev = await st.getCrlRow(x, stationId);
    const thisUpdate = ctx.clock.now();
    const nextUpdate = new Date(thisUpdate.getTime() + crlInterval(ctx) * 1000);
    const crlNumber = (prev?.crlNumber ?? 0) + 1;
    // Signed by the delegated signer: its certificate's subject is the issuing CA's name (the CRL issuer) and
    // its key identifier is the CRL's authority key identifier.
    const der = await createCrl({
      signer: ca.value.signer,
      issuerCertificate: ca.value.signerDer,
      thisUpdate,
      nextUpdate,
      crlNumber,
      entries,
    });
    if (!der.ok) return apiFail('INTERNAL', `CRL: ${der.error.code}: ${der.error.message}`);
    const row: st.CrlRow = {
      stationId,
      crlNumber,
      thisUpdate: thisUpdate.toISOString(),
      nextUpdate: nextUpdate.toISOString(),
      der: der.value,
    };
    await st.putCrlRow(x, row);
    return ok(row);
  });
}

/** The current CRL of a station (regenerated when missing or past half its interval). */
export async function currentCrl(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  const r = await guarded(async () => ok(await st.getCrlRow(ctx.db.sql, stationId)));
  if (!r.ok) return r;
  const half = (crlInterval(ctx) * 1000) / 2;
  if (r.value && Date.parse(r.value.nextUpdate) - ctx.clock.now().getTime() > half) return ok(r.value);
  return refreshCrl(ctx, stationId);
}

/** Regenerate the CRL of every station with a revocation signer on a schedule; returns a stop function. */
export function scheduleCrls(ctx: LifecycleContext): () => void {
  const tick = async () => {
    const keys = await guarded(async () => ok(await st.activeSigners(ctx.db.sql)));
    if (!keys.ok) return;
    for (const k of keys.value) {
      const r = await refreshCrl(ctx, k.stationId);
      if (!r.ok) ctx.logger.log('error', 'scheduled CRL failed', { stationId: k.stationId, code: r.error.code });
    }
  };
  const timer = setInterval(() => void tick(), crlInterval(ctx) * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
