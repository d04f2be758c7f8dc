/**
 * Station key rotation (docs/lifecycle.md "Station key rotation"): the station's signed request (online or
 * hand-carried) and the admin route's chain signed by the current key; the old certificate goes into
 * station_key_history. Imports core, registry/common, registry/trust, registry/store and registry/stations.
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { fromBase64Url, sha256Hex, utf8 } from '../../core/bytes.js';
import { type LifecycleRole } from '../../core/lifecycle.js';
import { buf, importVerifyKey, verifyRaw } from '../../core/pki/ecdsa.js';
import { fromPemChain } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import { type StationRow } from '../../core/hq/registry-db.js';
import { importJwsKey, verifyParsedJws } from '../../core/hq/jws.js';
import { MAX_CLOCK_SKEW_S } from '../../core/hq/protocol.js';
import { checkStationChain, stationKeyHistoryRows, type StationKeyHistoryRow } from '../trust/verify.js';
import {
  KEY_ROTATION_ANSWER_SCHEMA,
  parseKeyRotationRequest,
  signKeyRotationAnswer,
  type KeyRotationAnswer,
  type KeyRotationResult,
} from '../../core/hq/key-rotation.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { transact } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';
import { enrolledStation } from '../stations/service.js';

/**
 * Station key rotation through the admin route: the new chain (same station id, same issuing CA) is accepted
 * when signed by the CURRENT station key (raw ECDSA over utf8(newChainPem)). The old certificate is kept in the
 * history (`station_key_history`, replaced_at = now). Stations use the signed request (`stationKeyRotation`).
 */
export async function rotateStationKey(
  ctx: LifecycleContext,
  stationId: string,
  newChainPem: string,
  signature: string,
): Promise<Result<{ stationId: string; certificateSha256: string }, ApiError>> {
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return apiFail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const cur = fromPemChain(row.value.chainPem);
  if (!cur.ok || !cur.value[0] || !cur.value[1]) return apiFail('INTERNAL', 'stored station chain unreadable');
  const key = await importVerifyKey(new Uint8Array(new X509Certificate(buf(cur.value[0])).publicKey.rawData));
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(signature);
  } catch {
    return apiFail('BODY_INVALID', 'signature must be base64url');
  }
  if (
    !key ||
    !(await verifyRaw(key.key, key.curve, key.curve === 'P-256' ? 'SHA-256' : 'SHA-384', sig, utf8(newChainPem)))
  )
    return apiFail('AUTH_SIGNATURE_INVALID', 'the new station chain is not signed by the current station key');
  const checked = await checkRotationChain(ctx, row.value, newChainPem);
  if (!checked.ok) return checked;
  const at = now(ctx);
  const r = await switchStationKey(ctx, row.value, checked.value, at, { via: 'admin' }, null);
  if (!r.ok) return r;
  return ok({ stationId, certificateSha256: checked.value.certificateSha256 });
}

const rotationKey = (stationId: string, requestId: string): string => `station-key-rotation.${stationId}.${requestId}`;

/** The new chain of a rotation: valid now, for this station, same issuing CA, a key never used before. */
async function checkRotationChain(
  ctx: LifecycleContext,
  row: StationRow,
  chainPem: string,
  /** The station's replaced keys when the caller has read them already. */
  known?: readonly StationKeyHistoryRow[],
): Promise<Result<{ chainPem: string; certificateSha256: string; stationCert: Uint8Array }, ApiError>> {
  const chain = await checkStationChain(row.stationId, chainPem, ctx.clock.now());
  if (!chain.ok) return apiFail('BODY_INVALID', chain.error.message);
  if ((await sha256Hex(chain.value.issuingCa)) !== row.issuingCaSha256)
    return apiFail('BODY_INVALID', 'the new station certificate must be issued by the same issuing CA');
  if ((await sha256Hex(chain.value.root)) !== row.rootSha256)
    return apiFail('BODY_INVALID', 'the new station chain must end in the enrolled root');
  const certificateSha256 = await sha256Hex(chain.value.stationCert);
  if (certificateSha256 === row.certificateSha256)
    return apiFail('BODY_INVALID', 'the new station certificate is the one in use');
  const spkiOf = (der: Uint8Array) => Buffer.from(new X509Certificate(buf(der)).publicKey.rawData);
  const newSpki = spkiOf(chain.value.stationCert);
  const older = known
    ? ok(known)
    : await guarded(async () => ok(await stationKeyHistoryRows(ctx.db.sql, row.stationId)));
  if (!older.ok) return older;
  for (const pem of [row.chainPem, ...older.value.map((h) => h.chainPem)]) {
    const c = fromPemChain(pem);
    if (!c.ok || !c.value[0]) continue;
    if (spkiOf(c.value[0]).equals(newSpki))
      return apiFail(
        'BODY_INVALID',
        'the new station certificate reuses a key this station used before: generate a new key',
      );
  }
  return ok({
    chainPem: chainPem.replace(/\r\n/g, '\n').trim() + '\n',
    certificateSha256,
    stationCert: chain.value.stationCert,
  });
}

