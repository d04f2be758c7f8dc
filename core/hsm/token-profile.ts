/**
 * Token profiles: what differs between PKCS#11 implementations, as data (resources/tokens/*.json, schema
 * `line-station/token-profile/v1`). A profile names the module paths to try, the C_Initialize library parameters,
 * which mechanism gives RFC 5649 key wrap, template attributes the token refuses, whether it enforces the
 * protection attributes it reports, and its login and PIN-lock behaviour. The mechanisms a token really offers are
 * always read from the token (C_GetMechanismList/Info); the profile's `mechanisms` list is what was measured, checked
 * against the token by the adapter tests. docs/hsm.md "Token profiles".
 */
import { z } from 'zod';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { zodMessage } from '../zod-message.js';

/** PKCS#11 mechanism types the station uses (PKCS#11 3.0 numbering). */
export const MECHANISMS = {
  CKM_EC_KEY_PAIR_GEN: 0x1040,
  CKM_ECDSA: 0x1041,
  CKM_ECDH1_DERIVE: 0x1050,
  CKM_AES_KEY_GEN: 0x1080,
  CKM_AES_KEY_WRAP: 0x2109,
  CKM_AES_KEY_WRAP_PAD: 0x210a,
  CKM_AES_KEY_WRAP_KWP: 0x210b,
} as const;

/** Name of a mechanism the station uses. */
export type MechanismName = keyof typeof MECHANISMS;
export const MECHANISM_NAMES = Object.keys(MECHANISMS) as [MechanismName, ...MechanismName[]];

/** The name of a mechanism type, or `0x…` for one the station does not use. */
export function mechanismName(type: number): string {
  for (const [name, t] of Object.entries(MECHANISMS)) if (t === type) return name;
  return `0x${type.toString(16)}`;
}

/** Private-key template attributes a token may refuse (left out of the station's templates on that token). */
export const OPTIONAL_KEY_ATTRIBUTES = ['CKA_COPYABLE'] as const;
export type OptionalKeyAttribute = (typeof OPTIONAL_KEY_ATTRIBUTES)[number];

const text = (max: number) => z.string().min(1).max(max);

