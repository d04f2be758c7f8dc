/**
 * The `station` command line: one declarative program (core/cli/program.ts). The name, summary, common options and
 * exit codes are here; each command lives beside it in station/cli/ with its own options, help and handler:
 * init.ts, commission.ts, provision.ts, watch.ts, scrap.ts, records.ts (records, verify-log), label.ts, report.ts (report log|yield), operators.ts
 * (operator add|revoke), serve.ts, enroll.ts, policy.ts, sync.ts (sync, export, import-receipt), rotate-key.ts,
 * doctor.ts; what they share in context.ts (data dir, logger, engine), exit.ts (exit codes, error -> exit code),
 * sign-in.ts and pin-input.ts. `station --help`, `station help <command>` and `station <command> --help` print usage
 * and exit 0. bin/station.mjs runs `main`.
 * Imports core/, native/ and the command modules beside it; nothing else in station/ imports this folder (no cycle).
 */
import { runProgram, type Io, type Program } from '../../core/cli/program.js';
import { escapeControlChars } from '../../core/display-text.js';
import { restrictUmask } from '../../native/data-dir.js';
import { COMMON_OPTIONS, type StationCtx } from './context.js';
import { commissionCommand } from './commission.js';
import { doctorCommand } from './doctor.js';
import { enrollCommand } from './enroll.js';
import { STATION_EXIT } from './exit.js';
import { initCommand } from './init.js';
import { labelCommand } from './label.js';
import { operatorAddCommand, operatorRevokeCommand } from './operators.js';
import { policyCommand } from './policy.js';
import { provisionCommand } from './provision.js';
import { recordsCommand, verifyLogCommand } from './records.js';
import { reportLogCommand, reportYieldCommand } from './report.js';
import { rotateKeyCommand } from './rotate-key.js';
import { scrapCommand } from './scrap.js';
import { serveCommand } from './serve.js';
import { exportCommand, importReceiptCommand, syncCommand } from './sync.js';
import { watchCommand } from './watch.js';

/** The exit codes (defined in station/cli/exit.ts), for callers of `main`. */
export { EXIT, STATION_EXIT } from './exit.js';

/** The `station` program: every command, its options and help, and the exit codes. */
export const stationProgram: Program<StationCtx, keyof typeof STATION_EXIT> = {
  name: 'station',
  summary: 'Line Station: give each board a hardware-bound identity, keep its signed record, sync it to headquarters.',
  common: COMMON_OPTIONS,
  exit: STATION_EXIT,
  commands: [
    initCommand,
    commissionCommand,
    provisionCommand,
    watchCommand,
    scrapCommand,
    recordsCommand,
    labelCommand,
    verifyLogCommand,
    reportLogCommand,
    reportYieldCommand,
    operatorAddCommand,
    operatorRevokeCommand,
    serveCommand,
    enrollCommand,
    policyCommand,
    syncCommand,
    exportCommand,
    importReceiptCommand,
    rotateKeyCommand,
    doctorCommand,
  ],
};

const stdio: Io = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
  drain: () =>
    process.stdout.writableNeedDrain
      ? new Promise<void>((resolve) => {
          // 'close' too: a reader that went away (`| head`) never drains.
          const done = () => {
            process.stdout.off('drain', done).off('close', done).off('error', done);
            resolve();
          };
          process.stdout.once('drain', done).once('close', done).once('error', done);
        })
      : Promise.resolve(),
};

/**
 * Everything the CLI prints goes through core/display-text.ts: control and bidi characters in text a board (or a
 * file, or the registry) chose show as `\uXXXX` and cannot steer the terminal. The CLI's own line breaks stay; JSON
 * output stays valid JSON with the same values.
 */
function escapedOut(o: Io): Io {
  return {
    out: (s) => o.out(escapeControlChars(s, { keepLineBreaks: true })),
    err: (s) => o.err(escapeControlChars(s, { keepLineBreaks: true })),
    ...(o.drain ? { drain: o.drain } : {}),
  };
}

/** Run the CLI; returns the exit code (does not call process.exit). */
export async function main(argv: string[], out: Io = stdio): Promise<number> {
  // Private files from the first write (docs/architecture.md "Data directory permissions").
  restrictUmask();
  const io = escapedOut(out);
  return runProgram(stationProgram, argv, { io }, io);
}
