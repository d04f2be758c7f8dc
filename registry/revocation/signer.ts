/**
 * The delegated revocation signer (docs/lifecycle.md): a key in the registry token, certified by the station's
 * issuing CA, that signs its CRLs and OCSP answers. Step 1 the signed request, step 2 the certificate's install,
 * and the list for `registry revocation-signers`. Imports core, registry/common, registry/store, registry/stations
 * and ./crl.ts.
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { sha256Hex, toBase64Url } from '../../core/bytes.js';
import { checkRevocationSignerCertificate } from '../../core/pki/ca.js';
import { createCsr } from '../../core/pki/csr.js';
import { buf, importVerifyKey } from '../../core/pki/ecdsa.js';
import { fromPem, fromPemChain, toPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import {
  SIGNER_INSTALLED_SCHEMA,
  SIGNER_REQUEST_SCHEMA,
  signSignerDocument,
  type InstallBody,
} from '../../core/hq/revocation-signer.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { transact, transactValue } from '../common/tx.js';
import { now, type LifecycleContext, type LifecycleHsm } from '../common/context.js';
import { enrolledStation } from '../stations/service.js';
import { currentCrl, refreshCrl } from './crl.js';

/** Registry token label of a revocation signer key (fits the 64-character label limit). */
export const signerKeyLabel = (requestId: string): string => `revocation-signer-${requestId}`;

/**
 * Step 1 (station-authenticated, docs/lifecycle.md "Delegated revocation signer"): generate a signing key in the
 * registry token (sensitive, never extractable) and answer a signed request for its certificate (the CSR,
 * self-signed by that key). While a request is pending the same signed request is answered again.
 */
export async function revocationSignerRequest(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ jws: string; requestId: string; repeated: boolean }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return apiFail('INTERNAL', 'the registry has no HSM configured for revocation signing');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return apiFail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const pending = await guarded(async () => ok(await st.signerOf(ctx.db.sql, stationId, 'pending')));
  if (!pending.ok) return pending;
  if (pending.value) return ok({ jws: pending.value.requestJws, requestId: pending.value.requestId, repeated: true });
  const chain = fromPemChain(row.value.chainPem);
  if (!chain.ok || !chain.value[1]) return apiFail('INTERNAL', 'stored station chain is unreadable');
  const caKey = await importVerifyKey(new Uint8Array(new X509Certificate(buf(chain.value[1])).publicKey.rawData));
  if (!caKey) return apiFail('BODY_INVALID', 'the issuing CA key is not EC P-256/P-384');
  const requestId = globalThis.crypto.randomUUID();
  const label = signerKeyLabel(requestId);
  const key = await hsm.generateSigningKey(label, caKey.curve);
  if (!key.ok) return apiFail('INTERNAL', `registry HSM: ${key.error.code}: ${key.error.message}`);
  const signed = await signerRequestJws(ctx, hsm, label, stationId, requestId);
  if (!signed.ok) {
    await hsm.destroyKeyPair(label);
    return signed;
  }
  const { jws, requestedAt } = signed.value;
  const r = await transactValue(ctx.db.sql, async (x) => {
    const again = await st.signerOf(x, stationId, 'pending');
    if (again) return { jws: again.requestJws, requestId: again.requestId, repeated: true };
    await st.insertSignerRequest(x, { requestId, stationId, keyLabel: label, requestJws: jws, requestedAt });
    await st.appendEvent(x, requestedAt, 'station.revocation-signer-requested', {
      stationId,
      requestId,
      keyLabel: label,
    });
    return { jws, requestId, repeated: false };
  });
  // A concurrent request won: this key is not used by anything.
  if (!r.ok || r.value.requestId !== requestId) await hsm.destroyKeyPair(label);
  return r;
}

/** The signed request of step 1: a CSR of the new token key `label`, in a JWS of the registry receipt key. */
async function signerRequestJws(
  ctx: LifecycleContext,
  hsm: LifecycleHsm,
  label: string,
  stationId: string,
  requestId: string,
): Promise<Result<{ jws: string; requestedAt: string }, ApiError>> {
  const signer = await hsm.signer(label);
  if (!signer.ok) return apiFail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  const csr = await createCsr(signer.value, {
    commonName: `revocation signer ${stationId}`.slice(0, 64),
    organization: ctx.registryId.slice(0, 64),
  });
  if (!csr.ok) return apiFail('INTERNAL', `revocation signer CSR: ${csr.error.code}: ${csr.error.message}`);
  const requestedAt = now(ctx);
  const jws = await signSignerDocument(ctx.signer, ctx.registryChain, {
    schema: SIGNER_REQUEST_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    requestId,
    csr: toBase64Url(csr.value),
    requestedAt,
  });
  if (!jws.ok) return apiFail('INTERNAL', `revocation signer request could not be signed: ${jws.error.message}`);
  return ok({ jws: jws.value, requestedAt });
}

