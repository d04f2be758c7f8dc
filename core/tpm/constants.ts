/**
 * TPM 2.0 constants the station uses: structure tags, command codes, response codes (with names), algorithm ids,
 * curves, object and NV attributes, handles, capabilities and properties.
 * Values from TPM 2.0 Library Part 2 ("Structures"), §6 (constants), §8 (attributes), §7 (handles).
 */

/** TPM_ST (Part 2 §6.9). */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  CREATION: 0x8021,
  AUTH_SECRET: 0x8023,
} as const;

/** TPM_GENERATED_VALUE: the magic of every TPMS_ATTEST the TPM signs (Part 2 §6.2). */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPM_CC (Part 2 §6.5.2): the commands core/tpm sends. */
export const TPM_CC = {
  NV_UndefineSpace: 0x00000122,
  EvictControl: 0x00000120,
  NV_DefineSpace: 0x0000012a,
  CreatePrimary: 0x00000131,
  NV_Write: 0x00000137,
  NV_WriteLock: 0x00000138,
  DictionaryAttackLockReset: 0x00000139,
  ActivateCredential: 0x00000147,
  Certify: 0x00000148,
  NV_Read: 0x0000014e,
  PolicySecret: 0x00000151,
  Create: 0x00000153,
  Load: 0x00000157,
  Quote: 0x00000158,
  FlushContext: 0x00000165,
  MakeCredential: 0x00000168,
  NV_ReadPublic: 0x00000169,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
  PCR_Read: 0x0000017e,
  PCR_Extend: 0x00000182,
  PolicyGetDigest: 0x00000189,
} as const;

/** TPM_ALG_ID (Part 2 §6.3). */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** TPM_ECC_CURVE (Part 2 §6.4). */
export const TPM_ECC = {
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
} as const;

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_NV bits (Part 2 §13.4); the index type (TPM_NT) is bits 4..7 (0 = ordinary). */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  POLICY_DELETE: 1 << 10,
  WRITELOCKED: 1 << 11,
  WRITEALL: 1 << 12,
  WRITEDEFINE: 1 << 13,
  WRITE_STCLEAR: 1 << 14,
  GLOBALLOCK: 1 << 15,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  ORDERLY: 1 << 26,
  CLEAR_STCLEAR: 1 << 27,
  READLOCKED: 1 << 28,
  WRITTEN: 1 << 29,
  PLATFORMCREATE: 1 << 30,
  READ_STCLEAR: 2 ** 31,
} as const;

/** TPMA_PERMANENT bits (Part 2 §8.6), the value of TPM_PT_PERMANENT. */
export const TPMA_PERMANENT = {
  ownerAuthSet: 1 << 0,
  endorsementAuthSet: 1 << 1,
  lockoutAuthSet: 1 << 2,
  disableClear: 1 << 8,
  inLockout: 1 << 9,
  tpmGeneratedEPS: 1 << 10,
} as const;

/** TPM_HT: the handle type is the top byte of a handle (Part 2 §7.2). */
export const TPM_HT = {
  PCR: 0x00,
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** Permanent handles (Part 2 §7.4). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  /** The password authorisation session (TPM_RS_PW). */
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPM_SE session types (Part 2 §6.11). */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP (Part 2 §6.12). */
export const TPM_CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  COMMANDS: 0x00000002,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
  ECC_CURVES: 0x00000008,
} as const;

/** TPM_PT (Part 2 §6.13): the properties core/tpm reads. */
export const TPM_PT = {
  FAMILY_INDICATOR: 0x100,
  REVISION: 0x102,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  INPUT_BUFFER: 0x10d,
  PCR_COUNT: 0x112,
  NV_INDEX_MAX: 0x117,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  NV_BUFFER_MAX: 0x12c,
  PERMANENT: 0x200,
  STARTUP_CLEAR: 0x201,
  LOCKOUT_COUNTER: 0x20e,
  MAX_AUTH_FAIL: 0x20f,
  LOCKOUT_INTERVAL: 0x210,
  LOCKOUT_RECOVERY: 0x211,
} as const;

/** TPM_RC values (Part 2 §6.6) that callers test for. */
export const TPM_RC = {
  SUCCESS: 0x000,
  /** Format-one codes: the base value (bits 0..5 + 0x080); the handle/parameter/session number is stripped. */
  AUTH_FAIL: 0x08e,
  INTEGRITY: 0x09f,
  BAD_AUTH: 0x0a2,
  HANDLE: 0x08b,
  VALUE: 0x084,
  NV_LOCKED: 0x148,
  NV_DEFINED: 0x14c,
  NV_UNINITIALIZED: 0x14a,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  YIELDED: 0x908,
  TESTING: 0x90a,
} as const;

