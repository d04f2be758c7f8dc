/**
 * The expected baseline of a work order and the signed baseline manifest.
 *
 * Rules of evaluateBaseline (each violation names its rule):
 *  - firmware.missing    a slot listed in the policy was not measured
 *  - firmware.digest     a listed slot's digest is not one of the allowed digests
 *  - firmware.unlisted   a measured slot is not listed in the policy
 *  - firmware.duplicate  a slot was measured more than once (ambiguous)
 *  - secureBoot          policy "required" and the board reports secure boot off
 *  - debugLocked         policy "required" and the board reports debug unlocked
 *  - fuseDigest          policy lists fuseDigests and the measured one is not among them
 *  - configDigest        policy lists configDigests and the measured one is not among them
 * `pass` is true iff there is no violation. Absent fuseDigests/configDigests mean "not checked";
 * a present list must not be empty (an empty allow-list is refused by the schema, never "allow all").
 *
 * TPM boards (driver tpm2) are judged by evaluatePcrBaseline instead, on the PCR values of their verified quote:
 *  - pcrs.absent         the work order's baseline has no `pcrs` block (a TPM board needs expected PCRs)
 *  - pcr.bank            the quote's PCR bank is not the policy's
 *  - pcr.missing         a PCR listed in the policy was not quoted
 *  - pcr.value           a listed PCR's value is not one of its allowed values
 *  - pcr.unlisted        a quoted PCR is not listed in the policy
 * The firmware / secureBoot / debugLocked / fuse / config rules are the LS protocol's and do not apply to TPM boards.
 */
import { z } from 'zod';
import { utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import type { BoardIdentity, Measurements } from '../model.js';
import type { Clock, Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { signJws, verifyJws } from '../pki/jws.js';
import { MANIFEST_TYP } from './record-manifest.js';

export { MANIFEST_TYP };
export const MANIFEST_SCHEMA = 'line-station/manifest/v1';

/** Lower-case SHA-256 hex. */
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex chars (lower-case SHA-256)');
const SlotName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, 'expected a slot name (1..32 of A-Z a-z 0-9 . _ -)');

/** Standard base64 with padding (RFC 4648 §4), as x5c uses: `openssl base64 -d -A` reads it. */
export const B64 = z
  .string()
  .min(4)
  .max(16384)
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'expected standard base64');
/** base64url without padding. */
export const B64Url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');

/** PCR banks a profile may quote and a work order may list, with their digest sizes in bytes. */
export const PCR_BANKS = { sha1: 20, sha256: 32, sha384: 48 } as const;
export type PcrBank = keyof typeof PCR_BANKS;
const PcrBankSchema = z.enum(Object.keys(PCR_BANKS) as [PcrBank, ...PcrBank[]]);
/** A PCR index as a JSON member name: "0" .. "23" (no leading zeros). */
const PcrIndexKey = z.string().regex(/^(?:1?[0-9]|2[0-3])$/, 'expected a PCR index "0".."23"');
const PcrValue = z.string().regex(/^(?:[0-9a-f]{2}){20,48}$/, 'expected a PCR value (lower-case hex)');

/**
 * Expected PCR values for TPM boards (optional; rules pcr.* in evaluatePcrBaseline): the bank, and for each PCR
 * index the allowed values (lower-case hex of the bank's digest size).
 */
export const PcrPolicySchema = z
  .object({
    bank: PcrBankSchema,
    values: z
      .record(PcrIndexKey, z.array(PcrValue).min(1, 'expected at least one allowed value'))
      .refine((r) => Object.keys(r).length > 0, 'expected at least one PCR'),
  })
  .strict()
  .superRefine((p, ctx) => {
    const size = PCR_BANKS[p.bank] * 2;
    for (const [pcr, values] of Object.entries(p.values))
      values.forEach((v, i) => {
        if (v.length !== size)
          ctx.addIssue({
            code: 'custom',
            path: ['values', pcr, i],
            message: `expected ${size} hex chars (a ${p.bank} digest)`,
          });
      });
  });
export type PcrPolicy = z.infer<typeof PcrPolicySchema>;