/**
 * Step 2 (station-authenticated): the certificate the station's issuing CA issued for the pending key. Checked
 * (core/pki/ca.ts `checkRevocationSignerCertificate` against the ENROLLED issuing CA, and a test signature of
 * the key through the certificate: the first CRL), then made the station's active signer in one transaction
 * with its event; answered with a signed confirmation. The same certificate again answers the same confirmation.
 */
export async function revocationSignerInstall(
  ctx: LifecycleContext,
  stationId: string,
  body: InstallBody,
): Promise<Result<{ jws: string; certificateSha256: string; crlNumber: number; repeated: boolean }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return apiFail('INTERNAL', 'the registry has no HSM configured for revocation signing');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return apiFail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const der = fromPem(body.certificatePem, 'CERTIFICATE');
  if (!der.ok) return apiFail('BODY_INVALID', `certificatePem: ${der.error.message}`);
  const sha = await sha256Hex(der.value);
  const req = await guarded(async () => ok(await st.signerByRequest(ctx.db.sql, body.requestId)));
  if (!req.ok) return req;
  const known = req.value;
  if (!known || known.stationId !== stationId)
    return apiFail('NOT_FOUND', `no revocation signer request ${body.requestId} for station ${stationId}`);
  if (known.state !== 'pending') {
    if (known.certificateSha256 === sha && known.installedJws) {
      const crl = await currentCrl(ctx, stationId);
      if (!crl.ok) return crl;
      return ok({ jws: known.installedJws, certificateSha256: sha, crlNumber: crl.value.crlNumber, repeated: true });
    }
    return apiFail('STATION_CONFLICT', `revocation signer request ${body.requestId} is already ${known.state}`);
  }
  const chain = fromPemChain(row.value.chainPem);
  if (!chain.ok || !chain.value[1]) return apiFail('INTERNAL', 'stored station chain is unreadable');
  const caDer = chain.value[1];
  const signer = await hsm.signer(known.keyLabel);
  if (!signer.ok) return apiFail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  const checked = await checkRevocationSignerCertificate(der.value, caDer, signer.value.publicKeySpki, ctx.clock.now());
  if (!checked.ok) return apiFail('BODY_INVALID', checked.error.message);
  const installedAt = now(ctx);
  const jws = await signSignerDocument(ctx.signer, ctx.registryChain, {
    schema: SIGNER_INSTALLED_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    requestId: known.requestId,
    certificateSha256: sha,
    installedAt,
  });
  if (!jws.ok) return apiFail('INTERNAL', `confirmation could not be signed: ${jws.error.message}`);
  const r = await transact(ctx.db.sql, async (x) => {
    const previous = await st.signerOf(x, stationId, 'active');
    const n = await st.activateSigner(x, known.requestId, stationId, {
      caPem: toPem(caDer, 'CERTIFICATE'),
      certificatePem: toPem(der.value, 'CERTIFICATE'),
      certificateSha256: sha,
      installedJws: jws.value,
      installedAt,
    });
    if (n !== 1) return apiFail('STATION_CONFLICT', 'the request was installed meanwhile');
    await st.appendEvent(x, installedAt, 'station.revocation-signer-installed', {
      stationId,
      requestId: known.requestId,
      certificateSha256: sha,
      serialNumber: checked.value.serialNumber,
      replaced: previous?.requestId ?? null,
    });
    return ok(previous);
  });
  if (!r.ok) return r;
  const crl = await refreshCrl(ctx, stationId);
  if (!crl.ok) return crl;
  // The replaced signer's key is no longer used: destroy it in the token.
  if (r.value) await hsm.destroyKeyPair(r.value.keyLabel);
  ctx.logger.log('info', 'revocation signer installed', { stationId, requestId: known.requestId });
  return ok({ jws: jws.value, certificateSha256: sha, crlNumber: crl.value.crlNumber, repeated: false });
}

/** The delegated revocation signers (one station, or all), newest request first per station. */
export async function revocationSignerList(
  ctx: LifecycleContext,
  stationId: string | null,
): Promise<Result<Omit<st.SignerRow, 'requestJws' | 'installedJws' | 'caPem'>[], ApiError>> {
  return guarded(async () =>
    ok(
      (await st.signers(ctx.db.sql, stationId)).map((r) => ({
        requestId: r.requestId,
        stationId: r.stationId,
        keyLabel: r.keyLabel,
        state: r.state,
        requestedAt: r.requestedAt,
        certificatePem: r.certificatePem,
        certificateSha256: r.certificateSha256,
        installedAt: r.installedAt,
      })),
    ),
  );
}