const RC_VER1_NAMES: Readonly<Record<number, string>> = {
  0x100: 'INITIALIZE',
  0x101: 'FAILURE',
  0x103: 'SEQUENCE',
  0x10b: 'PRIVATE',
  0x119: 'HMAC',
  0x120: 'DISABLED',
  0x121: 'EXCLUSIVE',
  0x124: 'AUTH_TYPE',
  0x125: 'AUTH_MISSING',
  0x126: 'POLICY',
  0x127: 'PCR',
  0x128: 'PCR_CHANGED',
  0x12d: 'UPGRADE',
  0x12e: 'TOO_MANY_CONTEXTS',
  0x12f: 'AUTH_UNAVAILABLE',
  0x130: 'REBOOT',
  0x131: 'UNBALANCED',
  0x142: 'COMMAND_SIZE',
  0x143: 'COMMAND_CODE',
  0x144: 'AUTHSIZE',
  0x145: 'AUTH_CONTEXT',
  0x146: 'NV_RANGE',
  0x147: 'NV_SIZE',
  0x148: 'NV_LOCKED',
  0x149: 'NV_AUTHORIZATION',
  0x14a: 'NV_UNINITIALIZED',
  0x14b: 'NV_SPACE',
  0x14c: 'NV_DEFINED',
  0x150: 'BAD_CONTEXT',
  0x151: 'CPHASH',
  0x152: 'PARENT',
  0x153: 'NEEDS_TEST',
  0x154: 'NO_RESULT',
  0x155: 'SENSITIVE',
};

const RC_FMT1_NAMES: Readonly<Record<number, string>> = {
  0x081: 'ASYMMETRIC',
  0x082: 'ATTRIBUTES',
  0x083: 'HASH',
  0x084: 'VALUE',
  0x085: 'HIERARCHY',
  0x087: 'KEY_SIZE',
  0x088: 'MGF',
  0x089: 'MODE',
  0x08a: 'TYPE',
  0x08b: 'HANDLE',
  0x08c: 'KDF',
  0x08d: 'RANGE',
  0x08e: 'AUTH_FAIL',
  0x08f: 'NONCE',
  0x090: 'PP',
  0x092: 'SCHEME',
  0x095: 'SIZE',
  0x096: 'SYMMETRIC',
  0x097: 'TAG',
  0x098: 'SELECTOR',
  0x09a: 'INSUFFICIENT',
  0x09b: 'SIGNATURE',
  0x09c: 'KEY',
  0x09d: 'POLICY_FAIL',
  0x09f: 'INTEGRITY',
  0x0a0: 'TICKET',
  0x0a1: 'RESERVED_BITS',
  0x0a2: 'BAD_AUTH',
  0x0a3: 'EXPIRED',
  0x0a4: 'POLICY_CC',
  0x0a5: 'BINDING',
  0x0a6: 'CURVE',
  0x0a7: 'ECC_POINT',
};

const RC_WARN_NAMES: Readonly<Record<number, string>> = {
  0x901: 'CONTEXT_GAP',
  0x902: 'OBJECT_MEMORY',
  0x903: 'SESSION_MEMORY',
  0x904: 'MEMORY',
  0x905: 'SESSION_HANDLES',
  0x906: 'OBJECT_HANDLES',
  0x907: 'LOCALITY',
  0x908: 'YIELDED',
  0x909: 'CANCELED',
  0x90a: 'TESTING',
  0x920: 'NV_RATE',
  0x921: 'LOCKOUT',
  0x922: 'RETRY',
  0x923: 'NV_UNAVAILABLE',
};

/** A decoded response code (Part 2 §6.6.2: format zero or format one). */
export interface DecodedRc {
  /** The code without handle/parameter/session number (compare with TPM_RC). */
  readonly base: number;
  /** `TPM_RC_INTEGRITY (parameter 2)`, `TPM_RC_LOCKOUT`, `TPM_RC_0x1234` for codes we do not name. */
  readonly name: string;
}

/** Decode a TPM_RC into its base code and a readable name. */
export function decodeRc(rc: number): DecodedRc {
  if (rc & 0x080) {
    const base = rc & 0x0bf;
    const n = (rc >> 8) & 0xf;
    const where = rc & 0x040 ? `parameter ${n}` : rc & 0x800 ? `session ${n & 0x7}` : `handle ${n & 0x7}`;
    const name = RC_FMT1_NAMES[base];
    return { base, name: name ? `TPM_RC_${name} (${where})` : `TPM_RC_0x${hex(rc)}` };
  }
  const base = rc & 0xfff;
  const name = RC_VER1_NAMES[base] ?? RC_WARN_NAMES[base];
  return { base, name: name ? `TPM_RC_${name}` : `TPM_RC_0x${hex(rc)}` };
}

const hex = (n: number): string => n.toString(16).padStart(3, '0');

/** Hash algorithms core/tpm computes with WebCrypto, by TPM_ALG_ID. */
export const HASHES: Readonly<
  Record<number, { readonly name: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512'; readonly size: number }>
> = {
  [TPM_ALG.SHA1]: { name: 'SHA-1', size: 20 },
  [TPM_ALG.SHA256]: { name: 'SHA-256', size: 32 },
  [TPM_ALG.SHA384]: { name: 'SHA-384', size: 48 },
  [TPM_ALG.SHA512]: { name: 'SHA-512', size: 64 },
};

/** ECC curves core/tpm supports, by TPM_ECC_CURVE: WebCrypto name and coordinate size. */
export const CURVES: Readonly<Record<number, { readonly name: 'P-256' | 'P-384' | 'P-521'; readonly size: number }>> = {
  [TPM_ECC.NIST_P256]: { name: 'P-256', size: 32 },
  [TPM_ECC.NIST_P384]: { name: 'P-384', size: 48 },
  [TPM_ECC.NIST_P521]: { name: 'P-521', size: 66 },
};
