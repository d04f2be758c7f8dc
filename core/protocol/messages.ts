/**
 * Messages of the Line Station board protocol, versions 1 to 3 (docs/protocol.md): opcodes, zod schemas for every
 * request and response payload, and encode/decode between typed bodies and whole wire frames. Version 2 differs
 * from version 1 only in `attest` (a key-bound statement); version 3 adds `tpm` (a raw TPM 2.0 command relayed to
 * the board's TPM); the frame header's version byte is the framing version and stays 1.
 *
 * Payloads are CBOR maps with text keys. Before cbor-x sees a payload, a strict scanner rejects everything but
 * definite-length maps (text keys, no duplicates), arrays, text, byte strings, integers (|n| < 2^53), booleans and
 * null: no tags, floats, undefined, indefinite lengths or trailing bytes. Then zod validates the shape.
 */
import { Decoder, Encoder } from 'cbor-x';
import { z } from 'zod';
import { fail, stationError, type ErrorCode } from '../errors.js';
import { ok, type Result } from '../result.js';
import { escapeControlChars } from '../display-text.js';
import { encodeFrame, HEADER_SIZE, CRC_SIZE, MAX_FRAME, PROTOCOL_VERSION, type FrameHeader } from './framing.js';
import { tpmBytesProblem } from './tpm-relay.js';

/** Protocol version 1: legacy attestation (nonce and chip id only). */
export const PROTOCOL_V1 = 1;
/** Protocol version 2: key-bound attestation statements. */
export const PROTOCOL_V2 = 2;
/** Protocol version 3: version 2 plus the TPM relay message `tpm` (0x0B). */
export const PROTOCOL_V3 = 3;

export const OPCODES = {
  hello: 0x01,
  identify: 0x02,
  attest: 0x03,
  keygen: 0x04,
  injectBegin: 0x05,
  injectKey: 0x06,
  installCert: 0x07,
  measure: 0x08,
  lock: 0x09,
  zeroize: 0x0a,
  tpm: 0x0b,
} as const;
export type Op = keyof typeof OPCODES;

export const OPS = Object.keys(OPCODES) as Op[];

const OP_BY_CODE: ReadonlyMap<number, Op> = new Map(OPS.map((op) => [OPCODES[op], op]));

/** The operation for a wire opcode, or undefined. */
export function opForCode(opcode: number): Op | undefined {
  return OP_BY_CODE.get(opcode);
}

/** Ops the board must answer idempotently (pure reads). Others rely on the board's replay cache for retries. */
export const IDEMPOTENT_OPS: ReadonlySet<Op> = new Set<Op>(['hello', 'identify', 'attest', 'measure']);

// ---------------------------------------------------------------- schemas

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'expected a byte string' });
const bytesOf = (n: number) => bytes.refine((b) => b.length === n, { message: `expected exactly ${n} bytes` });
const der = bytes.refine((b) => b.length > 0, { message: 'expected a non-empty byte string' });
/** Printable text without control characters (it ends up in logs, the UI and the database). */
const text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
    .regex(/^[^\u0000-\u001f\u007f]*$/, { message: 'control characters are not allowed' });
const hexId = z.string().regex(/^(?:[0-9a-fA-F]{2}){4,32}$/, { message: 'expected 8..64 hex characters' });
const curve = z.enum(['P-256', 'P-384']);
const subject = text(1, 256);
const chain = z.array(der).min(1).max(8);
const empty = z.strictObject({});
/**
 * Largest TPM response one frame carries (a command may be one byte longer: its key is one letter shorter): MAX_FRAME
 * minus header and CRC (9) minus the CBOR around the bytes (`{response: bytes}`: map 1 + key 9 + byte-string head 3 =
 * 13). The message allows 4096 (TPM_RELAY_MAX); what does not fit one frame is never sent (the station: INPUT_INVALID;
 * a board answers INTERNAL).
 */
