/**
 * Packed records (batch and bundle format v2, docs/formats.md "Packed JWS"): a station-signed compact JWS carried as
 * JSON with every certificate replaced by its index in one certificate table per batch or bundle, and the payload
 * as a JSON value instead of base64url. Unpacking rebuilds the original compact JWS byte for byte (its header and
 * payload are canonical JSON), so the signature is checked over exactly the bytes that were signed and that the
 * registry stores. `packJws` only packs what unpacks to the same text; anything else travels as the compact JWS.
 * Pure: core/ only.
 */
import { toBase64, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson, canonicalJsonWith } from '../canonical.js';
import { err, ok, type Result } from '../result.js';
import { toPem } from '../pki/pem.js';
import type { JwsHeader, ParsedJws } from './jws.js';

/** A compact JWS as JSON: header members, certificates by index, payload as JSON, signature base64url. */
export interface PackedJws {
  readonly alg: 'ES256' | 'ES384';
  readonly typ?: string;
  readonly kid?: string;
  /** Indexes into the certificate table: the header's x5c, leaf first. */
  readonly x5c?: readonly number[];
  /** The payload JSON value, with `{"$pem": i}`, `{"$der": i}` and `{"$jws": PackedJws}` in place of strings. */
  readonly payload: unknown;
  readonly signature: string;
}

/** Most levels a packed payload may nest (records nest a manifest: far below). */
const MAX_DEPTH = 32;
const PEM_RE = /^-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/;
const STD_B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A compact JWS: its protected header is a JSON object, so its first characters are `eyJ` (`{"`). */
const COMPACT_RE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The certificate table of one batch or bundle while it is built: each certificate (standard base64 DER) once. */
export class CertificateTable {
  private readonly index = new Map<string, number>();
  readonly certificates: string[] = [];

  /** The index of a certificate (standard base64 DER), adding it when new. */
  add(b64: string): number {
    let i = this.index.get(b64);
    if (i === undefined) {
      i = this.certificates.length;
      this.certificates.push(b64);
      this.index.set(b64, i);
    }
    return i;
  }

  /** Forget the certificates added since the table had `size` of them. */
  truncate(size: number): void {
    for (const c of this.certificates.splice(size)) this.index.delete(c);
  }
}

function decodeStd(s: string): Uint8Array | null {
  if (s.length < 4 || !STD_B64_RE.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null;
}

/** A DER SEQUENCE whose length header spans exactly the bytes (what a certificate is at the outside). */
function looksLikeDerSequence(b: Uint8Array): boolean {
  if (b.length < 4 || b[0] !== 0x30) return false;
  const l = b[1]!;
  if (l < 0x80) return l + 2 === b.length;
  const n = l & 0x7f;
  if (n < 1 || n > 3) return false;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return len + 2 + n === b.length;
}

/** The base64 DER of a PEM certificate string, if the string is exactly what toPem makes of it. */
function pemCertificate(s: string): string | null {
  if (!PEM_RE.test(s)) return null;
  const b64 = s.slice(28, -26).replace(/\n/g, '');
  const der = decodeStd(b64);
  return der && toPem(der, 'CERTIFICATE') === s ? b64 : null;
}

function packValue(v: unknown, table: CertificateTable, inChain: boolean, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error('too deep');
  if (typeof v === 'string') {
    const pem = pemCertificate(v);
    if (pem !== null) return { $pem: table.add(pem) };
    if (inChain) {
      const der = decodeStd(v);
      if (der && looksLikeDerSequence(der)) return { $der: table.add(v) };
    }
    if (COMPACT_RE.test(v)) {
      const inner = packJws(v, table, depth + 1);
      if (inner) return { $jws: inner };
    }
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => packValue(x, table, inChain, depth + 1));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$')) throw new Error('reserved member');
      out[k] = packValue(x, table, k === 'chain', depth + 1);
    }
    return out;
  }
  return v;
}

