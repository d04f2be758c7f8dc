/**
 * Bounded memos keyed on exact bytes, for what the PKI hot path parses or imports once and reuses (the station CA
 * certificate, attestation roots and vendor chains, docs/architecture.md "PKI hot path"). A key is the bytes
 * themselves (length-prefixed latin1), so two inputs share an entry only when they are the same bytes.
 */

/** A Map that forgets its least recently used entry beyond `max`. */
export class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}

  /** The value under `k` (and mark it used), or undefined. */
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }

  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }
}

/** The memo key of exact bytes: their length and the bytes as a latin1 string (no two byte strings share one). */
export function bytesKey(der: Uint8Array): string {
  return `${der.length}:${Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1')}`;
}
