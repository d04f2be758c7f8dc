/**
 * Wire framing for the Line Station board protocol, version 1 (docs/protocol.md).
 *
 * A frame on the wire is `COBS(header || payload || crc32le(header || payload)) || 0x00`, with a 5-byte header
 * `u8 version | u8 kind | u16 requestId (BE) | u8 opcode`. The decoder is a byte-at-a-time state machine with a
 * fixed-size buffer: it never throws on any input and never holds more than MAX_ENCODED bytes.
 */

export const PROTOCOL_VERSION = 1;
/** Maximum decoded frame size (header + payload + CRC), in bytes. */
export const MAX_FRAME = 4096;
export const HEADER_SIZE = 5;
export const CRC_SIZE = 4;
/** Largest payload that fits in one frame. */
export const MAX_PAYLOAD = MAX_FRAME - HEADER_SIZE - CRC_SIZE;
/** Largest COBS encoding of a MAX_FRAME frame, without the 0x00 delimiter. */
export const MAX_ENCODED = MAX_FRAME + Math.ceil(MAX_FRAME / 254) + 1;
/** Opcodes defined by protocol versions 1 to 3 (see OPCODES in messages.ts; 0x0B `tpm` is version 3). */
export const MIN_OPCODE = 0x01;
export const MAX_OPCODE = 0x0b;

const KIND_REQUEST = 1;
const KIND_RESPONSE = 2;

export interface FrameHeader {
  version: number;
  kind: 'request' | 'response';
  requestId: number;
  opcode: number;
}

export type FrameErrorCode = 'PROTOCOL_CRC' | 'PROTOCOL_MALFORMED' | 'PROTOCOL_OVERSIZE';

export type DecodedFrame =
  { ok: true; header: FrameHeader; payload: Uint8Array } | { ok: false; code: FrameErrorCode; message: string };

// ---------------------------------------------------------------- CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320)

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as in zlib/Ethernet) of `data`, as an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- COBS

/** COBS-encode `data` (the result contains no 0x00 byte; the delimiter is not appended). */
export function cobsEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + Math.ceil(data.length / 254) + 1);
  let codeIdx = 0;
  let code = 1;
  let o = 1;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0) {
      out[codeIdx] = code;
      codeIdx = o++;
      code = 1;
    } else {
      out[o++] = b;
      code++;
      // A full block (254 data bytes) closes with code 0xFF; open a new one only if input remains (canonical COBS).
      if (code === 0xff && i + 1 < data.length) {
        out[codeIdx] = code;
        codeIdx = o++;
        code = 1;
      }
    }
  }
  out[codeIdx] = code;
  return out.slice(0, o);
}

/** Decode one COBS block (without its 0x00 delimiter); null if it is not valid COBS. */
export function cobsDecode(data: Uint8Array): Uint8Array | null {
  if (data.length === 0) return null;
  const out = new Uint8Array(data.length);
  let o = 0;
  let i = 0;
  while (i < data.length) {
    const code = data[i++]!;
    if (code === 0) return null;
    for (let j = 1; j < code; j++) {
      if (i >= data.length) return null;
      const b = data[i++]!;
      if (b === 0) return null;
      out[o++] = b;
    }
    if (code !== 0xff && i < data.length) out[o++] = 0;
  }
  return out.slice(0, o);
}

// ---------------------------------------------------------------- frames

function isU16(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

/**
 * Build one wire frame: COBS(header || payload || CRC-32 LE) followed by the 0x00 delimiter.
 * Throws RangeError (a bug in the caller) for an invalid header or a frame larger than MAX_FRAME.
 */
export function encodeFrame(header: FrameHeader, payload: Uint8Array): Uint8Array {
  if (!Number.isInteger(header.version) || header.version < 0 || header.version > 0xff)
    throw new RangeError('frame version must be a u8');
  if (!isU16(header.requestId)) throw new RangeError('requestId must be a u16');
  if (!Number.isInteger(header.opcode) || header.opcode < 0 || header.opcode > 0xff)
    throw new RangeError('opcode must be a u8');
  const size = HEADER_SIZE + payload.length + CRC_SIZE;
  if (size > MAX_FRAME) throw new RangeError(`frame of ${size} bytes exceeds MAX_FRAME (${MAX_FRAME})`);
  const raw = new Uint8Array(size);
  raw[0] = header.version;
  raw[1] = header.kind === 'request' ? KIND_REQUEST : KIND_RESPONSE;
  raw[2] = header.requestId >>> 8;
  raw[3] = header.requestId & 0xff;
  raw[4] = header.opcode;
  raw.set(payload, HEADER_SIZE);
  const crc = crc32(raw.subarray(0, HEADER_SIZE + payload.length));
  new DataView(raw.buffer).setUint32(HEADER_SIZE + payload.length, crc, true);
  const enc = cobsEncode(raw);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc, 0);
  out[enc.length] = 0;
  return out;
}

