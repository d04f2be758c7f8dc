/**
 * The pkcs11js binding and the small helpers every part of the adapter shares: handle and template types,
 * CK_ULONG decoding, attribute reads, object search, label validation, and the box that carries a StationError out
 * of a synchronous Cryptoki sequence. native/hsm/ is the only folder that imports pkcs11js.
 */
import pkcs11js from 'pkcs11js';
import type { HsmKeyInfo } from '../../core/ports.js';
import type { StationError } from '../../core/errors.js';

export type PKCS11 = InstanceType<typeof pkcs11js.PKCS11>;
export type Handle = Buffer;
export type Template = { type: number; value?: number | boolean | string | Buffer }[];

/** The pkcs11js module (constants and the PKCS11 class). */
export const P = pkcs11js;
export const CKS_RO_USER_FUNCTIONS = 1;
export const CKS_RW_USER_FUNCTIONS = 3;

/** A CK_ULONG attribute value (4 or 8 bytes, little-endian as the platform stores it). */
export function ulong(b: Buffer): number {
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  if (b.length === 0) return 0;
  return b.readUIntLE(0, Math.min(b.length, 6));
}

/** One attribute's value; throws (Cryptoki error) when the token refuses it. */
export function attr(lib: PKCS11, s: Handle, o: Handle, type: number): Buffer {
  const r = lib.C_GetAttributeValue(s, o, [{ type }]);
  const v = r[0]?.value;
  if (!v) throw new Error('C_GetAttributeValue returned no value');
  return v;
}

/** One attribute's value, or undefined when the token does not report it. */
export function tryAttr(lib: PKCS11, s: Handle, o: Handle, type: number): Buffer | undefined {
  try {
    return attr(lib, s, o, type);
  } catch {
    return undefined;
  }
}

/** A CK_BBOOL attribute, or undefined when the token does not report it. */
export function tryBool(lib: PKCS11, s: Handle, o: Handle, type: number): boolean | undefined {
  const v = tryAttr(lib, s, o, type);
  return v && v.length > 0 ? v[0] === 1 : undefined;
}

/** Every object matching the template (C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal). */
export function findAll(lib: PKCS11, s: Handle, template: Template, max = 1000): Handle[] {
  lib.C_FindObjectsInit(s, template);
  try {
    return lib.C_FindObjects(s, max);
  } finally {
    lib.C_FindObjectsFinal(s);
  }
}

export const CLASS_NAMES: Record<number, HsmKeyInfo['class']> = {
  [P.CKO_PRIVATE_KEY]: 'private',
  [P.CKO_PUBLIC_KEY]: 'public',
  [P.CKO_SECRET_KEY]: 'secret',
  [P.CKO_CERTIFICATE]: 'certificate',
};

export const KEY_TYPE_NAMES: Record<number, string> = {
  [P.CKK_EC]: 'EC',
  [P.CKK_RSA]: 'RSA',
  [P.CKK_AES]: 'AES',
  [P.CKK_GENERIC_SECRET]: 'GENERIC_SECRET',
};

/** Key and certificate labels the adapter accepts: 1..64 printable ASCII characters. */
export function validLabel(label: string): boolean {
  return typeof label === 'string' && label.length > 0 && label.length <= 64 && /^[\x20-\x7e]+$/.test(label);
}

/** Carries a StationError out of a synchronous Cryptoki sequence run under `TokenSession.run()`. */
export class StationErrorBox {
  constructor(readonly error: StationError) {}
}
