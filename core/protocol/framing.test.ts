import { describe, expect, it } from 'vitest';
import {
  cobsDecode,
  cobsEncode,
  crc32,
  encodeFrame,
  FrameDecoder,
  MAX_ENCODED,
  MAX_FRAME,
  MAX_PAYLOAD,
  type DecodedFrame,
  type FrameHeader,
} from './framing.js';

/** Deterministic PRNG (mulberry32) so fuzz failures are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randInt = (r: () => number, n: number) => Math.floor(r() * n);
function randBytes(r: () => number, n: number, zeroBias = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() < zeroBias ? 0 : randInt(r, 256);
  return b;
}
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const h: FrameHeader = { version: 1, kind: 'request', requestId: 0x1234, opcode: 0x02 };

/** Build a decoded frame by hand (header bytes as given, correct CRC) and COBS-wrap it. */
function rawFrame(headerBytes: number[], payload: Uint8Array, crcOverride?: number): Uint8Array {
  const body = Uint8Array.from([...headerBytes, ...payload]);
  const crc = crcOverride ?? crc32(body);
  const full = new Uint8Array(body.length + 4);
  full.set(body);
  new DataView(full.buffer).setUint32(body.length, crc, true);
  return Uint8Array.from([...cobsEncode(full), 0]);
}

