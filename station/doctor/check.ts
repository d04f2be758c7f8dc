/**
 * Building one doctor check result (core/api.ts DoctorCheck): status, a one-line finding, the action when it does
 * not pass, details. Imports core/ only.
 */
import type { DoctorCheck, DoctorCheckId, DoctorStatus } from '../../core/api.js';

/** A check result; `action` and `details` are left out when undefined. */
export function check(
  id: DoctorCheckId,
  status: DoctorStatus,
  summary: string,
  action?: string,
  details?: Record<string, unknown>,
): DoctorCheck {
  return { id, status, summary, ...(action !== undefined ? { action } : {}), ...(details ? { details } : {}) };
}

/** A check that could not run because another one did not pass (named in the summary). */
export function skipped(id: DoctorCheckId, why: string): DoctorCheck {
  return check(id, 'skipped', why);
}

/**
 * The finding and the fix of a CONFIG_INSECURE_PERMISSIONS message (native/data-dir.ts words them
 * `<what>; fix: <command>`).
 */
export function splitFix(message: string): { finding: string; fix: string | undefined } {
  const i = message.indexOf('; fix: ');
  return i < 0 ? { finding: message, fix: undefined } : { finding: message.slice(0, i), fix: message.slice(i + 7) };
}

/** A duration for people: 45 s, 12 min, 5 h, 3 d. */
export function ageText(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
