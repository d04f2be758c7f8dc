/**
 * How the `registry` command line prints a refusal (`error CODE: message`, for the lifecycle commands with a line
 * saying what to do) and which outcome it is: not ready (configuration, HSM, database), internal (a bug) or refused.
 * Imports core/ and registry/cli/command.ts.
 */
import { flagOn, type ParsedArgs } from '../../core/cli/program.js';
import type { StationError } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { printJson, TOKEN_ENV, type Outcome, type Out } from './command.js';

/** A registry service refusal (ApiError) or one the command line makes itself. */
export interface Refusal {
  readonly code: string;
  readonly message: string;
}

/** A StationError (data dir, configuration, HSM, input files): CONFIG_*, HSM_* and STORE_FAILED are "not ready". */
export function reportError(out: Out, e: StationError): Outcome {
  out.err(`error ${e.code}: ${e.message}`);
  if (e.code.startsWith('CONFIG_') || e.code.startsWith('HSM_') || e.code === 'STORE_FAILED') return 'notReady';
  return e.kind === 'bug' ? 'internal' : 'refused';
}

/** A registry service refusal: the database unreachable or no HSM is "not ready", INTERNAL a bug. */
export function reportApi(out: Out, e: Refusal): Outcome {
  out.err(`error ${e.code}: ${e.message}`);
  return outcomeOf(e);
}

/** A lifecycle refusal, with a line saying what to do about it when there is one. */
export function reportGuided(out: Out, e: Refusal): Outcome {
  out.err(`error ${e.code}: ${e.message}`);
  const hint = guidance(e);
  if (hint) out.err(`  ${hint}`);
  return outcomeOf(e);
}

/**
 * A service's answer: its refusal (printed by `report`: reportApi or reportGuided), or its value as JSON (`--json`)
 * or as `human` prints it.
 */
export function answer<T>(
  a: ParsedArgs,
  out: Out,
  r: Result<T, Refusal>,
  report: (out: Out, e: Refusal) => Outcome,
  human: (value: T) => void,
): Outcome {
  if (!r.ok) return report(out, r.error);
  if (flagOn(a, 'json')) printJson(out, r.value);
  else human(r.value);
  return 'ok';
}

function outcomeOf(e: Refusal): Outcome {
  if (e.code === 'STORE_UNAVAILABLE') return 'notReady';
  if (e.code === 'INTERNAL') return /no HSM/.test(e.message) ? 'notReady' : 'internal';
  return 'refused';
}

/** A hint telling the operator what to do about a refusal. */
function guidance(e: Refusal): string | null {
  switch (e.code) {
    case 'AUTH_REQUIRED':
      return `give the security officer token with --token-file FILE or $${TOKEN_ENV}, or act as admin (no --as)`;
    case 'BODY_INVALID':
      if (/rotateBeforeSeconds/.test(e.message))
        return '--rotate-before must be shorter than the certificate lifetime ("registry policy show" shows it)';
      return null;
    case 'LIFECYCLE_TRANSITION_INVALID':
    case 'AUTH_FORBIDDEN':
      if (/needs the admin token/.test(e.message)) return 'only the admin may do this: run it without --as';
      if (/token/.test(e.message))
        return 'the security officer token is the file config.json "securityOfficerToken" names (default secrets/security-officer.token)';
      return '"registry history SERIAL" shows the current state; the allowed transitions are in docs/lifecycle.md';
    case 'NOT_FOUND':
      if (/no revocation signer/.test(e.message))
        return 'the station certifies the registry signer at enrolment: station enroll --registry URL --registry-cert registry.pem --revocation-signer';
      if (/not enrolled/.test(e.message)) return 'enrol the station first: registry enroll-station --id S --chain F';
      if (/no device/.test(e.message))
        return 'a device is known once its records are ingested (station sync, or registry import FILE)';
      if (/not blocked/.test(e.message)) return 'nothing to release: "registry history SERIAL" shows its state';
      return null;
    case 'STORE_UNAVAILABLE':
      return 'check the database (--db, config.json) and that it is reachable';
    default:
      return null;
  }
}
