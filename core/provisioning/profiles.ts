/**
 * Board profiles: what the station knows about a board family, as data (resources/boards/*.json).
 *
 * A profile says how to recognise a board (USB VID/PID before identify; model + serial number pattern
 * after identify), how its device key comes to exist (keyMode, curve), what its device certificate
 * looks like, its timeouts, and which group may access it (udev). Profiles are parsed with a strict
 * schema: unknown keys are rejected, every error names the file and the field path.
 *
 * Pure: no file access here (see native/profiles-fs.ts).
 */
import { z } from 'zod';
import { fail, stationError, type StationError } from '../errors.js';
import { ok, type Result } from '../result.js';
import type { BoardIdentity } from '../model.js';
import {
  BoardProfileIdSchema,
  DeviceCertificateProfileSchema,
  type DeviceCertificateVars,
} from '../pki/device-cert.js';
import type { DetectedPort } from '../ports.js';
import { escapeControlChars } from '../display-text.js';

/** The board families the station can provision (core/boards/); a profile names one. */
export const DRIVER_IDS = ['ls', 'tpm2'] as const;
export type DriverId = (typeof DRIVER_IDS)[number];

export const BOARD_PROFILE_SCHEMA_ID = 'line-station/board-profile/v1';

/**
 * Placeholders allowed in certificate templates: exactly the variables core/pki/device-cert.ts
 * renders, so a profile that loads never fails at issuance on an unknown placeholder.
 */
export const TEMPLATE_VARIABLES = ['serialNumber', 'chipId', 'model', 'workOrder'] as const satisfies ReadonlyArray<
  keyof DeviceCertificateVars
>;
// compile-time check that the list is complete
const _allVars: Record<keyof DeviceCertificateVars, true> = {
  serialNumber: true,
  chipId: true,
  model: true,
  workOrder: true,
};
void _allVars;

/** Longest serial number a pattern is ever tested against (bounds regex work on board-supplied input). */
export const MAX_MATCHED_SERIAL_LENGTH = 128;

const PLACEHOLDER = /\{([^{}]*)\}/g;

const hasControlChars = (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

function templateProblem(s: string): string | null {
  if (hasControlChars(s)) return 'contains control characters';
  for (const m of s.matchAll(PLACEHOLDER)) {
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(m[1] ?? '')) {
      return `unknown placeholder {${m[1] ?? ''}} (allowed: ${TEMPLATE_VARIABLES.map((v) => `{${v}}`).join(', ')})`;
    }
  }
  if (/[{}]/.test(s.replace(PLACEHOLDER, ''))) return 'unbalanced { or }';
  return null;
}

const usbId = z
  .string()
  .regex(/^0x[0-9a-fA-F]{4}$/, 'must be a 16-bit hex id like "0x1209"')
  .transform((s) => parseInt(s.slice(2), 16));

