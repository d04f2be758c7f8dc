import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, type FrameHeader } from './framing.js';
import {
  decodePayload,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodePayload,
  encodeResponse,
  OPCODES,
  OPS,
  strictCborProblem,
  TPM_FRAME_MAX,
  type Op,
  type Requests,
  type Responses,
} from './messages.js';

const b = (n: number, fill = 1) => new Uint8Array(n).fill(fill);
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

/** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MANUFACTURER, 1), as tpm2-tools sends it. */
export const TPM_GETCAP = hex('8001 00000016 0000017a 00000006 00000105 00000001');
/** A TPM 2.0 response header: success, no parameters. */
const TPM_OK = hex('8001 0000000a 00000000');

export const SAMPLE_REQUESTS: Requests = {
  hello: { versions: [1] },
  identify: {},
  attest: { nonce: b(32, 0xab) },
  keygen: { curve: 'P-256', subject: 'CN=board-1' },
  injectBegin: { curve: 'P-384' },
  injectKey: { curve: 'P-256', ephemeralKey: b(91), wrappedKey: b(160), publicKey: b(91, 2), subject: 'CN=x' },
  installCert: { chain: [b(400, 3), b(380, 4)] },
  measure: {},
  lock: {},
  zeroize: { chipId: '00a1b2c3d4e5f607' },
  tpm: { command: TPM_GETCAP },
};

export const SAMPLE_RESPONSES: Responses = {
  hello: { version: 1, maxFrame: 4096, board: 'sim-board v1' },
  identify: {
    chipId: '00A1B2C3D4E5F607',
    serialNumber: 'SN-0001',
    model: 'LS-DEV',
    hardwareRevision: 'B',
    firmwareVersion: '1.2.3',
    capabilities: { onboardKeygen: true, keyInjection: true, curves: ['P-256', 'P-384'] },
    state: { hasKey: true, certSha256: b(32, 0xcc), locked: false },
  },
  attest: { signature: b(71, 0x30), chain: [b(300, 5), b(310, 6)] },
  keygen: { publicKey: b(91, 7), csr: b(250, 8) },
  injectBegin: { transportKey: b(91, 9) },
  injectKey: { publicKey: b(91, 10), csr: b(250, 11) },
  installCert: { certSha256: b(32, 12) },
  measure: {
    firmware: [
      { name: 'bootloader', version: '1.0.0', sha256: b(32, 13) },
      { name: 'application', version: '2.1.0', sha256: b(32, 14) },
    ],
    secureBoot: true,
    debugLocked: false,
    fuseDigest: b(32, 15),
    configDigest: b(32, 16),
  },
  lock: { locked: true },
  zeroize: { zeroized: true },
  tpm: { response: TPM_OK },
};

function decodeOne(wire: Uint8Array) {
  const frames = new FrameDecoder().push(wire);
  expect(frames).toHaveLength(1);
  const f = frames[0]!;
  if (!f.ok) throw new Error(`frame error ${f.code}: ${f.message}`);
  return f;
}

function responseFrame(op: Op, payload: Uint8Array, requestId = 7) {
  const header: FrameHeader = { version: 1, kind: 'response', requestId, opcode: OPCODES[op] };
  return { header, payload };
}

