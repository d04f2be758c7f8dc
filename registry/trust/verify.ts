/**
 * The trust material of an enrolled station (its chain, its replaced keys) and the check of what it signs,
 * against what was ENROLLED for it (never against keys or certificates taken from the message). Records and
 * bundles: ./records.ts. Imports core.
 */
import 'reflect-metadata';
import { verify as nodeVerify, X509Certificate as NativeX509, type KeyObject } from 'node:crypto';
import { bytesEqual } from '../../core/bytes.js';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { parseCertificate, verifyCertificateChain } from '../../core/pki/chain.js';
import { fromPemChain } from '../../core/pki/pem.js';
import type { SqlExec, StationRow } from '../../core/hq/registry-db.js';
import { importJwsKey, type JwsFailure, type ParsedJws, type VerifyKey } from '../../core/hq/jws.js';

/**
 * A station signing key: the enrolled one (`replacedAt` null) or one replaced by a rotation (station_key_history),
 * valid only for what was made before `replacedAt`.
 */
export interface StationKey {
  readonly certificateSha256: string;
  readonly stationCert: Uint8Array;
  readonly curve: 'P-256' | 'P-384';
  readonly keyObject: KeyObject;
  /** The enrolled chain of this key (standard base64 DER, station certificate first): a v3 record's x5c. */
  readonly x5c: readonly string[];
  /** ISO time of the rotation that replaced it; null for the enrolled key. */
  readonly replacedAt: string | null;
}

/** A row of station_key_history. */
export interface StationKeyHistoryRow {
  readonly certSha256: string;
  readonly chainPem: string;
  readonly replacedAt: string;
}

/** The replaced keys of a station (station_key_history), oldest first. Throws on database errors. */
export async function stationKeyHistoryRows(x: SqlExec, stationId: string): Promise<StationKeyHistoryRow[]> {
  const rows = await x.all(
    'SELECT cert_sha256, chain_pem, replaced_at FROM station_key_history WHERE station_id = ? ORDER BY replaced_at',
    [stationId],
  );
  return rows.map((r) => ({
    certSha256: String(r['cert_sha256']),
    chainPem: String(r['chain_pem']),
    replacedAt: String(r['replaced_at']),
  }));
}

/** An enrolled station's trust material, parsed once. */
export interface StationTrust {
  readonly row: StationRow;
  readonly stationCert: Uint8Array;
  readonly issuingCa: Uint8Array;
  readonly root: Uint8Array;
  readonly stationKey: VerifyKey;
  /** The same key for node:crypto (synchronous verification of many records). */
  readonly currentKey: StationKey;
  /** Keys replaced by rotations: records and bundles completed before the rotation still verify with them. */
  readonly previousKeys: readonly StationKey[];
  /** The station_key_history rows `previousKeys` were made from (a verification worker rebuilds the trust from them). */
  readonly history: readonly StationKeyHistoryRow[];
  /** The issuing CA parsed natively (device certificate checks run thousands of times per batch). */
  readonly ca: {
    readonly cert: NativeX509;
    readonly key: KeyObject;
    readonly notBefore: number;
    readonly notAfter: number;
  };
}

/** The longest enrolment chain: station, issuing CA, HQ CA, up to two HQ intermediates, root. */
const MAX_STATION_CHAIN = 6;

/** An enrolment chain's parts: station certificate, issuing CA, the certificates above it, the root (last). */
function splitChain(chain: readonly Uint8Array[]) {
  return {
    stationCert: chain[0]!,
    issuingCa: chain[1]!,
    above: chain.slice(2, -1),
    root: chain[chain.length - 1]!,
  };
}

/**
 * Parse and check an enrolment chain: [station certificate, issuing CA, root] (a commissioned station: the HQ chain
 * between the issuing CA and the HQ root), the station certificate
 * chains through the issuing CA to the root (valid at `at`), its CN is the station id, its key is EC P-256/P-384.
 * INPUT_INVALID with the reason otherwise.
 */
