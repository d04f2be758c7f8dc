/**
 * `station report log` and `station report yield`: the supervisor's CSV reports (station/reports.ts) for a time range
 * of run starts, to stdout (streamed page by page) or to a private file (--out, 0600, written whole or not at all).
 * The same rows the UI's Log and Yield views show and export. Imports core/, native/, station/ (engine, reports)
 * and sibling command modules.
 */
import { str, UsageError, type Io, type OptionSpec, type ParsedArgs } from '../../core/cli/program.js';
import type { LogOutcome } from '../../native/store/queries.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import type { Engine } from '../engine.js';
import { writeLogReport, yieldReport } from '../reports.js';
import { engineCommand, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor } from './exit.js';

const RANGE_OPTIONS = {
  from: {
    type: 'string',
    arg: 'TIME',
    help: 'runs started at or after TIME (ISO 8601: 2026-12-01, 2026-12-01T06:00Z)',
  },
  to: { type: 'string', arg: 'TIME', help: 'runs started at or before TIME' },
  'work-order': { type: 'string', arg: 'W', help: 'only work order W' },
  out: { type: 'string', arg: 'FILE', help: 'write the CSV to FILE (mode 0600) instead of stdout' },
} as const satisfies Record<string, OptionSpec>;

const OUTCOMES: readonly LogOutcome[] = ['provisioned', 'failed', 'in-progress', 'refused'];

/** A time option as an ISO 8601 UTC timestamp, or a UsageError naming it. */
function timeOption(args: ParsedArgs, name: string): string | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--${name} expects an ISO 8601 date or time, got "${v}"`);
  return new Date(t).toISOString();
}

function rangeOf(args: ParsedArgs): { from?: string; to?: string; workOrder?: string } {
  const from = timeOption(args, 'from');
  const to = timeOption(args, 'to');
  if (from && to && from > to) throw new UsageError('--from is after --to');
  const wo = str(args, 'work-order');
  return { ...(from ? { from } : {}), ...(to ? { to } : {}), ...(wo ? { workOrder: wo } : {}) };
}

/** Print the report, or write it to --out whole (a failed report leaves no file). */
function emit(args: ParsedArgs, o: Io, content: string): number {
  const file = str(args, 'out');
  if (file) writeFileAtomic(file, content);
  else for (const line of content.split('\n').slice(0, -1)) o.out(line);
  return EXIT.ok;
}

async function cmdLog(engine: Engine, args: ParsedArgs, o: Io): Promise<number> {
  const outcome = str(args, 'outcome');
  if (outcome !== undefined && !OUTCOMES.includes(outcome as LogOutcome))
    throw new UsageError(`--outcome expects one of ${OUTCOMES.join(', ')}`);
  const operator = str(args, 'operator');
  const filter = {
    ...rangeOf(args),
    ...(operator ? { operator } : {}),
    ...(outcome ? { outcome: outcome as LogOutcome } : {}),
  };
  const toFile = str(args, 'out') !== undefined;
  const lines: string[] = [];
  // To stdout the lines stream page by page; for a file they are kept until the report is complete.
  const out = toFile ? (l: string) => lines.push(l) : (l: string) => o.out(l.slice(0, -1));
  const r = await writeLogReport(engine.db.queries, filter, out, o.drain ? { pause: o.drain } : {});
  if (!r.ok) {
    o.err(describeError(r.error));
    return exitFor(r.error);
  }
  if (toFile) emit(args, o, lines.join(''));
  o.err(`${r.value.rows} lines`);
  return EXIT.ok;
}

/** `station report log`. */
export const reportLogCommand: StationCommand = {
  name: 'report log',
  summary: 'the provisioning log as CSV (one line per run or refused board, newest first) for a time range',
  details:
    'RFC 4180 CSV with LF line ends. Columns: startedAt, updatedAt, serialNumber,\n' +
    'chipId, workOrder, operator, kind, outcome, step, errorCode, durationMs, recordId, syncState, runId, attempts.\n' +
    'A board refused before a run (outcome refused) has its refusal id as runId and in attempts the refused\n' +
    "attempts it stands for. Text a spreadsheet would run as a formula is prefixed with '. At most 200,000 lines\n" +
    'per report (narrow the range).',
  options: {
    ...RANGE_OPTIONS,
    operator: { type: 'string', arg: 'ID', help: 'only runs of operator ID' },
    outcome: {
      type: 'string',
      arg: 'provisioned|failed|in-progress|refused',
      help: 'only runs with this outcome (refused: the boards refused before a run)',
    },
  },
  run: engineCommand((engine, args, o) => cmdLog(engine, args, o)),
};

/** `station report yield`. */
export const reportYieldCommand: StationCommand = {
  name: 'report yield',
  summary: 'the yield per work order as CSV (and one line "(all)") for a time range',
  details:
    'Columns: workOrder, boards, passedFirstTime, firstPassYield, provisioned, failed, topFailure, cycleTimeP50Ms,\n' +
    'cycleTimeP95Ms, refused: the figures of the Yield view for each work order with runs or refusals in the range\n' +
    '(boards counts refused boards; failed and topFailure count refusals by their code).',
  options: RANGE_OPTIONS,
  run: engineCommand((engine, args, o) => emit(args, o, yieldReport(engine.db.queries, rangeOf(args)))),
};