export const BaselinePolicySchema = z
  .object({
    firmware: z
      .record(SlotName, z.array(Sha256Hex).min(1, 'expected at least one allowed digest'))
      .refine((r) => Object.keys(r).length > 0, 'expected at least one firmware slot'),
    secureBoot: z.enum(['required', 'any']),
    debugLocked: z.enum(['required', 'any']),
    fuseDigests: z.array(Sha256Hex).min(1, 'expected at least one digest (omit the field to not check)').optional(),
    configDigests: z.array(Sha256Hex).min(1, 'expected at least one digest (omit the field to not check)').optional(),
    /** Expected PCR values of TPM boards (driver tpm2); absent: a TPM board fails with rule pcrs.absent. */
    pcrs: PcrPolicySchema.optional(),
  })
  .strict();

export type BaselinePolicy = z.infer<typeof BaselinePolicySchema>;

export type BaselineRule =
  | 'firmware.missing'
  | 'firmware.digest'
  | 'firmware.unlisted'
  | 'firmware.duplicate'
  | 'secureBoot'
  | 'debugLocked'
  | 'fuseDigest'
  | 'configDigest'
  | 'pcrs.absent'
  | 'pcr.bank'
  | 'pcr.missing'
  | 'pcr.value'
  | 'pcr.unlisted';

export interface Violation {
  readonly rule: BaselineRule;
  /** JSON value (never undefined). */
  readonly expected: unknown;
  readonly actual: unknown;
  readonly message: string;
}

export interface Verdict {
  readonly pass: boolean;
  readonly violations: Violation[];
}

/** Compare measurements with the policy; pure and total (see the rule list at the top of this file). */
export function evaluateBaseline(m: Measurements, policy: BaselinePolicy): Verdict {
  const violations: Violation[] = [];
  const seen = new Map<string, number>();
  for (const fw of m.firmware) seen.set(fw.name, (seen.get(fw.name) ?? 0) + 1);
  for (const [slot, count] of seen)
    if (count > 1)
      violations.push({
        rule: 'firmware.duplicate',
        expected: 1,
        actual: count,
        message: `firmware slot ${slot} measured ${count} times`,
      });
  for (const [slot, allowed] of Object.entries(policy.firmware)) {
    const fw = m.firmware.find((f) => f.name === slot);
    if (!fw) {
      violations.push({
        rule: 'firmware.missing',
        expected: allowed,
        actual: null,
        message: `firmware slot ${slot} is missing`,
      });
    } else if (!allowed.includes(fw.sha256)) {
      violations.push({
        rule: 'firmware.digest',
        expected: allowed,
        actual: fw.sha256,
        message: `firmware slot ${slot} (version ${fw.version}) has digest ${fw.sha256}, not an allowed one`,
      });
    }
  }
  for (const slot of seen.keys())
    if (!Object.prototype.hasOwnProperty.call(policy.firmware, slot)) {
      const fw = m.firmware.find((f) => f.name === slot)!;
      violations.push({
        rule: 'firmware.unlisted',
        expected: null,
        actual: fw.sha256,
        message: `firmware slot ${slot} is not in the baseline`,
      });
    }
  if (policy.secureBoot === 'required' && m.secureBoot !== true)
    violations.push({
      rule: 'secureBoot',
      expected: true,
      actual: m.secureBoot,
      message: 'secure boot is not enabled',
    });
  if (policy.debugLocked === 'required' && m.debugLocked !== true)
    violations.push({
      rule: 'debugLocked',
      expected: true,
      actual: m.debugLocked,
      message: 'the debug port is not locked',
    });
  if (policy.fuseDigests && !policy.fuseDigests.includes(m.fuseDigest))
    violations.push({
      rule: 'fuseDigest',
      expected: policy.fuseDigests,
      actual: m.fuseDigest,
      message: `fuse digest ${m.fuseDigest} is not an allowed one`,
    });
  if (policy.configDigests && !policy.configDigests.includes(m.configDigest))
    violations.push({
      rule: 'configDigest',
      expected: policy.configDigests,
      actual: m.configDigest,
      message: `configuration digest ${m.configDigest} is not an allowed one`,
    });
  return { pass: violations.length === 0, violations };
}

/** PCR index order: numeric ("2" before "10"). */
const byPcr = (a: string, b: string): number => Number(a) - Number(b);

