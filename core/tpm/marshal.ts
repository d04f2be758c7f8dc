/**
 * TPM 2.0 marshalling: big-endian integers, TPM2B (a UINT16 size then that many bytes) and lists
 * (TPM 2.0 Library Part 1 §18 "Command/response structure", Part 2 §10.4 (TPM2B) and §10.9 (TPML)).
 *
 * Responses come from an untrusted relay (a board), so `TpmReader` never reads past its end and never throws:
 * the first out-of-bounds or invalid read makes it *failed* (sticky), later reads return zeros/empty, and the
 * caller turns `reader.result(value)` into a coded TPM_RESPONSE_MALFORMED error. Loops over counts read from the
 * wire must bound the count (`count(max)`) and stop when `failed`.
 */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';

/** Builds a byte string; grows as needed. */
export class TpmWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    for (const s of [24, 16, 8, 0]) this.buf[this.len++] = (v >>> s) & 0xff;
    return this;
  }

  u64(v: bigint): this {
    return this.u32(Number((v >> 32n) & 0xffffffffn)).u32(Number(v & 0xffffffffn));
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** TPM2B: UINT16 size, then the bytes. Throws (a bug) above 0xffff bytes. */
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new Error(`TPM2B of ${b.length} bytes`);
    return this.u16(b.length).bytes(b);
  }

  /** A TPM2B whose content is written by `fill` (e.g. TPM2B_PUBLIC around a TPMT_PUBLIC). */
  sized(fill: (w: TpmWriter) => void): this {
    const inner = new TpmWriter();
    fill(inner);
    return this.tpm2b(inner.toBytes());
  }

  get length(): number {
    return this.len;
  }

  toBytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Bounds-checked reader with a sticky failure (see the module header). */
export class TpmReader {
  private pos = 0;
  private problem: string | undefined;

  constructor(
    private readonly buf: Uint8Array,
    /** What is being parsed, for the error message ("TPM2_Quote response"). */
    private readonly what = 'TPM data',
  ) {}

  get failed(): boolean {
    return this.problem !== undefined;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Mark the input malformed (the first reason wins). */
  fail(reason: string): void {
    this.problem ??= `${reason} at offset ${this.pos}`;
  }

  private take(n: number): Uint8Array | undefined {
    if (this.problem !== undefined) return undefined;
    if (n < 0 || this.pos + n > this.buf.length) {
      this.fail(`needs ${n} bytes, ${this.buf.length - this.pos} left`);
      return undefined;
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    return this.take(1)?.[0] ?? 0;
  }

  u16(): number {
    const b = this.take(2);
    return b ? (b[0]! << 8) | b[1]! : 0;
  }

  u32(): number {
    const b = this.take(4);
    return b ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 : 0;
  }

  u64(): bigint {
    const hi = this.u32();
    const lo = this.u32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** `n` bytes (a copy). */
  bytes(n: number): Uint8Array {
    return this.take(n)?.slice() ?? new Uint8Array(0);
  }

  /** TPM2B: UINT16 size then bytes; fails when the size exceeds `max`. */
  tpm2b(max = 0xffff): Uint8Array {
    const n = this.u16();
    if (n > max) {
      this.fail(`TPM2B of ${n} bytes (at most ${max})`);
      return new Uint8Array(0);
    }
    return this.bytes(n);
  }

  /** A TPM2B parsed by `parse` over exactly its content (trailing bytes inside it make the reader failed). */
  sized<T>(parse: (r: TpmReader) => T, max = 0xffff): T {
    const inner = new TpmReader(this.tpm2b(max), this.what);
    const v = parse(inner);
    inner.end();
    if (inner.problem !== undefined) this.fail(`inside a sized structure: ${inner.problem}`);
    return v;
  }

  /** A UINT32 list count; fails above `max` (so a forged count cannot make a loop run billions of times). */
  count(max: number): number {
    const n = this.u32();
    if (n > max) {
      this.fail(`list of ${n} entries (at most ${max})`);
      return 0;
    }
    return n;
  }

  /** A copy of the bytes consumed since offset `start` (e.g. a structure's exact encoding). */
  consumedSince(start: number): Uint8Array {
    return this.buf.slice(Math.min(start, this.pos), this.pos);
  }

  /** Fails unless every byte was consumed. */
  end(): void {
    if (this.problem === undefined && this.pos !== this.buf.length)
      this.fail(`${this.buf.length - this.pos} trailing bytes`);
  }

  /** `value` if nothing failed, else a TPM_RESPONSE_MALFORMED error naming what and where. */
  result<T>(value: T): Result<T> {
    if (this.problem !== undefined) return fail('TPM_RESPONSE_MALFORMED', `${this.what}: ${this.problem}`);
    return ok(value);
  }
}

/** Parse all of `bytes` with `parse`: malformed or trailing bytes give TPM_RESPONSE_MALFORMED. */
export function parseAll<T>(bytes: Uint8Array, what: string, parse: (r: TpmReader) => T): Result<T> {
  const r = new TpmReader(bytes, what);
  const v = parse(r);
  r.end();
  return r.result(v);
}