export async function checkStationChain(
  stationId: string,
  chainPem: string,
  at: Date,
): Promise<Result<{ stationCert: Uint8Array; issuingCa: Uint8Array; root: Uint8Array }>> {
  const chain = fromPemChain(chainPem);
  if (!chain.ok) return fail('INPUT_INVALID', `station chain: ${chain.error.message}`);
  if (chain.value.length < 3 || chain.value.length > MAX_STATION_CHAIN)
    return fail(
      'INPUT_INVALID',
      `station chain: expected 3 certificates (station, issuing CA, root; a commissioned station: the HQ CA and intermediates before the root), found ${chain.value.length}`,
    );
  const { stationCert, issuingCa, above, root } = splitChain(chain.value);
  const path = await verifyCertificateChain([stationCert, issuingCa, ...above], [root], at);
  if (!path.ok) return fail('INPUT_INVALID', `station chain: ${path.error}`);
  if (path.value.path.length !== chain.value.length)
    return fail('INPUT_INVALID', 'station chain: the station certificate must be issued by the issuing CA');
  const leaf = path.value.leaf;
  const cn = leaf.subjectName.getField('CN')[0];
  if (cn !== stationId)
    return fail(
      'INPUT_INVALID',
      `station chain: the station certificate is for ${JSON.stringify(cn)}, not ${stationId}`,
    );
  const key = await importJwsKey(new Uint8Array(leaf.publicKey.rawData));
  if (!key) return fail('INPUT_INVALID', 'station chain: the station key is not an EC P-256/P-384 key');
  // The issuing CA signs device certificates: it must verify as a CA on its own (anchor = root).
  const ca = await verifyCertificateChain([issuingCa, ...above], [root], at);
  if (!ca.ok) return fail('INPUT_INVALID', `station chain: issuing CA: ${ca.error}`);
  return ok({ stationCert, issuingCa, root });
}

/**
 * Build the trust material of an enrolled station row (its chain was checked at enrolment) and of its replaced
 * keys (`history`: station_key_history rows; unreadable ones are skipped).
 */
export async function loadStationTrust(
  row: StationRow,
  history: readonly StationKeyHistoryRow[] = [],
): Promise<Result<StationTrust>> {
  const chain = fromPemChain(row.chainPem);
  if (!chain.ok || chain.value.length < 3 || chain.value.length > MAX_STATION_CHAIN)
    return fail('STORE_FAILED', `stored chain of station ${row.stationId} is unreadable`);
  const { stationCert, issuingCa, root } = splitChain(chain.value);
  const cert = parseCertificate(stationCert, 'station certificate');
  if (!cert.ok) return fail('STORE_FAILED', `stored certificate of station ${row.stationId}: ${cert.error}`);
  const key = await importJwsKey(new Uint8Array(cert.value.publicKey.rawData));
  if (!key) return fail('STORE_FAILED', `stored certificate of station ${row.stationId} has an unsupported key`);
  let ca: StationTrust['ca'];
  try {
    const c = new NativeX509(issuingCa);
    ca = { cert: c, key: c.publicKey, notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo) };
  } catch (e) {
    return fail('STORE_FAILED', `stored issuing CA of station ${row.stationId}: ${(e as Error).message}`);
  }
  const currentKey = stationKeyOf(row.certificateSha256, chain.value, null);
  if (!currentKey) return fail('STORE_FAILED', `stored certificate of station ${row.stationId} has an unsupported key`);
  const previousKeys: StationKey[] = [];
  for (const h of history) {
    const c = fromPemChain(h.chainPem);
    const k = c.ok && c.value[0] ? stationKeyOf(h.certSha256, c.value, h.replacedAt) : null;
    if (k) previousKeys.push(k); // unreadable history rows are skipped
  }
  return ok({
    row,
    stationCert,
    issuingCa,
    root,
    stationKey: key,
    currentKey,
    ca,
    previousKeys,
    history: [...history],
  });
}