/**
 * Compare the PCR values of a TPM board's verified quote with the policy's `pcrs`; pure and total (rules pcr.* at
 * the top of this file).
 */
export function evaluatePcrBaseline(m: TpmMeasurements, policy: BaselinePolicy): Verdict {
  const violations: Violation[] = [];
  const want = policy.pcrs;
  if (!want) {
    violations.push({
      rule: 'pcrs.absent',
      expected: 'a pcrs block',
      actual: null,
      message: 'the work order lists no expected PCR values for TPM boards',
    });
    return { pass: false, violations };
  }
  if (want.bank !== m.pcrBank) {
    violations.push({
      rule: 'pcr.bank',
      expected: want.bank,
      actual: m.pcrBank,
      message: `the work order expects ${want.bank} PCRs; the board quoted its ${m.pcrBank} bank`,
    });
    return { pass: false, violations };
  }
  for (const pcr of Object.keys(want.values).sort(byPcr)) {
    const allowed = want.values[pcr]!;
    const actual = Object.prototype.hasOwnProperty.call(m.pcrs, pcr) ? m.pcrs[pcr]! : null;
    if (actual === null)
      violations.push({ rule: 'pcr.missing', expected: allowed, actual: null, message: `PCR ${pcr} was not quoted` });
    else if (!allowed.includes(actual))
      violations.push({
        rule: 'pcr.value',
        expected: allowed,
        actual,
        message: `PCR ${pcr} is ${actual}, not an allowed value`,
      });
  }
  for (const pcr of Object.keys(m.pcrs).sort(byPcr))
    if (!Object.prototype.hasOwnProperty.call(want.values, pcr))
      violations.push({
        rule: 'pcr.unlisted',
        expected: null,
        actual: m.pcrs[pcr]!,
        message: `PCR ${pcr} was quoted but the work order lists no value for it`,
      });
  return { pass: violations.length === 0, violations };
}

// ---------------------------------------------------------------- manifest

const ViolationSchema = z
  .object({ rule: z.string(), expected: z.unknown(), actual: z.unknown(), message: z.string() })
  .strict();

/** The measurements of an LS board (protocol `measure`), as the manifest holds them. */
export const LsMeasurementsSchema = z
  .object({
    firmware: z.array(z.object({ name: z.string(), version: z.string(), sha256: z.string() }).strict()),
    secureBoot: z.boolean(),
    debugLocked: z.boolean(),
    fuseDigest: z.string(),
    configDigest: z.string(),
  })
  .strict();

/**
 * The measurements of a TPM board (driver tpm2; docs/formats.md "TPM measurements"): the PCR values read with
 * PCR_Read, and the TPM2_Quote over them by the attestation key (IAK) with the station's fresh nonce. TPM structures
 * are the TPM's bytes (standard base64), so a third party re-checks them with tpm2-tools or openssl.
 */
export const TpmMeasurementsSchema = z
  .object({
    pcrBank: PcrBankSchema,
    /** PCR index -> value (lower-case hex), the quote's selection in ascending order. */
    pcrs: z.record(PcrIndexKey, PcrValue),
    quote: z
      .object({
        /** TPMS_ATTEST as the TPM signed it (TPM2B_ATTEST contents; magic TPM_GENERATED_VALUE, type ATTEST_QUOTE). */
        attest: B64,
        /** TPMT_SIGNATURE (ECDSA, SHA-256) by the IAK over `attest`. */
        signature: B64,
        /** The station's fresh nonce (extraData of the quote). */
        nonce: B64Url,
      })
      .strict(),
    /** The attestation key that signed the quote: its TPMT_PUBLIC and its name (nameAlg || digest, hex). */
    ak: z.object({ public: B64, name: z.string().regex(/^000b[0-9a-f]{64}$/, 'expected a SHA-256 TPM name') }).strict(),
  })
  .strict();
export type TpmMeasurements = z.infer<typeof TpmMeasurementsSchema>;

/** What a manifest's `measurements` may be: an LS board's or a TPM board's (the two are told apart by their keys). */
export const ManifestMeasurementsSchema = z.union([LsMeasurementsSchema, TpmMeasurementsSchema]);
export type ManifestMeasurements = z.infer<typeof ManifestMeasurementsSchema>;