/**
 * One transaction: compare-and-set the station's certificate (still `row`'s and not revoked), the old one into
 * station_key_history (replaced_at = `at`), the signed answer of a request stored under its request id, and the
 * lifecycle event. STATION_CONFLICT (rolled back) when the station changed meanwhile.
 */
async function switchStationKey(
  ctx: LifecycleContext,
  row: StationRow,
  next: { chainPem: string; certificateSha256: string },
  at: string,
  event: Record<string, unknown>,
  stored: { key: string; value: string } | null,
): Promise<Result<true, ApiError>> {
  return transact(ctx.db.sql, async (x) => {
    const n = await x.run(
      'UPDATE stations SET chain_pem = ?, cert_sha256 = ? WHERE station_id = ? AND cert_sha256 = ? AND revoked_at IS NULL',
      [next.chainPem, next.certificateSha256, row.stationId, row.certificateSha256],
    );
    if (n !== 1)
      return apiFail('STATION_CONFLICT', `the key of station ${row.stationId} changed (or it was revoked) meanwhile`);
    await x.run(
      `INSERT INTO station_key_history (station_id, cert_sha256, chain_pem, replaced_at) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
      [row.stationId, row.certificateSha256, row.chainPem, at],
    );
    if (stored) await st.setSetting(x, stored.key, stored.value);
    await st.appendEvent(x, at, 'station.key-rotated', {
      stationId: row.stationId,
      from: row.certificateSha256,
      to: next.certificateSha256,
      ...event,
    });
    return ok(true as const);
  });
}

/**
 * A station's signed key rotation request (docs/lifecycle.md "Station key rotation"), online (POST
 * /v1/stations/key-rotation, LS-Sig of `authenticatedStationId`) or hand-carried (`registry rotate-station-key`).
 * The request must verify with the station's CURRENT certificate (`previousCertificateSha256`); the new chain is
 * checked like an enrolment chain (same issuing CA and root, a new key). Idempotent by requestId: the same request
 * again (also signed by the key it replaced) returns the stored answer (`repeated: true`); a request signed by a
 * replaced key that was never applied is refused. Revoked stations cannot rotate.
 */
export async function stationKeyRotation(
  ctx: LifecycleContext,
  requestJws: string,
  o: {
    readonly via: 'station' | 'hand-carried';
    readonly authenticatedStationId?: string;
    /** Who applied a hand-carried request (registry CLI role); the station itself otherwise. */
    readonly actor?: LifecycleRole;
  },
): Promise<Result<KeyRotationResult, ApiError>> {
  const parsed = parseKeyRotationRequest(requestJws);
  if (!parsed.ok) return apiFail('BODY_INVALID', parsed.error.message);
  const req = parsed.value.payload;
  const p = parsed.value.parsed;
  if (o.authenticatedStationId !== undefined && o.authenticatedStationId !== req.stationId)
    return apiFail(
      'AUTH_FORBIDDEN',
      `station ${o.authenticatedStationId} cannot rotate the key of station ${req.stationId}`,
    );
  if (p.header.kid !== req.stationId)
    return apiFail('BODY_INVALID', 'key rotation request: kid must be the station id of the payload');
  const row = await enrolledStation(ctx, req.stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt)
    return apiFail(
      'AUTH_STATION_REVOKED',
      `station ${req.stationId} was revoked at ${row.value.revokedAt}: it cannot rotate its key`,
    );
  const requestSha256 = await sha256Hex(parsed.value.payloadBytes);
  // The signer: the certificate the request names, the current one or one replaced before.
  const history = await guarded(async () => ok(await stationKeyHistoryRows(ctx.db.sql, req.stationId)));
  if (!history.ok) return history;
  const signerPem =
    req.previousCertificateSha256 === row.value.certificateSha256
      ? row.value.chainPem
      : history.value.find((h) => h.certSha256 === req.previousCertificateSha256)?.chainPem;
  if (!signerPem)
    return apiFail(
      'AUTH_SIGNATURE_INVALID',
      'key rotation request: previousCertificateSha256 is no certificate of this station',
    );
  const signerChain = fromPemChain(signerPem);
  if (!signerChain.ok || !signerChain.value[0]) return apiFail('INTERNAL', 'stored station chain unreadable');
  const x5c = p.header.x5c?.[0];
  if (x5c === undefined || !Buffer.from(x5c, 'base64').equals(Buffer.from(signerChain.value[0])))
    return apiFail('AUTH_SIGNATURE_INVALID', 'key rotation request: the x5c leaf is not the certificate it names');
  const key = await importJwsKey(new Uint8Array(new X509Certificate(buf(signerChain.value[0])).publicKey.rawData));
  if (!key) return apiFail('INTERNAL', 'stored station certificate has an unsupported key');
  const v = await verifyParsedJws(p, key, 'key rotation request');
  if (!v.ok)
    return apiFail(
      'AUTH_SIGNATURE_INVALID',
      `${v.error.message} (station ${req.stationId}, certificate ${req.previousCertificateSha256.slice(0, 12)}...)`,
    );

  const stored = await guarded(async () =>
    ok(await st.getSetting(ctx.db.sql, rotationKey(req.stationId, req.requestId))),
  );
  if (!stored.ok) return stored;
  const repeat = (s: string): Result<KeyRotationResult, ApiError> => {
    const prev = JSON.parse(s) as { requestSha256: string; result: Omit<KeyRotationResult, 'repeated'> };
    if (prev.requestSha256 !== requestSha256)
      return apiFail(
        'STATION_CONFLICT',
        `key rotation request ${req.requestId} was already applied with different content`,
      );
    return ok({ ...prev.result, repeated: true });
  };
  if (stored.value) return repeat(stored.value);
  if (req.previousCertificateSha256 !== row.value.certificateSha256) {
    const replaced = history.value.find((h) => h.certSha256 === req.previousCertificateSha256);
    return apiFail(
      'AUTH_SIGNATURE_INVALID',
      `key rotation request: signed with a station key replaced at ${replaced?.replacedAt ?? '?'}; only the current key can rotate`,
    );
  }
  if (new Date(req.requestedAt).getTime() > ctx.clock.now().getTime() + MAX_CLOCK_SKEW_S * 1000)
    return apiFail('BODY_INVALID', 'key rotation request: requestedAt is in the future');
  const checked = await checkRotationChain(ctx, row.value, req.chainPem, history.value);
  if (!checked.ok) return checked;
  const rotatedAt = now(ctx);
  const answer: KeyRotationAnswer = {
    schema: KEY_ROTATION_ANSWER_SCHEMA,
    registryId: ctx.registryId,
    requestId: req.requestId,
    stationId: req.stationId,
    requestSha256,
    previousCertificateSha256: row.value.certificateSha256,
    certificateSha256: checked.value.certificateSha256,
    rotatedAt,
  };
  const jws = await signKeyRotationAnswer(ctx.signer, ctx.registryChain, answer);
  if (!jws.ok) return apiFail('INTERNAL', `the key rotation answer could not be signed: ${jws.error.message}`);
  const result: Omit<KeyRotationResult, 'repeated'> = {
    stationId: req.stationId,
    requestId: req.requestId,
    previousCertificateSha256: answer.previousCertificateSha256,
    certificateSha256: answer.certificateSha256,
    rotatedAt,
    answer: jws.value,
  };
  const sw = await switchStationKey(
    ctx,
    row.value,
    checked.value,
    rotatedAt,
    { via: o.via, requestId: req.requestId, requestSha256, actor: o.actor ?? 'station' },
    { key: rotationKey(req.stationId, req.requestId), value: JSON.stringify({ requestSha256, result }) },
  );
  if (!sw.ok) {
    // The same request applied concurrently: answer what was stored.
    const again = await guarded(async () =>
      ok(await st.getSetting(ctx.db.sql, rotationKey(req.stationId, req.requestId))),
    );
    if (again.ok && again.value) return repeat(again.value);
    return sw;
  }
  ctx.logger.log('info', 'station key rotated', {
    stationId: req.stationId,
    requestId: req.requestId,
    via: o.via,
    certificateSha256: answer.certificateSha256,
  });
  return ok({ ...result, repeated: false });
}
