/**
 * A provisioning record's embedded manifest and its device certificate's issuing chain, for every record format
 * (docs/formats.md "Provisioning record"): v1/v2 carry the manifest as its compact JWS (`manifest.jws`) and the chain
 * as PEM (`chain`); v3 carries the manifest as `{payload, signature}` and the chain once, in the record's own `x5c`.
 * The one place the v3 rule lives: the manifest JWS is BASE64URL(JCS({alg, typ, x5c} of the record's header)) "."
 * BASE64URL(JCS(payload)) "." signature. Light on purpose (no zod): `station records` and the registry's hot path
 * read it. Imports core only.
 */
import { fromBase64, sha256Hex, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { err, ok, type Result } from '../result.js';
import { fromPemChain } from '../pki/pem.js';

/** The typ of a signed baseline manifest (core/provisioning/baseline.ts re-exports it). */
export const MANIFEST_TYP = 'line-station-manifest+jws';
/** Records with the station chain once: no `chain`, the manifest as `{payload, signature}` (docs/formats.md). */
export const RECORD_SCHEMA_V3 = 'line-station/provisioning-record/v3';

/** A v3 record's manifest: the manifest payload (ManifestSchema) and the manifest JWS's signature (base64url). */
export interface EmbeddedManifest {
  readonly payload: unknown;
  readonly signature: string;
}

/** The members of a record's protected header the v3 rules read (x5c: standard base64 DER, station certificate first). */
export interface RecordHeader {
  readonly alg: string;
  readonly x5c?: readonly string[];
}

/** The base64url protected header of a v3 record's manifest: canonical JSON of {alg, typ, x5c} (x5c the record's). */
export function manifestHeaderB64(header: RecordHeader): string {
  return toBase64Url(utf8(canonicalJson({ alg: header.alg, typ: MANIFEST_TYP, x5c: header.x5c ?? [] })));
}

/** A v3 manifest JWS rebuilt: its text, its two base64url parts and its payload bytes (the signed canonical JSON). */
export interface RebuiltManifest {
  readonly jws: string;
  readonly h64: string;
  readonly p64: string;
  readonly payload: Uint8Array;
}

/**
 * The compact manifest JWS of a v3 record, rebuilt from the record's header (`h64`: manifestHeaderB64 of it, when
 * the caller has it already). The message says why it cannot be (no x5c, a payload that is not JSON JCS can write,
 * a signature that is not base64url).
 */
export function rebuildManifest(
  header: RecordHeader,
  m: EmbeddedManifest,
  h64?: string,
): Result<RebuiltManifest, string> {
  if (!header.x5c || header.x5c.length === 0) return err('the record header has no x5c to rebuild the manifest with');
  if (typeof m.signature !== 'string' || !/^[A-Za-z0-9_-]+$/.test(m.signature))
    return err('manifest.signature is not base64url');
  if (!m.payload || typeof m.payload !== 'object' || Array.isArray(m.payload))
    return err('manifest.payload is not a JSON object');
  let payload: Uint8Array;
  try {
    payload = utf8(canonicalJson(m.payload));
  } catch (e) {
    return err(`manifest.payload cannot be written as canonical JSON (${(e as Error).message})`);
  }
  const h = h64 ?? manifestHeaderB64(header);
  const p64 = toBase64Url(payload);
  return ok({ jws: `${h}.${p64}.${m.signature}`, h64: h, p64, payload });
}

/**
 * The v3 `manifest` member for a manifest JWS the station signed: its payload and signature, when the JWS rebuilds
 * byte for byte with the record's `alg` and `x5c` (rebuildManifest); null otherwise (e.g. signed under another chain,
 * or not canonical): the station then writes a v2 record. A run resumed across a station key rotation does not get
 * here with the old manifest: its baseline step signs it again with the current key (core/provisioning/flow.ts).
 */
export function embedManifest(manifestJws: string, header: RecordHeader): EmbeddedManifest | null {
  const parts = manifestJws.split('.');
  if (parts.length !== 3) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(parts[1]!, 'base64url')));
  } catch {
    return null;
  }
  const m: EmbeddedManifest = { payload, signature: parts[2]! };
  const back = rebuildManifest(header, m);
  return back.ok && back.value.jws === manifestJws ? m : null;
}