const anchoredRegex = z
  .string()
  .min(2)
  .max(200)
  .superRefine((s, ctx) => {
    if (!s.startsWith('^') || !s.endsWith('$')) {
      ctx.addIssue({ code: 'custom', message: 'must be anchored: start with ^ and end with $' });
      return;
    }
    try {
      new RegExp(s, 'u');
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(e as Error).message}` });
    }
  });

const timeoutMs = z.number().int().min(100).max(600_000);

/**
 * EK types a TPM profile may name, each with its TCG EK template and the NV index of its EK certificate (TCG EK
 * Credential Profile 2.x, low range: L-1 RSA 2048 at 0x01c00002, L-2 ECC NIST P-256 at 0x01c0000a). docs/tpm.md.
 */
export const TPM_EK_TYPES = ['rsa-2048', 'ecc-p256'] as const;
export type TpmEkType = (typeof TPM_EK_TYPES)[number];

/** A TPM handle written as "0x" + 8 hex digits, within [lo, hi]; parsed to a number. */
const tpmHandle = (lo: number, hi: number, what: string) =>
  z
    .string()
    .regex(/^0x[0-9a-fA-F]{8}$/, `must be a TPM handle like "0x${lo.toString(16).padStart(8, '0')}"`)
    .transform((s) => parseInt(s.slice(2), 16))
    .refine(
      (n) => n >= lo && n <= hi,
      `must be ${what} (0x${lo.toString(16).padStart(8, '0')}..0x${hi.toString(16).padStart(8, '0')})`,
    );

/**
 * The `tpm` block of a tpm2 profile: which EK the board's TPM has, which PCRs the baseline quotes, where the device
 * certificate goes and where the keys persist (docs/tpm.md "Profile").
 */
export const TpmProfileSchema = z.strictObject({
  ekType: z.enum(TPM_EK_TYPES),
  pcrBank: z.enum(['sha1', 'sha256', 'sha384']),
  /** PCR indices the baseline quotes, ascending, unique. */
  pcrSelection: z
    .array(z.number().int().min(0).max(23))
    .min(1)
    .max(24)
    .refine((a) => a.every((v, i) => i === 0 || v > a[i - 1]!), 'must be ascending without duplicates'),
  /** NV index for the device certificate: the owner range of the TCG handle registry. */
  certificateNvIndex: tpmHandle(0x01000000, 0x013fffff, 'an owner NV index'),
  /** Storage/endorsement persistent handles in the owner range. */
  persistentHandles: z.strictObject({
    /** The storage primary key (SRK) the IDevID is created under. */
    srk: tpmHandle(0x81000000, 0x8100ffff, 'a storage primary key handle'),
    /** The device identity key (IDevID). */
    idevid: tpmHandle(0x81000000, 0x817fffff, 'an owner persistent handle'),
  }),
});
export type TpmProfile = z.output<typeof TpmProfileSchema>;

/** The strict schema of a board profile file (`line-station/board-profile/v1`). */
export const BoardProfileSchema = z
  .strictObject({
    schema: z.literal(BOARD_PROFILE_SCHEMA_ID),
    id: BoardProfileIdSchema,
    name: z.string().min(1).max(200),
    description: z.string().max(2000).optional(),
    /** An illustrative profile for a real board family, not used on a production line as is. */
    example: z.boolean().optional(),
    match: z.strictObject({
      usb: z.array(z.strictObject({ vendorId: usbId, productId: usbId })).max(32),
      models: z
        .array(z.string().min(1).max(64))
        .min(1)
        .max(32)
        .refine((a) => new Set(a).size === a.length, 'models must be unique'),
      serialNumberPattern: anchoredRegex,
    }),
    /**
     * The board family's driver (core/boards/): `ls` speaks the Line Station protocol end to end (docs/protocol.md);
     * `tpm2` is a board whose hardware root is a TPM 2.0 reached through the board's TPM relay. Default `ls`.
     */
    driver: z.enum(DRIVER_IDS).default('ls'),
    /** Required with driver tpm2, refused otherwise (docs/tpm.md "Profile"). */
    tpm: TpmProfileSchema.optional(),
    keyMode: z.enum(['onboard', 'injected']),
    curve: z.enum(['P-256', 'P-384']),
    /**
     * Attestation (docs/protocol.md §4): boards must speak protocol 2 (key-bound statements). `allowLegacyV1: true`
     * lets a protocol 1 board be attested with the legacy message (nonce and chip id only; no key or measurements
     * bound, so a relay on the line is not detected); its record says `mode: "legacy-v1"`. Default false.
     */
    attestation: z.strictObject({ allowLegacyV1: z.boolean() }).optional(),
    // The certificate block is the one core/pki/device-cert.ts issues from (strict), plus load-time
    // checks of its templates (placeholders, braces, control characters) so mistakes surface early.
    certificate: DeviceCertificateProfileSchema.superRefine((c, ctx) => {
      const templates: Array<[PropertyKey[], string | undefined]> = [
        [['subject', 'commonName'], c.subject.commonName],
        [['subject', 'organization'], c.subject.organization],
        [['subject', 'serialNumber'], c.subject.serialNumber],
        [['sanUri'], c.sanUri],
      ];
      for (const [path, t] of templates) {
        if (t === undefined) continue;
        const p = templateProblem(t);
        if (p) ctx.addIssue({ code: 'custom', path, message: p });
      }
      if (c.sanUri !== undefined && !/^[a-z][a-z0-9+.-]*:/.test(c.sanUri)) {
        ctx.addIssue({ code: 'custom', path: ['sanUri'], message: 'must be a URI with a scheme, e.g. urn:...' });
      }
    }),
    timeouts: z.strictObject({ defaultMs: timeoutMs, keygenMs: timeoutMs, flashMs: timeoutMs }),
    udev: z.strictObject({
      // Goes into a udev rules file: keep it to a plain POSIX group name.
      group: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a plain POSIX group name'),
    }),
  })
  .superRefine((p, ctx) => {
    if (p.driver !== 'tpm2') {
      if (p.tpm) ctx.addIssue({ code: 'custom', path: ['tpm'], message: 'only a tpm2 profile has a tpm block' });
      return;
    }
    if (!p.tpm) ctx.addIssue({ code: 'custom', path: ['tpm'], message: 'a tpm2 profile needs a tpm block' });
    // The TPM makes the IDevID itself: an ECC P-256 key generated in the TPM (docs/tpm.md).
    if (p.keyMode !== 'onboard')
      ctx.addIssue({ code: 'custom', path: ['keyMode'], message: 'a tpm2 profile generates its key on board' });
    if (p.curve !== 'P-256') ctx.addIssue({ code: 'custom', path: ['curve'], message: 'a tpm2 profile uses P-256' });
    if (p.tpm && p.tpm.persistentHandles.srk === p.tpm.persistentHandles.idevid)
      ctx.addIssue({
        code: 'custom',
        path: ['tpm', 'persistentHandles'],
        message: 'the SRK and the IDevID need different handles',
      });
  });

/**
 * JSON Schema (2020-12) of a profile file, for editors and external tooling. It cannot express
 * everything the zod schema checks (template placeholders, anchored and valid regexes): the zod
 * schema is authoritative. Committed as resources/boards/schema/board-profile.v1.schema.json.
 */
export function boardProfileJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(BoardProfileSchema, { io: 'input' }),
    $id: 'https://line-station.dev/schemas/board-profile/v1.json',
    title: 'Line Station board profile (line-station/board-profile/v1)',
  };
}

/** A parsed board profile (USB ids as numbers). */
export type BoardProfile = z.output<typeof BoardProfileSchema>;
/** A board profile as written in JSON (USB ids as "0x1209" strings). */
export type BoardProfileJson = z.input<typeof BoardProfileSchema>;

function issuePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

/** Parse and validate one board profile; errors are INPUT_INVALID naming the source and the bad field path. */
export function parseBoardProfile(json: unknown, source: string): Result<BoardProfile> {
  const r = BoardProfileSchema.safeParse(json);
  if (r.success) return ok(r.data);
  const issues = r.error.issues.map((i) => ({ path: issuePath(i.path), message: i.message }));
  const first = issues[0] ?? { path: '(root)', message: 'invalid' };
  return fail('INPUT_INVALID', `board profile ${source}: ${first.path}: ${first.message}`, {
    source,
    path: first.path,
    issues,
  });
}

/**
 * Parse a set of board profiles (file reading is the caller's job). Fails on the first invalid
 * profile and on duplicate ids (naming both sources). Result is sorted by id.
 */
export function loadProfiles(entries: ReadonlyArray<{ source: string; json: unknown }>): Result<BoardProfile[]> {
  const seen = new Map<string, string>();
  const out: BoardProfile[] = [];
  for (const e of entries) {
    const r = parseBoardProfile(e.json, e.source);
    if (!r.ok) return r;
    const prev = seen.get(r.value.id);
    if (prev !== undefined) {
      return fail('INPUT_INVALID', `duplicate board profile id "${r.value.id}" in ${prev} and ${e.source}`, {
        path: 'id',
        id: r.value.id,
        sources: [prev, e.source],
      });
    }
    seen.set(r.value.id, e.source);
    out.push(r.value);
  }
  out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return ok(out);
}

/** Format a USB id as 4 lower-case hex digits (udev and lsusb style). */
export const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

// ---------------------------------------------------------------- matching

export type ProfileMatch =
  | { readonly profile: BoardProfile; readonly by: 'usb' | 'identify' }
  | {
      readonly profile: null;
      readonly reason: string;
      readonly candidates: string[];
      /** The model is a profile's, the serial number does not match that profile's pattern (BOARD_IDENTITY_INVALID). */
      readonly serialMismatch?: true;
    };

function usbMatches(p: BoardProfile, vendorId: number, productId: number): boolean {
  return p.match.usb.some((u) => u.vendorId === vendorId && u.productId === productId);
}

/** Whether `serialNumber` matches the profile's pattern (input longer than MAX_MATCHED_SERIAL_LENGTH never matches). */
export function serialMatches(p: BoardProfile, serialNumber: string): boolean {
  if (serialNumber.length > MAX_MATCHED_SERIAL_LENGTH) return false;
  return new RegExp(p.match.serialNumberPattern, 'u').test(serialNumber);
}

const ids = (ps: readonly BoardProfile[]): string[] => ps.map((p) => p.id);
/** Board-chosen text quoted for a message: bounded, control and bidi characters visible (core/display-text.ts). */
const quoted = (s: string): string => escapeControlChars(JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s));

/**
 * Find the profile for a board.
 *
 * - Before identify (`identity` absent): the port's USB VID/PID selects the profiles that list it in
 *   `match.usb`. One → `{ by: 'usb' }`; none or several → no match (identify is needed).
 * - After identify: a profile matches when `identity.model` is in `match.models` AND
 *   `identity.serialNumber` matches `match.serialNumberPattern`. If several match, the USB VID/PID
 *   narrows them (when it singles one out); if still several → explicit no-match listing them.
 * - A USB VID/PID that belongs to other profiles than the one the identify response matches is a
 *   contradiction, reported as no-match (both sides in `candidates`), never silently accepted.
 *   A USB id no profile knows (e.g. a USB-UART cable) contradicts nothing.
 */
export function matchProfile(
  profiles: readonly BoardProfile[],
  input: { port?: DetectedPort; identity?: BoardIdentity },
): ProfileMatch {
  const usb = input.port?.usb;
  const byUsb = usb ? profiles.filter((p) => usbMatches(p, usb.vendorId, usb.productId)) : [];
  const usbLabel = usb ? `${hex4(usb.vendorId)}:${hex4(usb.productId)}` : '';

  if (!input.identity) {
    if (!usb)
      return {
        profile: null,
        reason: 'no USB descriptor for this port; identify the board',
        candidates: ids(profiles),
      };
    const [only, ...rest] = byUsb;
    if (only && rest.length === 0) return { profile: only, by: 'usb' };
    if (!only) return { profile: null, reason: `no profile lists USB ${usbLabel}; identify the board`, candidates: [] };
    return {
      profile: null,
      reason: `USB ${usbLabel} is listed by several profiles (ambiguous)`,
      candidates: ids(byUsb),
    };
  }

  const { model, serialNumber } = input.identity;
  const byModel = profiles.filter((p) => p.match.models.includes(model));
  const byIdentity = byModel.filter((p) => serialMatches(p, serialNumber));

  if (byIdentity.length === 0) {
    if (byModel.length > 0) {
      return {
        profile: null,
        reason: `model ${quoted(model)} is in profile(s) ${ids(byModel).join(', ')} but serial number ${quoted(serialNumber)} does not match their pattern`,
        candidates: ids(byModel),
        serialMismatch: true,
      };
    }
    const usbNote = byUsb.length > 0 ? ` (USB ${usbLabel} suggested ${ids(byUsb).join(', ')})` : '';
    return { profile: null, reason: `no profile lists model ${quoted(model)}${usbNote}`, candidates: ids(byUsb) };
  }

  let chosen = byIdentity;
  if (chosen.length > 1 && byUsb.length > 0) {
    const narrowed = chosen.filter((p) => byUsb.includes(p));
    if (narrowed.length > 0) chosen = narrowed;
  }
  const [profile, ...others] = chosen;
  if (!profile) throw new Error('unreachable: empty candidate list');
  if (others.length > 0) {
    return {
      profile: null,
      reason: `model ${quoted(model)} with serial ${quoted(serialNumber)} matches several profiles (ambiguous)`,
      candidates: ids(chosen),
    };
  }
  if (byUsb.length > 0 && !byUsb.includes(profile)) {
    return {
      profile: null,
      reason: `USB ${usbLabel} belongs to ${ids(byUsb).join(', ')} but the board identifies as ${quoted(model)} (profile ${profile.id}): contradiction`,
      candidates: [...ids(byUsb), profile.id],
    };
  }
  return { profile, by: 'identify' };
}

// ---------------------------------------------------------------- board-chosen identity text

/**
 * Longest model, hardware revision and firmware version a board may report (a profile's models are at most 64
 * characters; the serial number is bounded by MAX_MATCHED_SERIAL_LENGTH and the profile's pattern).
 */
export const MAX_IDENTITY_TEXT_LENGTH = 64;
/** What a board may put in its identity strings: printable ASCII (U+0020–U+007E), nothing a terminal interprets. */
const IDENTITY_TEXT = /^[\x20-\x7e]*$/;

/**
 * Check the strings a board chose in its identify answer before anything is written or matched: serial number,
 * model, hardware revision and firmware version are printable ASCII and bounded (the wire protocol already refuses
 * C0 controls; this also refuses C1 controls, bidi overrides and any other non-ASCII). The serial number is then
 * matched against the profile pattern (matchProfile, `serialMismatch`). BOARD_IDENTITY_INVALID, naming the field
 * with its value escaped for display (core/display-text.ts).
 */
export function checkIdentityText(identity: BoardIdentity): StationError | null {
  const fields: Array<[string, string, number, number]> = [
    ['serialNumber', identity.serialNumber, 1, MAX_MATCHED_SERIAL_LENGTH],
    ['model', identity.model, 1, MAX_IDENTITY_TEXT_LENGTH],
    ['hardwareRevision', identity.hardwareRevision, 0, MAX_IDENTITY_TEXT_LENGTH],
    ['firmwareVersion', identity.firmwareVersion, 1, MAX_IDENTITY_TEXT_LENGTH],
  ];
  for (const [field, value, min, max] of fields) {
    const problem =
      value.length < min || value.length > max
        ? `${min} to ${max} characters expected, got ${value.length}`
        : IDENTITY_TEXT.test(value)
          ? null
          : 'only printable ASCII is allowed';
    if (problem)
      return stationError('BOARD_IDENTITY_INVALID', `the board reported ${field} ${quoted(value)}: ${problem}`, {
        field,
        chipId: identity.chipId,
      });
  }
  return null;
}

// ---------------------------------------------------------------- udev

/**
 * Render udev rules giving each profile's `udev.group` access to its USB VID/PIDs (raw USB node
 * and tty). Deterministic: same profiles, same bytes (resources/udev/70-line-station.rules).
 */
export function renderUdevRules(profiles: readonly BoardProfile[]): string {
  const lines = [
    '# Line Station: access to provisioning boards for the station operator group.',
    '# GENERATED by scripts/gen-udev.ts from resources/boards/*.json. Do not edit; run `npx tsx scripts/gen-udev.ts`.',
    '# Install: sudo cp 70-line-station.rules /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger',
    '',
  ];
  const done = new Set<string>();
  for (const p of [...profiles].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (p.match.usb.length === 0) continue;
    lines.push(`# ${p.id}: ${p.name.replace(/[\r\n]/g, ' ')}`);
    for (const u of p.match.usb) {
      const vid = hex4(u.vendorId);
      const pid = hex4(u.productId);
      const key = `${vid}:${pid}:${p.udev.group}`;
      if (done.has(key)) {
        lines.push(`# ${vid}:${pid} already covered above`);
        continue;
      }
      done.add(key);
      const perm = `MODE="0660", GROUP="${p.udev.group}", TAG+="uaccess"`;
      lines.push(`SUBSYSTEM=="usb", ATTR{idVendor}=="${vid}", ATTR{idProduct}=="${pid}", ${perm}`);
      lines.push(`SUBSYSTEM=="tty", ATTRS{idVendor}=="${vid}", ATTRS{idProduct}=="${pid}", ${perm}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