export const TPM_FRAME_MAX = MAX_FRAME - HEADER_SIZE - CRC_SIZE - 13;
/** One whole TPM 2.0 command or response (core/protocol/tpm-relay.ts), carried unchanged. */
const tpmBytes = bytes.superRefine((b, ctx) => {
  const problem = tpmBytesProblem(b);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const REQUEST_SCHEMAS = {
  hello: z.strictObject({ versions: z.array(z.number().int().min(0).max(255)).min(1).max(16) }),
  identify: empty,
  // v2 names the key the statement must bind; v1 has the nonce only.
  attest: z.union([
    z.strictObject({ nonce: bytesOf(32), key: z.enum(['device', 'transport']) }),
    z.strictObject({ nonce: bytesOf(32) }),
  ]),
  keygen: z.strictObject({ curve, subject }),
  injectBegin: z.strictObject({ curve }),
  injectKey: z.strictObject({ curve, ephemeralKey: der, wrappedKey: der, publicKey: der, subject }),
  installCert: z.strictObject({ chain }),
  measure: empty,
  lock: empty,
  zeroize: z.strictObject({ chipId: hexId }),
  tpm: z.strictObject({ command: tpmBytes }),
} as const;

export const RESPONSE_SCHEMAS = {
  hello: z.strictObject({
    version: z.number().int().min(0).max(255),
    maxFrame: z.number().int().min(64).max(65535),
    board: text(0, 128),
  }),
  identify: z.strictObject({
    chipId: hexId,
    serialNumber: text(1, 128),
    model: text(1, 128),
    hardwareRevision: text(0, 64),
    firmwareVersion: text(1, 64),
    capabilities: z.strictObject({
      onboardKeygen: z.boolean(),
      keyInjection: z.boolean(),
      curves: z.array(text(1, 32)).max(8),
    }),
    state: z.strictObject({ hasKey: z.boolean(), certSha256: bytesOf(32).nullable(), locked: z.boolean() }),
  }),
  // v2: the signed statement bytes (core/pki/attestation.ts encodeStatement); v1: no statement.
  attest: z.union([
    z.strictObject({ statement: bytes.refine((b) => b.length <= 2048, 'statement too long'), signature: der, chain }),
    z.strictObject({ signature: der, chain }),
  ]),
  keygen: z.strictObject({ publicKey: der, csr: der }),
  injectBegin: z.strictObject({ transportKey: der }),
  injectKey: z.strictObject({ publicKey: der, csr: der }),
  installCert: z.strictObject({ certSha256: bytesOf(32) }),
  measure: z.strictObject({
    firmware: z.array(z.strictObject({ name: text(1, 64), version: text(0, 64), sha256: bytesOf(32) })).max(16),
    secureBoot: z.boolean(),
    debugLocked: z.boolean(),
    fuseDigest: bytesOf(32),
    configDigest: bytesOf(32),
  }),
  lock: z.strictObject({ locked: z.literal(true) }),
  zeroize: z.strictObject({ zeroized: z.literal(true) }),
  tpm: z.strictObject({ response: tpmBytes }),
} as const;

/** Board-reported error codes (wire) and the station error each maps to. */
export const BOARD_ERROR_CODES = {
  BAD_REQUEST: 'BOARD_BAD_REQUEST',
  BUSY: 'BOARD_BUSY',
  LOCKED: 'BOARD_LOCKED',
  NO_KEY: 'BOARD_NO_KEY',
  CERT_REFUSED: 'BOARD_CERT_REFUSED',
  UNSUPPORTED: 'BOARD_UNSUPPORTED',
  INTERNAL: 'BOARD_INTERNAL',
  VERSION: 'PROTOCOL_VERSION',
} as const satisfies Record<string, ErrorCode>;
export type BoardErrorCode = keyof typeof BOARD_ERROR_CODES;

const ERROR_SCHEMA = z.strictObject({
  error: z.strictObject({ code: z.string().min(1).max(64), message: z.string().max(512) }),
});

export type Requests = { [K in Op]: z.output<(typeof REQUEST_SCHEMAS)[K]> };
export type Responses = { [K in Op]: z.output<(typeof RESPONSE_SCHEMAS)[K]> };
export interface ErrorBody {
  error: { code: string; message: string };
}
/** A decoded request, discriminated by op (what the board side receives). */
export type AnyRequest = { [K in Op]: { op: K; requestId: number; body: Requests[K] } }[Op];

export interface RawFrame {
  header: FrameHeader;
  payload: Uint8Array;
}

// ---------------------------------------------------------------- strict CBOR

const MAX_DEPTH = 8;
const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** Why `data` is not an allowed CBOR payload (a single map of the permitted types), or null if it is. */
export function strictCborProblem(data: Uint8Array): string | null {
  let p = 0;
  const n = data.length;

  const readArg = (ai: number): number | string => {
    if (ai < 24) return ai;
    const width = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
    if (width === 0) return ai === 31 ? 'indefinite lengths are not allowed' : `reserved additional info ${ai}`;
    if (p + width > n) return 'truncated';
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + data[p + i]!;
    p += width;
    if (v > Number.MAX_SAFE_INTEGER - 1) return 'integer out of range';
    return v;
  };

  const readText = (len: number): string | null => {
    if (p + len > n) return null;
    try {
      const s = utf8Fatal.decode(data.subarray(p, p + len));
      p += len;
      return s;
    } catch {
      return null;
    }
  };

  const item = (depth: number): string | null => {
    if (depth > MAX_DEPTH) return 'nested too deeply';
    if (p >= n) return 'truncated';
    const ib = data[p++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (major === 7) {
      if (ai === 20 || ai === 21 || ai === 22) return null; // false, true, null
      return ai >= 25 && ai <= 27 ? 'floats are not allowed' : `simple value ${ai} is not allowed`;
    }
    if (major === 6) return 'CBOR tags are not allowed';
    const arg = readArg(ai);
    if (typeof arg === 'string') return arg;
    switch (major) {
      case 0:
      case 1:
        return null;
      case 2:
        if (p + arg > n) return 'truncated byte string';
        p += arg;
        return null;
      case 3:
        return readText(arg) === null ? 'invalid or truncated text' : null;
      case 4: {
        if (arg > n - p) return 'truncated array';
        for (let i = 0; i < arg; i++) {
          const e = item(depth + 1);
          if (e) return e;
        }
        return null;
      }
      case 5: {
        if (arg * 2 > n - p) return 'truncated map';
        const keys = new Set<string>();
        for (let i = 0; i < arg; i++) {
          if (p >= n) return 'truncated map';
          const kb = data[p++]!;
          if (kb >> 5 !== 3) return 'map keys must be text';
          const klen = readArg(kb & 0x1f);
          if (typeof klen === 'string') return klen;
          const key = readText(klen);
          if (key === null) return 'invalid map key';
          if (key === '__proto__' || key === 'constructor' || key === 'prototype')
            return `map key "${key}" is not allowed`;
          if (keys.has(key)) return `duplicate map key "${key}"`;
          keys.add(key);
          const e = item(depth + 1);
          if (e) return e;
        }
        return null;
      }
      default:
        return `major type ${major} is not allowed`;
    }
  };

  if (n === 0) return 'empty payload';
  if (data[0]! >> 5 !== 5) return 'payload must be a CBOR map';
  const e = item(0);
  if (e) return e;
  if (p !== n) return 'trailing bytes after the payload';
  return null;
}

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  variableMapSize: true,
  encodeUndefinedAsNil: false,
});
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/** Encode a body as a CBOR map (byte strings untagged). */
export function encodePayload(body: object): Uint8Array {
  const b = encoder.encode(body);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();
}

/** Strictly decode a CBOR payload into a plain object; PROTOCOL_MALFORMED for anything not allowed. */
export function decodePayload(payload: Uint8Array): Result<Record<string, unknown>> {
  const plain = new Uint8Array(payload); // a plain Uint8Array (not a Buffer), so byte strings decode as Uint8Array
  const problem = strictCborProblem(plain);
  if (problem) return fail('PROTOCOL_MALFORMED', `invalid CBOR payload: ${problem}`);
  try {
    const v: unknown = decoder.decode(plain);
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
      return fail('PROTOCOL_MALFORMED', 'payload is not a map');
    }
    return ok(v as Record<string, unknown>);
  } catch (e) {
    return fail('PROTOCOL_MALFORMED', `CBOR decode failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function schemaProblem(error: z.ZodError): { message: string; issues: { path: string; message: string }[] } {
  const issues = error.issues
    .slice(0, 5)
    .map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
  const first = issues[0];
  return { message: first ? `${first.path}: ${first.message}` : 'schema violation', issues };
}

/** Escape control and bidi characters (core/display-text.ts) and truncate text that came from a board. */
export function sanitizeBoardText(s: string, max = 200): string {
  return escapeControlChars(s, { max });
}

// ---------------------------------------------------------------- encode / decode

/** Bytes of the whole frame that `payload` would need (to check against MAX_FRAME or a board's maxFrame). */
export function frameSize(payload: Uint8Array): number {
  return HEADER_SIZE + payload.length + CRC_SIZE;
}

/** Encode a request as a whole wire frame (COBS + delimiter). Throws RangeError if it exceeds MAX_FRAME. */
export function encodeRequest<O extends Op>(op: O, requestId: number, body: Requests[O]): Uint8Array {
  return encodeFrame(
    { version: PROTOCOL_VERSION, kind: 'request', requestId, opcode: OPCODES[op] },
    encodePayload(body as object),
  );
}

/**
 * Encode a response (or an error response) as a whole wire frame. The body is not validated here: the
 * board side (and fault-injecting tests) may send anything; the station validates on receipt.
 */
export function encodeResponse(op: Op, requestId: number, body: Responses[Op] | ErrorBody): Uint8Array {
  return encodeFrame(
    { version: PROTOCOL_VERSION, kind: 'response', requestId, opcode: OPCODES[op] },
    encodePayload(body as object),
  );
}

/** Decode and validate a request frame (board side). */
export function decodeRequest(frame: RawFrame): Result<AnyRequest> {
  if (frame.header.kind !== 'request') return fail('PROTOCOL_UNEXPECTED', 'expected a request frame');
  const op = opForCode(frame.header.opcode);
  if (!op) return fail('PROTOCOL_MALFORMED', `unknown opcode ${frame.header.opcode}`);
  const decoded = decodePayload(frame.payload);
  if (!decoded.ok) return decoded;
  const parsed = REQUEST_SCHEMAS[op].safeParse(decoded.value);
  if (!parsed.success) {
    const p = schemaProblem(parsed.error);
    return fail('PROTOCOL_MALFORMED', `invalid ${op} request: ${p.message}`, { op, issues: p.issues });
  }
  return ok({ op, requestId: frame.header.requestId, body: parsed.data } as AnyRequest);
}

/**
 * Decode and validate the response to `op`. An error payload from the board becomes the matching
 * StationError (BOARD_* or PROTOCOL_VERSION; unknown codes become BOARD_INTERNAL).
 */
export function decodeResponse<O extends Op>(op: O, frame: RawFrame): Result<Responses[O]> {
  if (frame.header.kind !== 'response') return fail('PROTOCOL_UNEXPECTED', 'expected a response frame, got a request');
  if (frame.header.opcode !== OPCODES[op]) {
    return fail('PROTOCOL_UNEXPECTED', `expected a ${op} response, got opcode ${frame.header.opcode}`, {
      op,
      opcode: frame.header.opcode,
    });
  }
  if (frame.payload.length + HEADER_SIZE + CRC_SIZE > MAX_FRAME) return fail('PROTOCOL_OVERSIZE', 'response too large');
  const decoded = decodePayload(frame.payload);
  if (!decoded.ok) return decoded;
  const body = decoded.value;
  if (Object.prototype.hasOwnProperty.call(body, 'error')) {
    const e = ERROR_SCHEMA.safeParse(body);
    if (!e.success) {
      return fail('PROTOCOL_MALFORMED', `invalid ${op} error response: ${schemaProblem(e.error).message}`, { op });
    }
    const boardCode = sanitizeBoardText(e.data.error.code, 64);
    const boardMessage = sanitizeBoardText(e.data.error.message);
    const known = Object.prototype.hasOwnProperty.call(BOARD_ERROR_CODES, e.data.error.code);
    const code: ErrorCode = known ? BOARD_ERROR_CODES[e.data.error.code as BoardErrorCode] : 'BOARD_INTERNAL';
    const message = known
      ? `board refused ${op}: ${boardCode}: ${boardMessage}`
      : `board reported unknown error code ${boardCode} for ${op}: ${boardMessage}`;
    return { ok: false, error: stationError(code, message, { op, boardCode, boardMessage }) };
  }
  const parsed = RESPONSE_SCHEMAS[op].safeParse(body);
  if (!parsed.success) {
    const p = schemaProblem(parsed.error);
    return fail('PROTOCOL_MALFORMED', `invalid ${op} response: ${p.message}`, { op, issues: p.issues });
  }
  return ok(parsed.data as Responses[O]);
}