export const TokenProfileSchema = z.strictObject({
  schema: z.literal('line-station/token-profile/v1'),
  /** Stable id (file name without .json). */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  name: text(200),
  description: z.string().max(2000).optional(),
  /** How the profile is recognised: file name of the module (basename), and/or CK_TOKEN_INFO fields. */
  match: z.strictObject({
    moduleNames: z.array(text(200)).min(1).max(16),
    manufacturerID: text(32).optional(),
    model: text(16).optional(),
  }),
  /** Absolute module paths to try, in order (the first that exists is used). */
  modulePaths: z.array(z.string().regex(/^\//, 'must be an absolute path')).min(1).max(16),
  /**
   * C_Initialize `pReserved` library parameters (NSS softoken needs them), with `{tokenDir}` and `{tokenLabel}`
   * placeholders. Absent: C_Initialize without parameters.
   */
  libraryParameters: z
    .string()
    .max(2000)
    .refine((s) => !/[\0\n\r]/.test(s), 'no control characters')
    .optional(),
  /** Environment variable the module reads its configuration from (SoftHSM2: SOFTHSM2_CONF), if any. */
  configEnv: z
    .string()
    .regex(/^[A-Z][A-Z0-9_]*$/)
    .optional(),
  /** Mechanisms of MECHANISMS this token offered when measured (`measured`); the token's own list is authoritative. */
  mechanisms: z.array(z.enum(MECHANISM_NAMES)).max(32),
  /** The mechanism that wraps with RFC 5649 (AES key wrap with padding), which boards unwrap; null: none. */
  rfc5649Wrap: z.enum(['CKM_AES_KEY_WRAP_PAD', 'CKM_AES_KEY_WRAP_KWP']).nullable(),
  /** Notes on mechanisms that are listed but behave differently (for docs and `station doctor`). */
  mechanismNotes: z.partialRecord(z.enum(MECHANISM_NAMES), text(500)).optional(),
  keyAttributes: z.strictObject({
    /** Optional template attributes this token refuses on token keys (left out; the read-back check still runs). */
    refused: z.array(z.enum(OPTIONAL_KEY_ATTRIBUTES)).max(8),
  }),
  /** Does the token enforce CKA_SENSITIVE / CKA_EXTRACTABLE false against C_WrapKey and C_CopyObject? */
  keyProtection: z.strictObject({ enforced: z.boolean(), note: text(1000) }),
  login: z.strictObject({
    /** How the user PIN comes to exist on a fresh token. */
    userPinSetBy: z.enum(['init-token', 'security-officer', 'vendor-tool']),
    note: text(1000),
  }),
  pinLock: z.strictObject({
    /** Wrong user PINs before CKR_PIN_LOCKED; null: the token never locks (measured). */
    locksAfter: z.number().int().min(1).max(1000).nullable(),
    note: text(1000),
  }),
  /** Where and when the profile was measured. */
  measured: z.strictObject({ version: text(200), date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/), inCi: z.boolean() }),
});

export type TokenProfile = z.output<typeof TokenProfileSchema>;

/** Parse a token profile (already JSON-decoded); `source` names the file in the error. */
export function parseTokenProfile(json: unknown, source: string): Result<TokenProfile> {
  const r = TokenProfileSchema.safeParse(json);
  if (!r.success)
    return fail('HSM_TOKEN_PROFILE_INVALID', zodMessage(r.error, `token profile ${source}`), { file: source });
  return ok(r.data);
}

/** JSON Schema (2020-12) of a token profile file; committed as resources/tokens/schema/token-profile.v1.schema.json. */
export function tokenProfileJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(TokenProfileSchema, { io: 'input' }),
    $id: 'https://line-station.dev/schemas/token-profile/v1.json',
    title: 'Line Station token profile (line-station/token-profile/v1)',
  };
}

/** The profile whose match fits a module path and token info (module name first, then manufacturer/model). */
export function matchTokenProfile(
  profiles: readonly TokenProfile[],
  module: string,
  token?: { readonly manufacturerID?: string; readonly model?: string },
): TokenProfile | null {
  const base = module.split('/').pop() ?? module;
  for (const p of profiles) {
    if (!p.match.moduleNames.includes(base)) continue;
    if (token && p.match.manufacturerID !== undefined && token.manufacturerID !== undefined) {
      if (token.manufacturerID.trim() !== p.match.manufacturerID) continue;
    }
    if (token && p.match.model !== undefined && token.model !== undefined) {
      if (token.model.trim() !== p.match.model) continue;
    }
    return p;
  }
  return null;
}

/** The library parameters of a profile with its placeholders filled in (undefined when it has none). */
export function libraryParametersFor(
  profile: TokenProfile,
  vars: { readonly tokenDir?: string; readonly tokenLabel?: string },
): Result<string | undefined> {
  const tpl = profile.libraryParameters;
  if (tpl === undefined) return ok(undefined);
  let missing: string | null = null;
  const out = tpl.replace(/\{(tokenDir|tokenLabel)\}/g, (_, k: 'tokenDir' | 'tokenLabel') => {
    const v = vars[k];
    if (v === undefined) {
      missing = k;
      return '';
    }
    return v;
  });
  if (missing !== null)
    return fail('CONFIG_INVALID', `token profile ${profile.id} needs ${missing} for its library parameters`, {
      profile: profile.id,
    });
  for (const v of [vars.tokenDir, vars.tokenLabel])
    if (v !== undefined && /['\0\n\r]/.test(v))
      return fail('CONFIG_INVALID', `token directory and label may not contain quotes or control characters`, {
        profile: profile.id,
      });
  return ok(out);
}