describe('messages: round trips', () => {
  it('every request round-trips through a frame', () => {
    for (const op of OPS) {
      const f = decodeOne(encodeRequest(op, 0x0102, SAMPLE_REQUESTS[op]));
      expect(f.header).toEqual({ version: 1, kind: 'request', requestId: 0x0102, opcode: OPCODES[op] });
      const r = decodeRequest(f);
      expect(r).toEqual({ ok: true, value: { op, requestId: 0x0102, body: SAMPLE_REQUESTS[op] } });
    }
  });

  it('every response round-trips through a frame, with byte strings as Uint8Array', () => {
    for (const op of OPS) {
      const f = decodeOne(encodeResponse(op, 65535, SAMPLE_RESPONSES[op]));
      const r = decodeResponse(op, f);
      expect(r).toEqual({ ok: true, value: SAMPLE_RESPONSES[op] });
    }
    const r = decodeResponse('attest', decodeOne(encodeResponse('attest', 1, SAMPLE_RESPONSES.attest)));
    if (!r.ok) throw new Error('unreachable');
    expect(Object.getPrototypeOf(r.value.signature)).toBe(Uint8Array.prototype);
  });

  it('encodes byte strings untagged (major type 2) and text keys', () => {
    const f = decodeOne(encodeRequest('attest', 1, { nonce: b(32, 0) }));
    // a1 (map 1) 65 "nonce" 58 20 (bytes, 32)
    expect(Buffer.from(f.payload.subarray(0, 9)).toString('hex')).toBe('a1656e6f6e63655820');
    expect(strictCborProblem(f.payload)).toBeNull();
  });

  it('maps board error payloads to station errors', () => {
    const cases: [string, string][] = [
      ['BAD_REQUEST', 'BOARD_BAD_REQUEST'],
      ['BUSY', 'BOARD_BUSY'],
      ['LOCKED', 'BOARD_LOCKED'],
      ['NO_KEY', 'BOARD_NO_KEY'],
      ['CERT_REFUSED', 'BOARD_CERT_REFUSED'],
      ['UNSUPPORTED', 'BOARD_UNSUPPORTED'],
      ['INTERNAL', 'BOARD_INTERNAL'],
      ['VERSION', 'PROTOCOL_VERSION'],
      ['FROBNICATED', 'BOARD_INTERNAL'],
    ];
    for (const [wire, code] of cases) {
      const f = decodeOne(encodeResponse('lock', 3, { error: { code: wire, message: 'nope\u0007\nbell' } }));
      const r = decodeResponse('lock', f);
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.error.code).toBe(code);
      expect(r.error.message).toContain(wire);
      expect(r.error.details).toMatchObject({ op: 'lock', boardCode: wire, boardMessage: 'nope\\u0007\\u000abell' });
    }
  });

  it('rejects a response for a different opcode or a request frame as PROTOCOL_UNEXPECTED', () => {
    const f = decodeOne(encodeResponse('measure', 1, SAMPLE_RESPONSES.measure));
    expect(decodeResponse('identify', f)).toMatchObject({ ok: false, error: { code: 'PROTOCOL_UNEXPECTED' } });
    const q = decodeOne(encodeRequest('identify', 1, {}));
    expect(decodeResponse('identify', q)).toMatchObject({ ok: false, error: { code: 'PROTOCOL_UNEXPECTED' } });
    expect(decodeRequest(f)).toMatchObject({ ok: false, error: { code: 'PROTOCOL_UNEXPECTED' } });
  });
});

