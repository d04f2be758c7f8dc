/** marshal.ts: the reader never reads past its end, fails sticky with a coded error, bounds list counts. */
import { describe, expect, it } from 'vitest';
import { decodeRc } from './constants.js';
import { TpmReader, TpmWriter, parseAll } from './marshal.js';

describe('TpmWriter / TpmReader', () => {
  it('round-trips integers, TPM2B and nested sized structures (big-endian)', () => {
    const bytes = new TpmWriter()
      .u8(0xab)
      .u16(0x1234)
      .u32(0xdeadbeef)
      .u64(0x0102030405060708n)
      .tpm2b(Uint8Array.of(9, 8, 7))
      .sized((w) => w.u16(0xcafe))
      .toBytes();
    expect(Buffer.from(bytes).toString('hex')).toBe('ab1234deadbeef01020304050607080003090807' + '0002cafe');
    const r = new TpmReader(bytes);
    expect([r.u8(), r.u16(), r.u32(), r.u64()]).toEqual([0xab, 0x1234, 0xdeadbeef, 0x0102030405060708n]);
    expect(Array.from(r.tpm2b())).toEqual([9, 8, 7]);
    expect(r.sized((s) => s.u16())).toBe(0xcafe);
    r.end();
    expect(r.result('done')).toEqual({ ok: true, value: 'done' });
  });

  it('a read past the end fails the reader (sticky), returns zeros, and never throws', () => {
    const r = new TpmReader(Uint8Array.of(0, 5, 1, 2), 'TPM2_Test response');
    expect(r.tpm2b().length).toBe(0); // announces 5, has 2
    expect(r.failed).toBe(true);
    expect(r.u32()).toBe(0);
    const res = r.result(1);
    expect(res.ok ? '' : res.error.code).toBe('TPM_RESPONSE_MALFORMED');
    expect(res.ok ? '' : res.error.message).toContain('TPM2_Test response: needs 5 bytes, 2 left at offset 2');
  });

  it('refuses oversized TPM2B, forged list counts and trailing bytes', () => {
    const big = parseAll(new TpmWriter().tpm2b(new Uint8Array(70)).toBytes(), 'x', (r) => r.tpm2b(64));
    expect(big.ok).toBe(false);
    const count = parseAll(new TpmWriter().u32(0xffffffff).toBytes(), 'x', (r) => r.count(8));
    expect(count.ok ? '' : count.error.message).toContain('list of 4294967295 entries (at most 8)');
    const trailing = parseAll(Uint8Array.of(1, 2, 3), 'x', (r) => r.u16());
    expect(trailing.ok ? '' : trailing.error.message).toContain('1 trailing bytes');
    const inner = parseAll(new TpmWriter().sized((w) => w.u32(1)).toBytes(), 'x', (r) => r.sized((s) => s.u16()));
    expect(inner.ok ? '' : inner.error.message).toContain('inside a sized structure');
  });
});

describe('decodeRc', () => {
  it('names format-zero, warning and format-one codes with their handle/parameter/session number', () => {
    expect(decodeRc(0x921)).toEqual({ base: 0x921, name: 'TPM_RC_LOCKOUT' });
    expect(decodeRc(0x14c).name).toBe('TPM_RC_NV_DEFINED');
    expect(decodeRc(0x2df)).toEqual({ base: 0x09f, name: 'TPM_RC_INTEGRITY (parameter 2)' });
    expect(decodeRc(0x98e)).toEqual({ base: 0x08e, name: 'TPM_RC_AUTH_FAIL (session 1)' });
    expect(decodeRc(0x18b)).toEqual({ base: 0x08b, name: 'TPM_RC_HANDLE (handle 1)' });
    expect(decodeRc(0x1234).name).toBe('TPM_RC_0x1234');
  });
});