describe('crc32', () => {
  it('matches the IEEE check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('COBS', () => {
  it('encodes the reference vectors', () => {
    const cases: [string, string][] = [
      ['00', '0101'],
      ['0000', '010101'],
      ['00110000', '0102110101'],
      ['11220033', '0311220233'],
      ['11223344', '0511223344'],
      ['11000000', '0211010101'],
    ];
    for (const [input, output] of cases) {
      expect(Buffer.from(cobsEncode(hex(input))).toString('hex')).toBe(output);
      expect(Buffer.from(cobsDecode(hex(output))!).toString('hex')).toBe(input);
    }
    const b254 = Uint8Array.from({ length: 254 }, (_, i) => i + 1); // 01..FE
    expect(Array.from(cobsEncode(b254))).toEqual([0xff, ...b254]);
    const z254 = Uint8Array.from([0, ...b254]);
    expect(Array.from(cobsEncode(z254))).toEqual([0x01, 0xff, ...b254]);
    const b255 = Uint8Array.from({ length: 255 }, (_, i) => i + 1); // 01..FF
    expect(Array.from(cobsEncode(b255))).toEqual([0xff, ...b254, 0x02, 0xff]);
  });

  it('round-trips random data and never emits 0x00', () => {
    const r = rng(1);
    for (let i = 0; i < 500; i++) {
      const d = randBytes(r, randInt(r, 1200), r() * 0.5);
      const e = cobsEncode(d);
      expect(e.includes(0)).toBe(false);
      expect(e.length).toBeLessThanOrEqual(d.length + Math.ceil(d.length / 254) + 1);
      expect(cobsDecode(e)).toEqual(d);
    }
  });

  it('rejects invalid encodings', () => {
    expect(cobsDecode(new Uint8Array(0))).toBeNull();
    expect(cobsDecode(hex('05112233'))).toBeNull(); // block runs past the end
    expect(cobsDecode(hex('031100'))).toBeNull(); // embedded zero
    expect(cobsDecode(hex('00'))).toBeNull();
  });
});

describe('frames', () => {
  it('round-trips header and payload, across any chunking', () => {
    const r = rng(2);
    for (let i = 0; i < 200; i++) {
      const header: FrameHeader = {
        version: 1,
        kind: r() < 0.5 ? 'request' : 'response',
        requestId: randInt(r, 0x10000),
        opcode: 1 + randInt(r, 10),
      };
      const payload = randBytes(r, randInt(r, 600), 0.2);
      const wire = encodeFrame(header, payload);
      expect(wire[wire.length - 1]).toBe(0);
      expect(wire.subarray(0, -1).includes(0)).toBe(false);
      const dec = new FrameDecoder();
      const out: DecodedFrame[] = [];
      for (let o = 0; o < wire.length;) {
        const n = 1 + randInt(r, 64);
        out.push(...dec.push(wire.subarray(o, o + n)));
        o += n;
      }
      expect(out).toEqual([{ ok: true, header, payload }]);
    }
  });

  it('decodes concatenated frames in order and ignores empty frames', () => {
    const frames = [1, 2, 3].map((id) => encodeFrame({ ...h, requestId: id }, Uint8Array.of(id, 0, id)));
    const stream = Uint8Array.from([0, 0, ...frames[0]!, 0, ...frames[1]!, ...frames[2]!]);
    const out = new FrameDecoder().push(stream);
    expect(out.map((f) => (f.ok ? f.header.requestId : f.code))).toEqual([1, 2, 3]);
  });

  it('accepts a maximum-size frame and refuses to encode a larger one', () => {
    const payload = new Uint8Array(MAX_PAYLOAD).fill(0xaa);
    const wire = encodeFrame(h, payload);
    const out = new FrameDecoder().push(wire);
    expect(out).toHaveLength(1);
    expect(out[0]!.ok).toBe(true);
    expect(() => encodeFrame(h, new Uint8Array(MAX_PAYLOAD + 1))).toThrow(RangeError);
    expect(() => encodeFrame({ ...h, requestId: 0x10000 }, payload)).toThrow(RangeError);
  });

  it('detects a flipped bit with PROTOCOL_CRC', () => {
    const r = rng(3);
    for (let i = 0; i < 300; i++) {
      const payload = randBytes(r, 1 + randInt(r, 100));
      const body = Uint8Array.from([1, 1, 0, 7, 2, ...payload]);
      const crc = crc32(body);
      const pos = randInt(r, body.length);
      body[pos] = body[pos]! ^ (1 << randInt(r, 8));
      const full = new Uint8Array(body.length + 4);
      full.set(body);
      new DataView(full.buffer).setUint32(body.length, crc, true);
      const out = new FrameDecoder().push(Uint8Array.from([...cobsEncode(full), 0]));
      expect(out).toHaveLength(1);
      expect(out[0]).toMatchObject({ ok: false, code: 'PROTOCOL_CRC' });
    }
  });

  it('reports short frames, bad COBS, unknown version/kind/opcode as PROTOCOL_MALFORMED', () => {
    const dec = new FrameDecoder();
    const codes = (b: Uint8Array) => dec.push(b).map((f) => (f.ok ? 'ok' : f.code));
    expect(codes(rawFrame([1, 1, 0], new Uint8Array(0)))).toEqual(['PROTOCOL_MALFORMED']); // 7 bytes < 9
    expect(codes(hex('05112200'))).toEqual(['PROTOCOL_MALFORMED']); // COBS block past the delimiter
    expect(codes(rawFrame([2, 1, 0, 1, 2], Uint8Array.of(0xa0)))).toEqual(['PROTOCOL_MALFORMED']); // version 2
    expect(codes(rawFrame([1, 3, 0, 1, 2], Uint8Array.of(0xa0)))).toEqual(['PROTOCOL_MALFORMED']); // kind 3
    expect(codes(rawFrame([1, 1, 0, 1, 0x0c], Uint8Array.of(0xa0)))).toEqual(['PROTOCOL_MALFORMED']); // opcode
    expect(codes(rawFrame([1, 1, 0, 1, 0x00], Uint8Array.of(0xa0)))).toEqual(['PROTOCOL_MALFORMED']);
    expect(codes(rawFrame([1, 2, 0, 1, 0x0a], Uint8Array.of(0xa0)))).toEqual(['ok']);
    expect(codes(rawFrame([1, 2, 0, 1, 0x0b], Uint8Array.of(0xa0)))).toEqual(['ok']); // tpm (protocol 3)
    // a decoder is reusable after errors
    expect(codes(encodeFrame(h, Uint8Array.of(1)))).toEqual(['ok']);
  });

  it('discards an oversize run up to the next delimiter with one PROTOCOL_OVERSIZE, then recovers', () => {
    const dec = new FrameDecoder();
    const junk = new Uint8Array(MAX_ENCODED * 3).fill(0x41);
    const good = encodeFrame(h, Uint8Array.of(9, 9));
    const out = [...dec.push(junk), ...dec.push(Uint8Array.of(0x41, 0x41, 0)), ...dec.push(good)];
    expect(out.map((f) => (f.ok ? 'ok' : f.code))).toEqual(['PROTOCOL_OVERSIZE', 'ok']);
    expect(dec.buffered).toBe(0);
    // a valid-COBS block whose decoded size exceeds MAX_FRAME
    const big = new Uint8Array(MAX_FRAME + 1); // zeros: COBS adds one byte per zero, so this fits MAX_ENCODED
    const enc = cobsEncode(big);
    expect(enc.length).toBeLessThanOrEqual(MAX_ENCODED);
    expect(new FrameDecoder().push(Uint8Array.from([...enc, 0])).map((f) => (f.ok ? 'ok' : f.code))).toEqual([
      'PROTOCOL_OVERSIZE',
    ]);
  });

  it('fuzz: random, mutated, truncated, concatenated and split streams never throw and stay bounded', () => {
    const r = rng(4);
    const valid = Array.from({ length: 20 }, (_, i) =>
      encodeFrame({ ...h, requestId: i, kind: i % 2 ? 'request' : 'response' }, randBytes(r, randInt(r, 300), 0.1)),
    );
    const allowed = new Set(['PROTOCOL_CRC', 'PROTOCOL_MALFORMED', 'PROTOCOL_OVERSIZE']);
    let frames = 0;
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const dec = new FrameDecoder();
      const parts: Uint8Array[] = [];
      const nParts = 1 + randInt(r, 6);
      for (let p = 0; p < nParts; p++) {
        const kind = randInt(r, 5);
        const v = valid[randInt(r, valid.length)]!;
        if (kind === 0) parts.push(randBytes(r, randInt(r, 400), r() * 0.1));
        else if (kind === 1) {
          const m = v.slice();
          for (let k = 0; k <= randInt(r, 4); k++) m[randInt(r, m.length)] = randInt(r, 256);
          parts.push(m);
        } else if (kind === 2) parts.push(v.subarray(0, randInt(r, v.length)));
        else if (kind === 3) parts.push(new Uint8Array(randInt(r, 6000)).fill(1 + randInt(r, 255)));
        else parts.push(v);
      }
      const stream = Uint8Array.from(parts.flatMap((p) => Array.from(p)));
      for (let o = 0; o < stream.length;) {
        const n = 1 + randInt(r, 700);
        let out: DecodedFrame[] = [];
        expect(() => (out = dec.push(stream.subarray(o, o + n)))).not.toThrow();
        for (const f of out) {
          if (f.ok) {
            frames++;
            expect(f.header.version).toBe(1);
            expect(f.header.opcode).toBeGreaterThanOrEqual(1);
            expect(f.header.opcode).toBeLessThanOrEqual(10);
            expect(f.payload.length).toBeLessThanOrEqual(MAX_PAYLOAD);
          } else {
            errors++;
            expect(allowed.has(f.code)).toBe(true);
          }
        }
        expect(dec.buffered).toBeLessThanOrEqual(MAX_ENCODED);
        o += n;
      }
    }
    expect(frames).toBeGreaterThan(1000);
    expect(errors).toBeGreaterThan(1000);
  });
});