describe('messages: schema and CBOR violations are PROTOCOL_MALFORMED', () => {
  const enc = (v: unknown) => {
    // build payloads through the same encoder the station uses, bypassing types
    const f = decodeOne(encodeResponse('lock', 1, v as Responses['lock']));
    return f.payload;
  };
  const malformed = (op: Op, payload: Uint8Array) => {
    const r = decodeResponse(op, responseFrame(op, payload));
    expect(r.ok, `expected ${op} payload ${Buffer.from(payload).toString('hex')} to be rejected`).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('PROTOCOL_MALFORMED');
    return r;
  };

  it('rejects wrong types, missing fields, wrong lengths and unknown fields', () => {
    const id = SAMPLE_RESPONSES.identify;
    malformed('identify', enc({ ...id, chipId: 1234 }));
    malformed('identify', enc({ ...id, chipId: 'xyz0xyz0' }));
    malformed('identify', enc({ ...id, chipId: 'abc' }));
    malformed('identify', enc({ ...id, serialNumber: 'bad\u0000serial' }));
    malformed('identify', enc({ ...id, state: { ...id.state, certSha256: b(31) } }));
    malformed('identify', enc({ ...id, state: { hasKey: true, locked: false } })); // missing certSha256
    malformed('identify', enc({ ...id, capabilities: { ...id.capabilities, extra: { deeper: [1] } } }));
    malformed('identify', enc({ ...id, unexpected: 1 }));
    malformed('identify', enc({ ...id, model: b(4) }));
    malformed('hello', enc({ version: '1', maxFrame: 4096, board: 'x' }));
    malformed('hello', enc({ version: 1, maxFrame: 10, board: 'x' }));
    malformed('attest', enc({ signature: b(70), chain: [] }));
    malformed('attest', enc({ signature: 'sig', chain: [b(10)] }));
    malformed('measure', enc({ ...SAMPLE_RESPONSES.measure, fuseDigest: b(33) }));
    malformed('lock', enc({ locked: false }));
    malformed('zeroize', enc({}));
    malformed('lock', enc({ error: { code: 7, message: 'x' } }));
    malformed('lock', enc({ error: { code: 'LOCKED' } }));
  });

  it('rejects a 31-byte nonce and other bad requests (board side)', () => {
    const req = (op: Op, body: unknown) => {
      const header: FrameHeader = { version: 1, kind: 'request', requestId: 1, opcode: OPCODES[op] };
      const payload = decodeOne(encodeFrame(header, enc(body))).payload;
      return decodeRequest({ header, payload });
    };
    expect(req('attest', { nonce: b(31) })).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MALFORMED' } });
    expect(req('attest', { nonce: b(33) })).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MALFORMED' } });
    expect(req('keygen', { curve: 'P-521', subject: 'x' })).toMatchObject({ ok: false });
    expect(req('hello', { versions: [] })).toMatchObject({ ok: false });
    expect(req('zeroize', { chipId: 'not hex!' })).toMatchObject({ ok: false });
    expect(req('installCert', { chain: [] })).toMatchObject({ ok: false });
    expect(req('identify', { surprise: true })).toMatchObject({ ok: false });
    expect(req('attest', { nonce: b(32) })).toMatchObject({ ok: true });
  });

  it('tpm: carries exactly one TPM 2.0 command or response, checked by its header, bytes unchanged', () => {
    const header: FrameHeader = { version: 1, kind: 'request', requestId: 9, opcode: OPCODES.tpm };
    // payloads built without a frame: the schema allows 4096 bytes, one frame carries fewer (next test)
    const req = (command: unknown) => decodeRequest({ header, payload: encodePayload({ command }) });
    const tpmHeader = (tag: number, size: number, code: number, total = size) => {
      const x = new Uint8Array(total).fill(0x5a);
      const dv = new DataView(x.buffer);
      dv.setUint16(0, tag);
      dv.setUint32(2, size);
      dv.setUint32(6, code);
      return x;
    };
    // the largest command: 4096 bytes, any content after the header (TPM_ST_SESSIONS here)
    const big = tpmHeader(0x8002, 4096, 0x153);
    expect(req(big)).toMatchObject({ ok: true, value: { op: 'tpm', body: { command: big } } });
    expect(req(TPM_GETCAP)).toEqual({ ok: true, value: { op: 'tpm', requestId: 9, body: { command: TPM_GETCAP } } });
    const bad: [string, unknown][] = [
      ['oversize (4097 bytes)', tpmHeader(0x8001, 4097, 0x17a)],
      ['shorter than a header', TPM_GETCAP.subarray(0, 9)],
      ['size field larger than the bytes', tpmHeader(0x8001, 23, 0x17a, 22)],
      ['size field smaller than the bytes', tpmHeader(0x8001, 21, 0x17a, 22)],
      ['TPM 1.2 tag', tpmHeader(0x00c1, 22, 0x17a)],
      ['text, not bytes', 'getcap'],
      ['a list of commands', [TPM_GETCAP]],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, command] of bad)
      expect(req(command), what).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MALFORMED' } });
    expect(decodeRequest({ header, payload: enc({ command: TPM_GETCAP, extra: 1 }) })).toMatchObject({ ok: false });
    expect(decodeRequest({ header, payload: enc({}) })).toMatchObject({ ok: false });
    // responses: the same rule (a board relaying garbage is PROTOCOL_MALFORMED, retried like any malformed answer)
    expect(decodeResponse('tpm', responseFrame('tpm', enc({ response: TPM_OK })))).toEqual({
      ok: true,
      value: { response: TPM_OK },
    });
    malformed('tpm', enc({ response: TPM_OK.subarray(0, 8) }));
    malformed('tpm', enc({ response: tpmHeader(0x00c4, 10, 0) }));
    malformed('tpm', enc({ response: tpmHeader(0x8001, 11, 0, 10) }));
    malformed('tpm', enc({ response: TPM_OK, command: TPM_GETCAP }));
    // a board without a TPM answers UNSUPPORTED
    const f = decodeOne(encodeResponse('tpm', 4, { error: { code: 'UNSUPPORTED', message: 'no TPM' } }));
    expect(decodeResponse('tpm', f)).toMatchObject({ ok: false, error: { code: 'BOARD_UNSUPPORTED' } });
  });

  it('tpm: commands and responses of up to TPM_FRAME_MAX (4074) bytes fit one frame; 4096 does not', () => {
    const tpm = (n: number) => {
      const x = new Uint8Array(n);
      new DataView(x.buffer).setUint16(0, 0x8001);
      new DataView(x.buffer).setUint32(2, n);
      return x;
    };
    expect(TPM_FRAME_MAX).toBe(4074);
    const f = decodeOne(encodeResponse('tpm', 1, { response: tpm(TPM_FRAME_MAX) }));
    expect(f.payload.length + 9).toBe(4096);
    expect(decodeResponse('tpm', f)).toMatchObject({ ok: true });
    expect(decodeOne(encodeRequest('tpm', 1, { command: tpm(TPM_FRAME_MAX + 1) })).payload.length + 9).toBe(4096);
    expect(() => encodeResponse('tpm', 1, { response: tpm(TPM_FRAME_MAX + 1) })).toThrow(RangeError);
    expect(() => encodeRequest('tpm', 1, { command: tpm(4096) })).toThrow(RangeError);
  });

  it('rejects CBOR tags, floats, undefined, indefinite lengths, odd keys and trailing bytes', () => {
    const bad: [string, string][] = [
      ['tag 64 typed array', 'a1 666c6f636b6564 d840 41 01'],
      ['tag 1 epoch date', 'a1 666c6f636b6564 c1 1a 5f000000'],
      ['records extension tag', 'd9dfff a1 666c6f636b6564 f5'],
      ['float', 'a1 666c6f636b6564 f9 3c00'],
      ['double', 'a1 666c6f636b6564 fb 3ff0000000000000'],
      ['undefined', 'a1 666c6f636b6564 f7'],
      ['indefinite map', 'bf 666c6f636b6564 f5 ff'],
      ['indefinite bytes', 'a1 666c6f636b6564 5f 4101 ff'],
      ['integer key', 'a1 01 f5'],
      ['byte-string key', 'a1 4101 f5'],
      ['duplicate key', 'a2 666c6f636b6564 f5 666c6f636b6564 f5'],
      ['__proto__ key', 'a2 666c6f636b6564 f5 695f5f70726f746f5f5f a0'],
      ['trailing bytes', 'a1 666c6f636b6564 f5 00'],
      ['top-level array', '81 f5'],
      ['top-level text', '63 616263'],
      ['truncated', 'a1 656c6f636b65'],
      ['huge length', 'a1 666c6f636b6564 5b ffffffffffffffff'],
      ['huge map count', 'bb 00000000ffffffff'],
      ['invalid utf-8', 'a1 62c328 f5'],
      ['64-bit integer beyond 2^53', 'a1 666c6f636b6564 1b 0020000000000001'],
      ['empty', ''],
      ['deep nesting', 'a1 616b ' + '81'.repeat(40) + 'f5'],
    ];
    for (const [what, h] of bad) {
      const payload = hex(h);
      const r = decodePayload(payload);
      expect(r.ok, what).toBe(false);
      if (!r.ok) expect(r.error.code, what).toBe('PROTOCOL_MALFORMED');
      malformed('lock', payload);
    }
    expect(decodePayload(hex('a1 666c6f636b6564 f5'))).toEqual({ ok: true, value: { locked: true } });
  });

  it('never throws on random payloads', () => {
    let seed = 99;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 5000; i++) {
      const p = new Uint8Array(next() % 64);
      for (let k = 0; k < p.length; k++) p[k] = next() & 0xff;
      if (p.length) p[0] = 0xa0 | (p[0]! & 0x1f); // mostly maps, to get past the first check
      for (const op of ['identify', 'measure', 'attest'] as const) {
        expect(() => decodeResponse(op, responseFrame(op, p))).not.toThrow();
      }
    }
  });
});
