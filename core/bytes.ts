/**
 * Byte helpers: hex, base64 and base64url, and digests (SHA-1/256/384). Pure: works in Node and the browser. A digest
 * is computed synchronously with node:crypto where the runtime has it (Node: the station, the registry, their
 * workers; reached through `process.getBuiltinModule`, never imported, so the renderer bundle has no Node import), and
 * with WebCrypto where it has not (the browser). node:crypto's hash is ~5 µs of CPU for a record-sized input;
 * WebCrypto's `digest` in Node is a thread-pool job of ~60 µs (docs/benchmarks.md, issue 12).
 */
import type * as NodeCryptoModule from 'node:crypto';

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(h: string): Uint8Array {
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw new Error('invalid hex');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toBase64Url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Standard base64 with padding (RFC 4648 §4), as x5c and the record's attestation evidence use. */
export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Decode standard base64 (strict: the alphabet with padding, canonical). */
export function fromBase64(s: string): Uint8Array {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) throw new Error('invalid base64');
  const b = new Uint8Array(Buffer.from(s, 'base64'));
  if (toBase64(b) !== s) throw new Error('non-canonical base64');
  return b;
}

export function fromBase64Url(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('invalid base64url');
  return new Uint8Array(Buffer.from(s, 'base64url'));
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** node:crypto of this runtime, or null (a browser, or a runtime without `process.getBuiltinModule`). */
export const nodeCrypto: typeof NodeCryptoModule | null = (() => {
  try {
    const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
    return (get?.('node:crypto') as typeof NodeCryptoModule | undefined) ?? null;
  } catch {
    return null;
  }
})();

/** A digest core uses (the WebCrypto names). */
export type DigestName = 'SHA-1' | 'SHA-256' | 'SHA-384';

const NODE_DIGEST: Record<DigestName, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384' };

/** The digest of `data`, synchronously with node:crypto; null where the runtime has no node:crypto (the browser). */
export function digestSync(alg: DigestName, data: Uint8Array): Uint8Array | null {
  if (!nodeCrypto) return null;
  // A copy of its own: the digest's bytes, never a view of a larger buffer.
  return new Uint8Array(nodeCrypto.createHash(NODE_DIGEST[alg]).update(data).digest());
}

/** The digest of `data` with WebCrypto (the browser's path; the Node path gives the same bytes, digestSync). */
export async function webDigest(alg: DigestName, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest(alg, data as Uint8Array<ArrayBuffer>));
}

/** The digest of `data`: node:crypto where there is one (digestSync), else WebCrypto. */
export async function digest(alg: DigestName, data: Uint8Array): Promise<Uint8Array> {
  return digestSync(alg, data) ?? webDigest(alg, data);
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return digest('SHA-256', data);
}

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return toHex(await sha256(typeof data === 'string' ? utf8(data) : data));
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
