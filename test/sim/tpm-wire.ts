/**
 * The few TPM 2.0 byte layouts the simulated TPM board's firmware touches itself (TPM 2.0 Library, Part 1 §18 command
 * and response structure, Part 2 structures, Part 3 commands): the command code and handles of a command, the
 * objectAttributes of a TPM2_Create / TPM2_CreateLoaded template (the rogue-relay fault), and the TPM2_PCR_Extend
 * its "boot ROM" sends. Written from the specification, independently of core/tpm/ (the station's side), as a
 * board's firmware would be. Everything is bounds-checked: a command that does not parse is left alone.
 */

/** Command codes (TPM_CC, Part 2 §6.5.2) the firmware looks at or a fault can name. */
export const TPM_CC = {
  EvictControl: 0x00000120,
  NV_DefineSpace: 0x0000012a,
  CreatePrimary: 0x00000131,
  NV_Write: 0x00000137,
  NV_WriteLock: 0x00000138,
  ActivateCredential: 0x00000147,
  Certify: 0x00000148,
  NV_Read: 0x0000014e,
  PolicySecret: 0x00000151,
  Create: 0x00000153,
  Load: 0x00000157,
  Quote: 0x00000158,
  FlushContext: 0x00000165,
  NV_ReadPublic: 0x00000169,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  PCR_Read: 0x0000017e,
  PCR_Extend: 0x00000182,
  CreateLoaded: 0x00000191,
} as const;
export type TpmCommandName = keyof typeof TPM_CC;

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = { fixedTPM: 0x00000002, fixedParent: 0x00000010, sensitiveDataOrigin: 0x00000020 } as const;

/** NV indices the TCG EK Credential Profile reserves for EK certificates and templates (0x01C00000..0x01C07FFF). */
export const EK_NV_FIRST = 0x01c00000;
export const EK_NV_LAST = 0x01c07fff;

const TPM_ST_SESSIONS = 0x8002;
const TPM_RS_PW = 0x40000009;
const TPM_ALG_SHA256 = 0x000b;

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Command code of a command (bytes 6..9), or null if it is shorter than a header. */
export function commandCode(cmd: Uint8Array): number | null {
  return cmd.length >= 10 ? view(cmd).getUint32(6) : null;
}

/** Response code of a response (bytes 6..9), or null if it is shorter than a header. */
export function responseCode(rsp: Uint8Array): number | null {
  return rsp.length >= 10 ? view(rsp).getUint32(6) : null;
}

/** The NV index a TPM2_NV_Read (handles: authHandle, nvIndex) or TPM2_NV_ReadPublic (nvIndex) command names. */
export function nvIndexRead(cmd: Uint8Array): number | null {
  const cc = commandCode(cmd);
  const at = cc === TPM_CC.NV_ReadPublic ? 10 : cc === TPM_CC.NV_Read ? 14 : -1;
  if (at < 0 || cmd.length < at + 4) return null;
  return view(cmd).getUint32(at);
}

/** True for a read of an EK certificate or template (what identifies the TPM). */
export function readsEkNv(cmd: Uint8Array): boolean {
  const i = nvIndexRead(cmd);
  return i !== null && i >= EK_NV_FIRST && i <= EK_NV_LAST;
}

/**
 * Offset of `objectAttributes` in the template of a TPM2_Create or TPM2_CreateLoaded command: header (10), parentHandle
 * (4), authorizationSize (4) and the area, inSensitive (TPM2B), then inPublic/inTemplate: size (2), type (2),
 * nameAlg (2), objectAttributes (4). Null for other commands or when the bytes do not parse.
 */
export function templateAttributesOffset(cmd: Uint8Array): number | null {
  const cc = commandCode(cmd);
  if (cc !== TPM_CC.Create && cc !== TPM_CC.CreateLoaded) return null;
  const dv = view(cmd);
  if (dv.getUint16(0) !== TPM_ST_SESSIONS) return null; // the parent's authorisation needs a session
  let o = 14;
  if (cmd.length < o + 4) return null;
  o += 4 + dv.getUint32(o);
  if (cmd.length < o + 2) return null;
  o += 2 + dv.getUint16(o);
  if (cmd.length < o + 2) return null;
  const publicSize = dv.getUint16(o);
  o += 2;
  const attrs = o + 4;
  if (publicSize < 8 || cmd.length < o + publicSize || attrs + 4 > cmd.length) return null;
  return attrs;
}

/** A copy of a TPM2_Create / TPM2_CreateLoaded command with `mask` cleared in its template's objectAttributes. */
export function withTemplateAttributesCleared(cmd: Uint8Array, mask: number): Uint8Array | null {
  const at = templateAttributesOffset(cmd);
  if (at === null) return null;
  const out = new Uint8Array(cmd);
  const dv = view(out);
  dv.setUint32(at, (dv.getUint32(at) & ~mask) >>> 0);
  return out;
}

/** objectAttributes of a TPM2_Create / TPM2_CreateLoaded template, or null. */
export function templateAttributes(cmd: Uint8Array): number | null {
  const at = templateAttributesOffset(cmd);
  return at === null ? null : view(cmd).getUint32(at);
}

/** TPM2_PCR_Extend(pcr, SHA-256 digest) with an empty password session (platform PCRs have an empty authValue). */
export function pcrExtendCommand(pcr: number, sha256: Uint8Array): Uint8Array {
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > 23) throw new RangeError('PCR index 0..23');
  if (sha256.length !== 32) throw new RangeError('SHA-256 digest of 32 bytes');
  const size = 10 + 4 + 4 + 9 + 4 + 2 + 32;
  const out = new Uint8Array(size);
  const dv = view(out);
  dv.setUint16(0, TPM_ST_SESSIONS);
  dv.setUint32(2, size);
  dv.setUint32(6, TPM_CC.PCR_Extend);
  dv.setUint32(10, pcr);
  dv.setUint32(14, 9); // authorizationSize: handle 4, nonce 2, attributes 1, hmac 2
  dv.setUint32(18, TPM_RS_PW); // nonce (0), attributes (0), hmac (0) follow as zeros
  dv.setUint32(27, 1); // TPML_DIGEST_VALUES.count
  dv.setUint16(31, TPM_ALG_SHA256);
  out.set(sha256, 33);
  return out;
}
