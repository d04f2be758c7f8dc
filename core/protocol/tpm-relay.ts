/**
 * The TPM relay message's payload rule (docs/protocol.md §3.3): a byte string that is exactly one TPM 2.0 command or
 * response, checked by its 10-byte header only (tag TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS, the size field equal to
 * the byte count, at most TPM_RELAY_MAX bytes). The bytes themselves are never changed: the relay carries them as
 * they are; what they mean is the TPM's business (core/tpm/).
 */

/** TPM 2.0 command and response header: tag u16, size u32, command code / response code u32 (big-endian). */
export const TPM_HEADER_SIZE = 10;
/** Largest TPM command or response the relay message carries (MAX_COMMAND_SIZE / MAX_RESPONSE_SIZE of TPMs). */
export const TPM_RELAY_MAX = 4096;
/** TPM_ST_NO_SESSIONS and TPM_ST_SESSIONS: the only tags of TPM 2.0 commands and responses. */
export const TPM_ST_NO_SESSIONS = 0x8001;
export const TPM_ST_SESSIONS = 0x8002;

/** Why `b` is not one whole TPM 2.0 command or response, or null if its header says it is. */
export function tpmBytesProblem(b: Uint8Array): string | null {
  if (b.length < TPM_HEADER_SIZE) return `${b.length} bytes is shorter than a TPM header (${TPM_HEADER_SIZE})`;
  if (b.length > TPM_RELAY_MAX) return `${b.length} bytes exceeds ${TPM_RELAY_MAX}`;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tag = dv.getUint16(0);
  if (tag !== TPM_ST_NO_SESSIONS && tag !== TPM_ST_SESSIONS)
    return `tag 0x${tag.toString(16).padStart(4, '0')} is not a TPM 2.0 tag`;
  const size = dv.getUint32(2);
  if (size !== b.length) return `header size ${size} differs from the ${b.length} bytes carried`;
  return null;
}

/** The command code (TPM_CC) of a command, or the response code (TPM_RC) of a response: header bytes 6..9. */
export function tpmCode(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(6);
}