/** Whether manifest measurements are a TPM board's. */
export const isTpmMeasurements = (m: Measurements | TpmMeasurements): m is TpmMeasurements => 'pcrs' in m;

export const ManifestSchema = z
  .object({
    schema: z.literal(MANIFEST_SCHEMA),
    board: z
      .object({
        chipId: z.string(),
        serialNumber: z.string(),
        model: z.string(),
        hardwareRevision: z.string(),
        firmwareVersion: z.string(),
      })
      .strict(),
    measurements: ManifestMeasurementsSchema,
    policy: BaselinePolicySchema,
    policyRef: z.object({ workOrder: z.string(), sha256: Sha256Hex }).strict(),
    verdict: z.object({ pass: z.boolean(), violations: z.array(ViolationSchema) }).strict(),
    capturedAt: z.string().datetime({ offset: true }),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;

/** Assemble the baseline manifest (plain JSON values only; see docs/formats.md). */
export function buildManifest(p: {
  identity: BoardIdentity;
  measurements: Measurements | TpmMeasurements;
  policy: BaselinePolicy;
  policyRef: { workOrder: string; sha256: string };
  verdict: Verdict;
  capturedAt: string;
}): Manifest {
  const { identity: id, measurements: m } = p;
  return {
    schema: MANIFEST_SCHEMA,
    board: {
      chipId: id.chipId,
      serialNumber: id.serialNumber,
      model: id.model,
      hardwareRevision: id.hardwareRevision,
      firmwareVersion: id.firmwareVersion,
    },
    measurements: isTpmMeasurements(m)
      ? {
          pcrBank: m.pcrBank,
          pcrs: { ...m.pcrs },
          quote: { attest: m.quote.attest, signature: m.quote.signature, nonce: m.quote.nonce },
          ak: { public: m.ak.public, name: m.ak.name },
        }
      : {
          firmware: m.firmware.map((f) => ({ name: f.name, version: f.version, sha256: f.sha256 })),
          secureBoot: m.secureBoot,
          debugLocked: m.debugLocked,
          fuseDigest: m.fuseDigest,
          configDigest: m.configDigest,
        },
    policy: p.policy,
    policyRef: { workOrder: p.policyRef.workOrder, sha256: p.policyRef.sha256 },
    verdict: {
      pass: p.verdict.pass,
      violations: p.verdict.violations.map((v) => ({
        rule: v.rule,
        expected: v.expected ?? null,
        actual: v.actual ?? null,
        message: v.message,
      })),
    },
    capturedAt: p.capturedAt,
  };
}

/** Sign a manifest: compact JWS over its canonical JSON, typ line-station-manifest+jws, x5c = station chain. */
export async function signManifest(
  signer: Signer,
  chain: readonly Uint8Array[],
  manifest: Manifest,
): Promise<Result<string>> {
  let payload: Uint8Array;
  try {
    payload = utf8(canonicalJson(manifest));
  } catch (e) {
    return fail('INTERNAL', `manifest is not plain JSON: ${(e as Error).message}`);
  }
  return signJws({ signer, payload, header: { typ: MANIFEST_TYP, x5c: chain } });
}

/** Verify a signed manifest against trust anchors (station PKI root) and its schema. INPUT_INVALID on failure. */
export async function verifyManifest(
  jws: string,
  trustAnchors: readonly Uint8Array[],
  clock: Clock,
): Promise<Result<Manifest>> {
  const v = await verifyJws(jws, { trustAnchors, clock, typ: MANIFEST_TYP });
  if (!v.ok) return v;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(v.value.payload));
  } catch {
    return fail('INPUT_INVALID', 'manifest payload is not JSON');
  }
  const m = ManifestSchema.safeParse(json);
  if (!m.success) return fail('INPUT_INVALID', `manifest: ${formatIssues(m.error.issues)}`);
  return ok(m.data);
}

/** Render zod issues as `path.to[0].field: message; ...`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${formatPath(i.path)}: ${i.message}`)
    .join('; ');
}

/** `['baseline','firmware','application',0]` -> `baseline.firmware.application[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s || '(root)';
}