/**
 * Pack a compact JWS whose header and payload are canonical JSON objects; null when it would not unpack to
 * exactly `jws` (then it travels as the compact JWS). Certificates go to `table`.
 */
export function packJws(jws: string, table: CertificateTable, depth = 0): PackedJws | null {
  const parts = jws.split('.');
  if (parts.length !== 3) return null;
  const [h, p, signature] = parts as [string, string, string];
  const mark = table.certificates.length;
  try {
    const headerText = Buffer.from(h, 'base64url').toString('utf8');
    const payloadText = Buffer.from(p, 'base64url').toString('utf8');
    const header = JSON.parse(headerText) as Record<string, unknown>;
    const payload = JSON.parse(payloadText) as unknown;
    if (!header || typeof header !== 'object' || Array.isArray(header)) return null;
    // Not canonical: it would not unpack to the same bytes (the payload is checked by the round trip below).
    if (canonicalJson(header) !== headerText) return null;
    const { alg, typ, kid, x5c, ...rest } = header;
    if (Object.keys(rest).length || (alg !== 'ES256' && alg !== 'ES384')) return null;
    if ((typ !== undefined && typeof typ !== 'string') || (kid !== undefined && typeof kid !== 'string')) return null;
    if (x5c !== undefined && (!Array.isArray(x5c) || !x5c.every((c) => typeof c === 'string'))) return null;
    const packed: PackedJws = {
      alg,
      ...(typ !== undefined ? { typ } : {}),
      ...(kid !== undefined ? { kid } : {}),
      ...(x5c !== undefined ? { x5c: (x5c as string[]).map((c) => table.add(c)) } : {}),
      payload: packValue(payload, table, false, depth + 1),
      signature,
    };
    // The outermost JWS is rebuilt and compared as a whole (nested ones with it): packed only if it round-trips.
    if (depth > 0) return packed;
    const back = unpackJws(packed, table.certificates);
    if (back.ok && back.value === jws) return packed;
  } catch {
    // not packable: below
  }
  table.truncate(mark); // nothing of this JWS stays in the table
  return null;
}

/** One record of a v2 batch or bundle: packed, or the compact JWS as it is. */
export type PackedRecord = PackedJws | string;

/** Pack the records of one batch or bundle: the certificate table and each record packed (or kept as it is). */
export function packRecords(records: readonly string[]): {
  certificates: string[];
  records: PackedRecord[];
} {
  const table = new CertificateTable();
  const out = records.map((r) => packJws(r, table) ?? r);
  return { certificates: table.certificates, records: out };
}

/**
 * The PEM text of each table entry a batch's records refer to, made once per table (records share certificates),
 * keyed by the entry's text (a table changed in place is never answered from what it held before).
 */
const pemTexts = new WeakMap<readonly string[], Map<string, string>>();
function pemCache(certs: readonly string[]): Map<string, string> {
  let m = pemTexts.get(certs);
  if (!m) pemTexts.set(certs, (m = new Map()));
  return m;
}

/**
 * The canonical JSON text of a packed payload: `{"$pem": i}`, `{"$der": i}` and `{"$jws": PackedJws}` replaced by
 * what they stand for as it is written (no unpacked copy of the payload is built).
 */
function unpackedText(payload: unknown, certs: readonly string[], depth: number): string {
  const cache = pemCache(certs);
  const ref = (o: Record<string, unknown>, k: string): { i: number; c: string } => {
    const i = o[k];
    const c = typeof i === 'number' && Number.isInteger(i) ? certs[i] : undefined;
    if (c === undefined) throw new Error(`${k} names no certificate of the table`);
    return { i: i as number, c };
  };
  return canonicalJsonWith(payload, (v, keys, d) => {
    if (depth + d > MAX_DEPTH) throw new Error('the packed payload nests too deep');
    if (keys === null) return undefined;
    const o = v as Record<string, unknown>;
    if (keys.length === 1) {
      const k = keys[0]!;
      if (k === '$pem') {
        const { c } = ref(o, k);
        let pem = cache.get(c);
        if (pem === undefined) {
          const der = decodeStd(c);
          if (!der) throw new Error('a certificate of the table is not base64');
          cache.set(c, (pem = toPem(der, 'CERTIFICATE')));
        }
        return pem;
      }
      if (k === '$der') return ref(o, k).c;
      if (k === '$jws') {
        const inner = unpackJwsAt(o[k], certs, depth + d + 1);
        if (!inner.ok) throw new Error(inner.error);
        return inner.value;
      }
    }
    for (const k of keys) if (k.startsWith('$')) throw new Error(`unknown packed member ${JSON.stringify(k)}`);
    return undefined;
  });
}

