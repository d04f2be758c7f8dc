/**
 * The `station` exit codes, defined once with their meanings (`station --help` prints them), and the one mapping from
 * a coded station error to an exit code and to the lines the CLI prints for it. Imports core/ only.
 */
import { exitCodes, type ExitCode, type Io } from '../../core/cli/program.js';
import { isIdentityLost } from '../../core/boards/lifecycle.js';
import type { StationError } from '../../core/errors.js';

/** Every exit code of `station`, with what it means. */
export const STATION_EXIT = {
  ok: { code: 0, meaning: 'success' },
  boardFailed: { code: 1, meaning: 'a board failed or was refused, or the sign-in was refused (operator-level)' },
  usage: { code: 2, meaning: 'usage error' },
  notReady: { code: 3, meaning: 'station not ready (configuration, HSM, database; STATION_BUSY)' },
  verifyFailed: { code: 4, meaning: 'audit trail or record verification failed' },
  checkFailed: { code: 5, meaning: 'station doctor: at least one check failed (each says what to do)' },
  identityLost: {
    code: 6,
    meaning: 'a board lost the identity it got here (BOARD_CERT_MISSING): set it aside or a supervisor re-provisions',
  },
  internal: { code: 70, meaning: 'internal error (a bug: see the log)' },
} as const satisfies Readonly<Record<string, ExitCode>>;

/** The exit codes by name, as numbers (`EXIT.notReady` is 3). */
export const EXIT = exitCodes(STATION_EXIT);

/** A coded error as the CLI prints it: code, message, and the next step. */
export function describeError(e: StationError): string {
  return `${e.code}: ${e.message}\n  -> ${e.guidance}`;
}

/** The exit code of a command that failed with `e`. */
export function exitFor(e: StationError): number {
  if (e.kind === 'bug') return EXIT.internal;
  // A station revoked by headquarters is not ready to provision anything (docs/lifecycle.md "Policy"); a data dir
  // another process uses (a key rotation, or an engine while rotating) cannot run now (STATION_BUSY).
  // A registry URL the transport policy refuses (config.json edited by hand) is configuration too.
  if (
    /^(CONFIG_|HSM_|STORE_)/.test(e.code) ||
    e.code === 'FLOW_STATION_REVOKED' ||
    e.code === 'STATION_BUSY' ||
    e.code === 'SYNC_INSECURE_URL'
  )
    return EXIT.notReady;
  // Not a failed run: the board lost the identity this station gave it (core/boards/lifecycle.ts `identity-lost`).
  if (isIdentityLost(e.code)) return EXIT.identityLost;
  return EXIT.boardFailed;
}

/** The exit code when the station cannot start a long-running service (`station serve`): a bug, or not ready. */
export function notReadyExit(e: StationError): number {
  return e.kind === 'bug' ? EXIT.internal : EXIT.notReady;
}

/** Print `e` on stderr and answer its exit code (the common end of a command that failed). */
export function reportError(io: Io, e: StationError): number {
  io.err(describeError(e));
  return exitFor(e);
}
