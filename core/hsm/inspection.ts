/**
 * The token inspection report (`inspectToken` in native/hsm/inspect.ts fills it; `station doctor` and the UI's
 * HSM view show it). Plain data, JSON-serialisable, never a PIN or a key value. Each step has a status; a step
 * that could not run because an earlier one failed is `skip`. docs/hsm.md "Inspection".
 */
import type { ErrorCode } from '../errors.js';
import type { MechanismCheck, RequirementCheck } from './requirements.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** A failure inside the report: the station error code (guidance in core/errors.ts) and a message. */
export interface ReportError {
  readonly code: ErrorCode;
  readonly message: string;
}

/** The protection attributes of one of the station's private keys, as the token reports them. */
export interface KeyProtection {
  /** The key's role for the station (e.g. `issuingCa`, `station`), as the caller named it. */
  readonly role: string;
  readonly label: string;
  readonly status: CheckStatus;
  readonly found: boolean;
  readonly keyType?: string;
  /** Attribute values; absent when the token did not report the attribute. */
  readonly sensitive?: boolean;
  readonly extractable?: boolean;
  readonly alwaysSensitive?: boolean;
  readonly neverExtractable?: boolean;
  /** What the key lacks (`CKA_EXTRACTABLE true`, `CKA_ALWAYS_SENSITIVE unknown`, …); empty when protected. */
  readonly unprotected: readonly string[];
  readonly error?: ReportError;
}

export interface TokenReport {
  readonly schema: 'line-station/token-report/v1';
  /** The token profile used (resources/tokens/<id>.json), or null when none matches the module. */
  readonly profile: { readonly id: string; readonly name: string } | null;
  readonly module: {
    readonly status: CheckStatus;
    readonly path: string;
    /** CK_INFO of the module. */
    readonly library?: { readonly manufacturer: string; readonly description: string; readonly version: string };
    readonly error?: ReportError;
  };
  readonly token: {
    readonly status: CheckStatus;
    readonly label: string;
    readonly slotId?: string;
    readonly serial?: string;
    readonly manufacturer?: string;
    readonly model?: string;
    /** CK_TOKEN_INFO PIN flags (the token's own view; a token that never locks may still set countLow). */
    readonly pin?: {
      readonly initialized: boolean;
      readonly countLow: boolean;
      readonly finalTry: boolean;
      readonly locked: boolean;
    };
    /** Labels of every token present (helps when the label is wrong). */
    readonly tokensPresent: readonly string[];
    readonly error?: ReportError;
  };
  readonly login: { readonly status: CheckStatus; readonly error?: ReportError };
  /** The station's mechanisms on the token (C_GetMechanismList / C_GetMechanismInfo; needs no login). */
  readonly mechanisms: {
    readonly status: CheckStatus;
    readonly listed: number;
    readonly checks: readonly MechanismCheck[];
  };
  /** Each station requirement: satisfied, or what the token lacks (HSM_TOKEN_LACKS_MECHANISM message). */
  readonly requirements: readonly RequirementCheck[];
  /**
   * Does the token enforce non-extractability (from the token profile; null: no profile, unknown)? NSS softoken
   * reports the attributes but still wraps and copies such keys: `warn`.
   */
  readonly keyProtectionEnforced: {
    readonly status: CheckStatus;
    readonly enforced: boolean | null;
    readonly note: string;
  };
  /** The keys asked for (needs login), in the order asked. */
  readonly keys: readonly KeyProtection[];
  /** Worst status over every step (pass < warn < fail; a step is skipped only after a failed one). */
  readonly status: CheckStatus;
}

const RANK: Record<CheckStatus, number> = { pass: 0, skip: 1, warn: 1, fail: 2 };

/** The worst of some statuses (`pass` for none); `skip` ranks as `warn`. */
export function worstStatus(statuses: readonly CheckStatus[]): CheckStatus {
  let worst: CheckStatus = 'pass';
  for (const s of statuses) if (RANK[s] > RANK[worst] || (RANK[s] === RANK[worst] && s === 'warn')) worst = s;
  return worst;
}