/** A packed JWS rebuilt: its parts, base64url-encoded as the compact JWS carries them. */
interface Rebuilt {
  readonly header: JwsHeader;
  readonly h64: string;
  /** The payload bytes (canonical JSON, UTF-8) and their base64url. */
  readonly body: Uint8Array;
  readonly p64: string;
  readonly signature: string;
}

function rebuild(p: unknown, certs: readonly string[], depth: number): Result<Rebuilt, string> {
  if (!p || typeof p !== 'object' || Array.isArray(p)) return err('a packed JWS is not an object');
  const { alg, typ, kid, x5c, payload, signature, ...rest } = p as Record<string, unknown>;
  if (Object.keys(rest).length) return err(`a packed JWS has unknown members (${Object.keys(rest).join(', ')})`);
  if (alg !== 'ES256' && alg !== 'ES384') return err('a packed JWS has no ES256/ES384 alg');
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]+$/.test(signature))
    return err('a packed JWS has no base64url signature');
  if ((typ !== undefined && typeof typ !== 'string') || (kid !== undefined && typeof kid !== 'string'))
    return err('a packed JWS has a typ or kid that is not a string');
  if (payload === undefined) return err('a packed JWS has no payload');
  try {
    const header: Record<string, unknown> = { alg };
    if (typ !== undefined) header['typ'] = typ;
    if (kid !== undefined) header['kid'] = kid;
    if (x5c !== undefined) {
      if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 8) return err('a packed JWS has a bad x5c');
      header['x5c'] = x5c.map((i) => {
        const c = typeof i === 'number' && Number.isInteger(i) ? certs[i] : undefined;
        if (c === undefined) throw new Error('x5c names no certificate of the table');
        return c;
      });
    }
    const body = utf8(unpackedText(payload, certs, depth + 1));
    return ok({
      header: header as unknown as JwsHeader,
      h64: toBase64Url(utf8(canonicalJson(header))),
      body,
      p64: toBase64Url(body),
      signature,
    });
  } catch (e) {
    return err(`a packed JWS cannot be rebuilt: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function unpackJwsAt(p: unknown, certs: readonly string[], depth: number): Result<string, string> {
  const r = rebuild(p, certs, depth);
  return r.ok ? ok(`${r.value.h64}.${r.value.p64}.${r.value.signature}`) : r;
}

/** A packed record rebuilt (unpackJwsParsed): the compact JWS, and what core/hq/jws.ts parseCompactJws reads from it. */
export interface UnpackedJws {
  readonly jws: string;
  /**
   * The parse of `jws`, made from its parts without decoding it again; null when parseCompactJws would refuse `jws`
   * (a non-canonical signature, an x5c entry that is not base64): the caller parses `jws` itself for the refusal.
   */
  readonly parsed: ParsedJws | null;
  /** What the one-pass rebuild learnt on the way (null when the record was rebuilt by the reference path). */
  readonly facts: RebuildFacts | null;
}

/** A JWS rebuilt inside a payload (a record's manifest): parseCompactJws of its text, and its payload as JSON. */
export interface NestedJws {
  readonly parsed: ParsedJws;
  readonly value: unknown;
}

/**
 * Facts about a rebuilt record, each exactly what the verifier would otherwise compute again from the text: the
 * payload as `JSON.parse` of its UTF-8 reads it, the parse (parseCompactJws) and payload value of each JWS rebuilt
 * inside the payload, by its exact text, and the DER of each certificate PEM text written from the table (what
 * core/pki/pem.ts `fromPem(pem, 'CERTIFICATE')` returns for it).
 */
export interface RebuildFacts {
  readonly value: unknown;
  readonly nested: ReadonlyMap<string, NestedJws>;
  readonly pemDer: ReadonlyMap<string, Uint8Array>;
}

const X5C_ENTRY = /^[A-Za-z0-9+/]+={0,2}$/;
const B64URL_SIG = /^[A-Za-z0-9_-]+$/;

/** A rebuilt protected header: the header, its base64url, and whether parseCompactJws takes its x5c as it is. */
interface HeaderEntry {
  /** The table entries it was made from (a table changed since is not trusted). */
  readonly x5c: readonly string[];
  readonly header: JwsHeader;
  readonly h64: string;
  readonly x5cCanonical: boolean;
}

/** What the records of one certificate table share while rebuilt: each entry's PEM and DER, the headers made. */
interface TableCache {
  readonly pem: Map<number, { src: string; pem: string; der: Uint8Array } | null>;
  readonly headers: Map<string, HeaderEntry | null>;
}
const tableCaches = new WeakMap<readonly string[], TableCache>();
function tableCache(certs: readonly string[]): TableCache {
  let c = tableCaches.get(certs);
  if (!c) tableCaches.set(certs, (c = { pem: new Map(), headers: new Map() }));
  return c;
}

const isWellFormedString = (String.prototype as unknown as { isWellFormed?: (this: string) => boolean }).isWellFormed;
/** A table index as the packed form writes it: an integer naming an entry; -1 otherwise. */
const tableIndex = (i: unknown, certs: readonly string[]): number =>
  typeof i === 'number' && Number.isInteger(i) && i >= 0 && i < certs.length ? i : -1;
/** The ASCII bytes of `h64 "." p64`, written straight into one buffer (no joined string is made first). */
function signingInput(h64: string, p64: string): Uint8Array {
  const b = Buffer.allocUnsafe(h64.length + 1 + p64.length);
  b.write(h64, 0, 'latin1');
  b[h64.length] = 0x2e;
  b.write(p64, h64.length + 1, 'latin1');
  return bytesOf(b);
}

/** A Buffer's bytes as a plain Uint8Array (what parseCompactJws returns), without copying. */
const bytesOf = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const PACKED_MEMBERS = new Set(['alg', 'typ', 'kid', 'x5c', 'payload', 'signature']);
/** Returned by the one-pass rebuild when it is not sure: the reference path decides (and words any refusal). */
const UNSURE = Symbol('unsure');

/**
 * The one-pass rebuild of a packed JWS (the reference is `rebuild` above): the payload is copied with its
 * `$pem`/`$der`/`$jws` members replaced (only the objects on the way to a reference are new), checking on the way
 * that every object's members are already in canonical order, every string is well-formed Unicode and every number is
 * one JSON.stringify writes as JCS does; then JSON.stringify of the copy IS its canonical JSON (same member order, same
 * string and number forms), written natively. Anything else (an unsorted object, -0, a reserved member, too deep, a bad reference, a value JSON cannot
 * hold) answers UNSURE, and the caller rebuilds with the reference path, which accepts or refuses with its own
 * words. The packed value is never changed.
 */
class OnePass {
  readonly nested = new Map<string, NestedJws>();
  readonly pemDer = new Map<string, Uint8Array>();
  private readonly cache: TableCache;

  constructor(private readonly certs: readonly string[]) {
    this.cache = tableCache(certs);
  }

  /** The rebuilt JWS at `depth` (as `rebuild`), or UNSURE. */
  jws(p: unknown, depth: number): { jws: string; parsed: ParsedJws | null; value: unknown } | typeof UNSURE {
    if (!p || typeof p !== 'object' || Array.isArray(p) || Object.getPrototypeOf(p) !== Object.prototype) return UNSURE;
    const o = p as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!PACKED_MEMBERS.has(k)) return UNSURE;
    const { alg, typ, kid, x5c, payload, signature } = o;
    if (alg !== 'ES256' && alg !== 'ES384') return UNSURE;
    if (typeof signature !== 'string' || !B64URL_SIG.test(signature)) return UNSURE;
    if ((typ !== undefined && typeof typ !== 'string') || (kid !== undefined && typeof kid !== 'string')) return UNSURE;
    if (payload === undefined) return UNSURE;
    const h = this.header(alg, typ, kid, x5c);
    if (h === null) return UNSURE;
    const value = this.value(payload, depth + 1);
    if (value === UNSURE) return UNSURE;
    const text = JSON.stringify(value);
    const buf = Buffer.from(text, 'utf8');
    const body = bytesOf(buf);
    const p64 = buf.toString('base64url');
    const jws = `${h.h64}.${p64}.${signature}`;
    const sig = Buffer.from(signature, 'base64url');
    const parsed =
      h.x5cCanonical && sig.toString('base64url') === signature
        ? {
            header: h.header,
            payload: body,
            signingInput: signingInput(h.h64, p64),
            signature: bytesOf(sig),
          }
        : null;
    return { jws, parsed, value };
  }

  /** The protected header (once per distinct header of the table), or null when the reference path must decide. */
  private header(alg: string, typ: unknown, kid: unknown, x5c: unknown): HeaderEntry | null {
    if (x5c !== undefined) {
      if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 8) return null;
      for (const i of x5c) if (tableIndex(i, this.certs) < 0) return null;
    }
    // typ and kid are strings or absent, x5c integers or absent: this text names one header only.
    const key = JSON.stringify([alg, typ ?? 0, kid ?? 0, x5c ?? 0]);
    let e = this.cache.headers.get(key);
    if (e && (x5c as number[] | undefined)?.some((i, n) => this.certs[i] !== e!.x5c[n])) e = undefined;
    if (e === undefined) {
      const header: Record<string, unknown> = { alg };
      if (typ !== undefined) header['typ'] = typ;
      if (kid !== undefined) header['kid'] = kid;
      if (x5c !== undefined) header['x5c'] = (x5c as number[]).map((i) => this.certs[i]!);
      let h64: string | null = null;
      try {
        h64 = toBase64Url(utf8(canonicalJson(header)));
      } catch {
        h64 = null; // a typ or kid that is not Unicode: the reference path refuses it
      }
      e = h64
        ? {
            x5c: (header['x5c'] as string[] | undefined) ?? [],
            header: header as unknown as JwsHeader,
            h64,
            x5cCanonical: ((header['x5c'] as string[] | undefined) ?? []).every((c) => X5C_ENTRY.test(c)),
          }
        : null;
      this.cache.headers.set(key, e);
    }
    return e;
  }

  /**
   * The packed payload value at nesting `level` with its references replaced (objects and arrays holding none are
   * the packed ones, shared: nothing is ever written into them); UNSURE when not sure.
   */
  private value(v: unknown, level: number): unknown {
    switch (typeof v) {
      case 'string':
        return isWellFormedString && isWellFormedString.call(v) ? v : UNSURE;
      case 'number':
        return Number.isFinite(v) && !Object.is(v, -0) ? v : UNSURE;
      case 'boolean':
        return v;
      case 'object':
        break;
      default:
        return UNSURE;
    }
    if (v === null) return v;
    if (level > MAX_DEPTH) return UNSURE;
    if (Array.isArray(v)) {
      let out: unknown[] | null = null; // copied only from the first element that changes
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        const x = this.value(e, level + 1);
        if (x === UNSURE) return UNSURE;
        if (x !== e && !out) out = v.slice(0, i);
        if (out) out.push(x);
      }
      return out ?? v;
    }
    if (Object.getPrototypeOf(v) !== Object.prototype) return UNSURE;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0]!.startsWith('$')) return this.reference(o, keys[0]!, level);
    let out: Record<string, unknown> | null = null; // copied only from the first member that changes
    let prev = '';
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      // Canonical order already (UTF-16 code units, as JCS sorts), so the copy is written in that order.
      if ((i > 0 && !(prev < k)) || k.startsWith('$') || k === '__proto__') return UNSURE;
      if (!isWellFormedString || !isWellFormedString.call(k)) return UNSURE;
      const e = o[k];
      const x = this.value(e, level + 1);
      if (x === UNSURE) return UNSURE;
      if (x !== e && !out) {
        out = {};
        for (let j = 0; j < i; j++) out[keys[j]!] = o[keys[j]!];
      }
      if (out) out[k] = x;
      prev = k;
    }
    return out ?? o;
  }

  /** `{"$pem": i}`, `{"$der": i}` or `{"$jws": packed}` at `level`: what it stands for, or UNSURE. */
  private reference(o: Record<string, unknown>, k: string, level: number): unknown {
    if (k === '$jws') {
      const inner = this.jws(o[k], level + 1);
      if (inner === UNSURE) return UNSURE;
      if (inner.parsed) this.nested.set(inner.jws, { parsed: inner.parsed, value: inner.value });
      return inner.jws;
    }
    const i = tableIndex(o[k], this.certs);
    if (i < 0) return UNSURE;
    if (k === '$der') return this.certs[i]!;
    if (k !== '$pem') return UNSURE;
    const src = this.certs[i]!;
    let e = this.cache.pem.get(i);
    if (e === undefined || (e !== null && e.src !== src)) {
      const der = decodeStd(src);
      e = der ? { src, pem: toPem(der, 'CERTIFICATE'), der } : null;
      this.cache.pem.set(i, e);
    }
    if (!e) return UNSURE;
    this.pemDer.set(e.pem, e.der);
    return e.pem;
  }
}

/**
 * unpackJws, with the parse of the rebuilt JWS (the header, the payload bytes, the signing input and the
 * signature, exactly what parseCompactJws returns for it) taken from the rebuild instead of decoding the text again.
 * The one-pass rebuild (OnePass) answers when it is sure, with the facts it learnt; otherwise the reference rebuild.
 */
export function unpackJwsParsed(p: PackedJws, certificates: readonly string[]): Result<UnpackedJws, string> {
  const one = new OnePass(certificates);
  const fast = one.jws(p, 0);
  if (fast !== UNSURE)
    return ok({
      jws: fast.jws,
      parsed: fast.parsed,
      facts: fast.parsed ? { value: fast.value, nested: one.nested, pemDer: one.pemDer } : null,
    });
  const r = rebuild(p, certificates, 0);
  if (!r.ok) return r;
  const { header, h64, body, p64, signature } = r.value;
  const jws = `${h64}.${p64}.${signature}`;
  const sig = Buffer.from(signature, 'base64url');
  const canonical = sig.toString('base64url') === signature && (header.x5c ?? []).every((c) => X5C_ENTRY.test(c));
  if (!canonical) return ok({ jws, parsed: null, facts: null });
  return ok({
    jws,
    parsed: {
      header,
      payload: body,
      signingInput: utf8(`${h64}.${p64}`),
      signature: new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength),
    },
    facts: null,
  });
}

/** unpackJwsParsed by the reference rebuild only (tests compare the one-pass rebuild with it). */
export function unpackJwsReference(p: PackedJws, certificates: readonly string[]): Result<string, string> {
  return unpackJwsAt(p, certificates, 0);
}

/**
 * Rebuild the compact JWS of a packed record with the certificate table of its batch or bundle (the message says
 * why it cannot). A string is already a compact JWS.
 */
export function unpackJws(p: PackedRecord, certificates: readonly string[]): Result<string, string> {
  return typeof p === 'string' ? ok(p) : unpackJwsAt(p, certificates, 0);
}

/** Standard base64 of DER (a certificate table entry). */
export const certificateEntry = (der: Uint8Array): string => toBase64(der);