/** The key of a station chain's certificate for node:crypto verification; null if unreadable or not P-256/P-384. */
function stationKeyOf(
  certificateSha256: string,
  chain: readonly Uint8Array[],
  replacedAt: string | null,
): StationKey | null {
  const der = chain[0]!;
  try {
    const keyObject = new NativeX509(der).publicKey;
    const named = keyObject.asymmetricKeyDetails?.namedCurve;
    const curve = named === 'prime256v1' ? 'P-256' : named === 'secp384r1' ? 'P-384' : null;
    const x5c = chain.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'));
    return curve ? { certificateSha256, stationCert: der, curve, keyObject, x5c, replacedAt } : null;
  } catch {
    return null;
  }
}

/** The key that signed `jws` (its x5c leaf): the enrolled one, or a replaced one (with its replacement time). */
export function signerKeyOf(trust: StationTrust, jws: ParsedJws): StationKey | null {
  if (x5cLeafIs(jws, trust.currentKey.stationCert)) return trust.currentKey;
  return trust.previousKeys.find((k) => x5cLeafIs(jws, k.stationCert)) ?? null;
}

/** Whether something `signer` signed at `madeAt` (ISO) may carry that key: always for the enrolled key. */
export const madeBeforeRotation = (signer: StationKey, madeAt: string): boolean =>
  signer.replacedAt === null || Date.parse(madeAt) < Date.parse(signer.replacedAt);

/**
 * Verify a station-signed JWS that says when it was made (`signedAt`, e.g. a scrap event's scrappedAt): signed by
 * the enrolled key, or by a key replaced by a rotation AFTER `signedAt` (so documents made before a rotation and
 * delivered after it still verify). `signer-mismatch` / `signature-invalid` / `header-invalid` with the reason.
 */
export function verifyStationSigned(
  trust: StationTrust,
  jws: ParsedJws,
  what: string,
  signedAt: string,
): Result<true, { reason: 'signer-mismatch' | 'signature-invalid' | 'header-invalid'; message: string }> {
  const signer = signerKeyOf(trust, jws);
  if (!signer)
    return err({
      reason: 'signer-mismatch',
      message: `${what}: the x5c leaf is not a certificate of station ${trust.row.stationId}`,
    });
  if (!madeBeforeRotation(signer, signedAt))
    return err({
      reason: 'signer-mismatch',
      message: `${what}: signed with the station key replaced at ${signer.replacedAt} (key rotation) but made at ${signedAt}, after the rotation`,
    });
  const v = verifyWithStationKey(signer, jws, what);
  if (!v.ok)
    return err({
      reason: v.error.kind === 'signature' ? 'signature-invalid' : 'header-invalid',
      message: `${v.error.message} (station ${trust.row.stationId})`,
    });
  return ok(true);
}

/** Verify a parsed JWS with a station key (node:crypto, synchronous: same result as verifyParsedJws, faster). */
export function verifyWithStationKey(
  key: Pick<StationKey, 'curve' | 'keyObject'>,
  jws: ParsedJws,
  what: string,
): Result<true, JwsFailure> {
  const expected = key.curve === 'P-256' ? 'ES256' : 'ES384';
  if (jws.header.alg !== expected)
    return err({
      kind: 'header',
      message: `${what}: alg ${jws.header.alg} does not match the ${key.curve} station key`,
    });
  if (jws.signature.length !== (expected === 'ES256' ? 64 : 96))
    return err({ kind: 'signature', message: `${what}: the signature has the wrong length` });
  let valid = false;
  try {
    valid = nodeVerify(
      expected === 'ES256' ? 'sha256' : 'sha384',
      jws.signingInput,
      { key: key.keyObject, dsaEncoding: 'ieee-p1363' },
      jws.signature,
    );
  } catch {
    valid = false;
  }
  return valid
    ? ok(true)
    : err({ kind: 'signature', message: `${what}: the signature does not verify with the enrolled station key` });
}

/** Whether the JWS header's x5c leaf is this certificate. */
export function x5cLeafIs(jws: ParsedJws, der: Uint8Array): boolean {
  const x = jws.header.x5c?.[0];
  if (x === undefined) return false;
  return bytesEqual(new Uint8Array(Buffer.from(x, 'base64')), der);
}
