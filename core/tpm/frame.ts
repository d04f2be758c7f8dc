/**
 * TPM 2.0 command and response frames: the header (tag, size, command or response code), the handle area, the
 * authorization area and the parameter area (TPM 2.0 Library Part 1 §18; authorizations Part 1 §19, the password
 * session TPM_RS_PW). Pure functions, shared by `Tpm` (commands.ts) and by anything that must look inside relayed
 * bytes (a simulator, a test relay).
 */
import { fail, stationError } from '../errors.js';
import type { Result } from '../result.js';
import { TPM_RC, TPM_RH, TPM_ST, decodeRc } from './constants.js';
import { TpmReader, TpmWriter } from './marshal.js';
import { TPM_MAX_COMMAND_SIZE } from './transport.js';

/** How to authorise the use of an entity: the password session (empty by default) or a policy session. */
export type Authorisation =
  { readonly kind: 'password'; readonly value?: Uint8Array } | { readonly kind: 'policy'; readonly session: number };

/** One command before marshalling. */
export interface TpmCommand {
  /** For messages: `TPM2_Quote`. */
  readonly name: string;
  readonly cc: number;
  readonly handles: readonly number[];
  readonly auths: readonly Authorisation[];
  readonly params: Uint8Array;
}

/** A successful response's handle area and parameter area. */
export interface RawResponse {
  readonly handles: readonly number[];
  readonly params: Uint8Array;
}

/** The header size of every command and response. */
export const TPM_HEADER_SIZE = 10;

const RETRY_CODES: ReadonlySet<number> = new Set([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING]);

/**
 * Marshal a command: TPM_ST_SESSIONS with an authorization area when it has authorisations, else
 * TPM_ST_NO_SESSIONS. PROTOCOL_REQUEST_TOO_LARGE above `TPM_MAX_COMMAND_SIZE`.
 */
export function encodeCommand(c: TpmCommand): Result<Uint8Array> {
  const body = new TpmWriter();
  for (const h of c.handles) body.u32(h);
  if (c.auths.length > 0) {
    const area = new TpmWriter();
    for (const a of c.auths) {
      if (a.kind === 'password') {
        // TPMS_AUTH_COMMAND: TPM_RS_PW, empty nonce, continueSession, the password as hmac.
        area
          .u32(TPM_RH.PW)
          .tpm2b(new Uint8Array(0))
          .u8(0x01)
          .tpm2b(a.value ?? new Uint8Array(0));
      } else {
        // A policy session without PolicyAuthValue/PolicyPassword has no HMAC; continueSession clear (flushed).
        area
          .u32(a.session)
          .tpm2b(globalThis.crypto.getRandomValues(new Uint8Array(32)))
          .u8(0x00);
        area.tpm2b(new Uint8Array(0));
      }
    }
    body.u32(area.length).bytes(area.toBytes());
  }
  body.bytes(c.params);
  const size = TPM_HEADER_SIZE + body.length;
  if (size > TPM_MAX_COMMAND_SIZE) {
    return fail('PROTOCOL_REQUEST_TOO_LARGE', `${c.name}: ${size} bytes exceed ${TPM_MAX_COMMAND_SIZE}`);
  }
  const tag = c.auths.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  return { ok: true, value: new TpmWriter().u16(tag).u32(size).u32(c.cc).bytes(body.toBytes()).toBytes() };
}

/** The command code of a marshalled command (or response code of a response), or undefined if too short. */
export function frameCode(frame: Uint8Array): number | undefined {
  if (frame.length < TPM_HEADER_SIZE) return undefined;
  return ((frame[6]! << 24) | (frame[7]! << 16) | (frame[8]! << 8) | frame[9]!) >>> 0;
}

/** Is `response` a bare TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING answer (resend the command: Part 2 §6.6)? */
export function isRetryResponse(response: Uint8Array): boolean {
  const rc = frameCode(response);
  return response.length === TPM_HEADER_SIZE && rc !== undefined && RETRY_CODES.has(rc);
}

/** A response code as a coded error: TPM_LOCKOUT for TPM_RC_LOCKOUT, TPM_COMMAND_FAILED with its name otherwise. */
export function responseCodeError(
  command: string,
  rc: number,
): { readonly ok: false; readonly error: ReturnType<typeof stationError> } {
  const d = decodeRc(rc);
  const details = { command, rc: `0x${rc.toString(16).padStart(8, '0')}`, rcName: d.name };
  if (d.base === TPM_RC.LOCKOUT) return fail('TPM_LOCKOUT', `${command}: the TPM is in lockout (${d.name})`, details);
  return fail('TPM_COMMAND_FAILED', `${command} failed: ${d.name}`, details);
}

/**
 * Check and split a response to `command` (sent with `sessions` authorisations, answering `responseHandles`
 * handles): header size = bytes received, the tag that goes with the sessions, response code success, the
 * parameter area (parameterSize when there are sessions) and one TPMS_AUTH_RESPONSE per session, nothing after.
 */
export function decodeResponse(
  command: string,
  response: Uint8Array,
  responseHandles: number,
  sessions: number,
): Result<RawResponse> {
  const r = new TpmReader(response, `${command} response`);
  const tag = r.u16();
  const announced = r.u32();
  const rc = r.u32();
  if (r.failed) return r.result({ handles: [], params: new Uint8Array(0) });
  if (announced !== response.length) {
    return fail(
      'TPM_RESPONSE_MALFORMED',
      `${command} response: header says ${announced} bytes, got ${response.length}`,
    );
  }
  if (rc !== TPM_RC.SUCCESS) return responseCodeError(command, rc);
  const handles: number[] = [];
  for (let i = 0; i < responseHandles; i++) handles.push(r.u32());
  let params: Uint8Array;
  if (sessions > 0) {
    if (tag !== TPM_ST.SESSIONS) r.fail(`tag 0x${tag.toString(16)} (expected TPM_ST_SESSIONS)`);
    params = r.bytes(r.u32());
    for (let i = 0; i < sessions && !r.failed; i++) {
      r.tpm2b(64); // nonceTPM
      r.u8(); // sessionAttributes
      r.tpm2b(64); // hmac
    }
  } else {
    if (tag !== TPM_ST.NO_SESSIONS) r.fail(`tag 0x${tag.toString(16)} (expected TPM_ST_NO_SESSIONS)`);
    params = r.bytes(r.remaining);
  }
  r.end();
  return r.result({ handles, params });
}