/** Parse one decoded (un-COBSed) frame: checks length, CRC, version, kind and opcode. */
export function parseFrame(raw: Uint8Array): DecodedFrame {
  if (raw.length > MAX_FRAME) {
    return { ok: false, code: 'PROTOCOL_OVERSIZE', message: `frame of ${raw.length} bytes exceeds ${MAX_FRAME}` };
  }
  if (raw.length < HEADER_SIZE + CRC_SIZE) {
    return { ok: false, code: 'PROTOCOL_MALFORMED', message: `frame of ${raw.length} bytes is too short` };
  }
  const body = raw.subarray(0, raw.length - CRC_SIZE);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const got = dv.getUint32(raw.length - CRC_SIZE, true);
  const want = crc32(body);
  if (got !== want) {
    return { ok: false, code: 'PROTOCOL_CRC', message: 'frame checksum mismatch' };
  }
  const version = raw[0]!;
  const kindByte = raw[1]!;
  const requestId = (raw[2]! << 8) | raw[3]!;
  const opcode = raw[4]!;
  if (version !== PROTOCOL_VERSION) {
    return { ok: false, code: 'PROTOCOL_MALFORMED', message: `unknown frame version ${version}` };
  }
  if (kindByte !== KIND_REQUEST && kindByte !== KIND_RESPONSE) {
    return { ok: false, code: 'PROTOCOL_MALFORMED', message: `unknown frame kind ${kindByte}` };
  }
  if (opcode < MIN_OPCODE || opcode > MAX_OPCODE) {
    return {
      ok: false,
      code: 'PROTOCOL_MALFORMED',
      message: `unknown opcode 0x${opcode.toString(16).padStart(2, '0')}`,
    };
  }
  return {
    ok: true,
    header: { version, kind: kindByte === KIND_REQUEST ? 'request' : 'response', requestId, opcode },
    payload: raw.slice(HEADER_SIZE, raw.length - CRC_SIZE),
  };
}

/**
 * Incremental frame decoder. Feed it whatever bytes arrive (any chunking); it returns the frames completed by
 * this chunk, in order, including framing errors. Empty frames (consecutive 0x00) are ignored, so a sender may
 * send a 0x00 first to flush the receiver. Memory is bounded by MAX_ENCODED bytes.
 */
export class FrameDecoder {
  private readonly buf = new Uint8Array(MAX_ENCODED);
  private len = 0;
  /** True after an overflow, until the next 0x00. */
  private discarding = false;

  push(chunk: Uint8Array): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0) {
        if (this.discarding) {
          this.discarding = false;
        } else if (this.len > 0) {
          out.push(this.finish());
        }
        this.len = 0;
        continue;
      }
      if (this.discarding) continue;
      if (this.len >= MAX_ENCODED) {
        this.discarding = true;
        this.len = 0;
        out.push({
          ok: false,
          code: 'PROTOCOL_OVERSIZE',
          message: `more than ${MAX_ENCODED} bytes without a frame delimiter; discarding up to the next 0x00`,
        });
        continue;
      }
      this.buf[this.len++] = b;
    }
    return out;
  }

  /** Bytes currently buffered (for tests and diagnostics). */
  get buffered(): number {
    return this.len;
  }

  /** Drop any partial frame (e.g. after a link reset). */
  reset(): void {
    this.len = 0;
    this.discarding = false;
  }

  private finish(): DecodedFrame {
    const raw = cobsDecode(this.buf.subarray(0, this.len));
    if (raw === null) return { ok: false, code: 'PROTOCOL_MALFORMED', message: 'invalid COBS encoding' };
    return parseFrame(raw);
  }
}