/** The protected header of a compact JWS (its alg and x5c), or null when it cannot be read. */
export function jwsHeaderOf(jws: string): RecordHeader | null {
  const h = jws.slice(0, Math.max(0, jws.indexOf('.')));
  try {
    const v = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
    if (!v || typeof v !== 'object') return null;
    const { alg, x5c } = v as { alg?: unknown; x5c?: unknown };
    if (typeof alg !== 'string') return null;
    if (x5c !== undefined && (!Array.isArray(x5c) || !x5c.every((c) => typeof c === 'string'))) return null;
    return x5c === undefined ? { alg } : { alg, x5c: x5c as string[] };
  } catch {
    return null;
  }
}

/**
 * Whether a compact JWS was signed with exactly this `alg` and `x5c` (the same strings in the same order): false for
 * a manifest signed before a station key rotation, whose signer is not the station certificate that signs the record
 * now (core/provisioning/flow.ts re-signs it, docs/formats.md "Baseline manifest").
 */
export function signedWithHeader(jws: string, header: RecordHeader): boolean {
  const h = jwsHeaderOf(jws);
  const want = header.x5c ?? [];
  const got = h?.x5c ?? [];
  return h !== null && h.alg === header.alg && got.length === want.length && got.every((c, i) => c === want[i]);
}

/** SHA-256 (hex) of the x5c leaf (the signer's certificate) of a compact JWS; null when it has none. */
export async function jwsLeafSha256(jws: string): Promise<string | null> {
  const leaf = jwsHeaderOf(jws)?.x5c?.[0];
  if (leaf === undefined) return null;
  try {
    return await sha256Hex(fromBase64(leaf));
  } catch {
    return null;
  }
}

const asObject = (x: unknown): Record<string, unknown> | null =>
  x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : null;

/**
 * The manifest JWS of a record payload (parsed JSON) of any version: v1/v2 `manifest.jws` as it is, v3 rebuilt with
 * the record's protected header (`header`; jwsHeaderOf of the record JWS). The message says why there is none.
 */
export function recordManifestJws(record: unknown, header: RecordHeader | null): Result<string, string> {
  const r = asObject(record);
  const m = asObject(r?.['manifest']);
  if (!r || !m) return err('the record has no manifest');
  if (r['schema'] !== RECORD_SCHEMA_V3)
    return typeof m['jws'] === 'string' ? ok(m['jws']) : err('the record has no manifest.jws');
  if (!header) return err('the record header cannot be read');
  const back = rebuildManifest(header, { payload: m['payload'], signature: m['signature'] as string });
  return back.ok ? ok(back.value.jws) : back;
}

/**
 * The issuing chain of a record's device certificate, DER, issuing CA first, the root last: v1/v2 the `chain` PEM
 * strings, v3 the record's x5c after the station certificate. The message says why it cannot be read.
 */
export function recordIssuingChain(record: unknown, header: RecordHeader | null): Result<Uint8Array[], string> {
  const r = asObject(record);
  if (!r) return err('the record is not a JSON object');
  if (r['schema'] === RECORD_SCHEMA_V3) {
    if (!header?.x5c || header.x5c.length < 2) return err('the record header has no issuing chain in x5c');
    try {
      return ok(header.x5c.slice(1).map((c) => fromBase64(c)));
    } catch {
      return err('the record header x5c is not standard base64');
    }
  }
  const chain = r['chain'];
  if (!Array.isArray(chain)) return err('the record has no chain');
  const out: Uint8Array[] = [];
  for (const pem of chain) {
    const d = typeof pem === 'string' ? fromPemChain(pem) : null;
    if (!d?.ok) return err('a chain entry of the record is not a PEM certificate');
    out.push(...d.value);
  }
  return ok(out);
}
