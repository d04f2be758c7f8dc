/**
 * What every `station` command shares: its context (the output sinks, already escaped), the common options, the
 * data dir (--data-dir, else $LINE_STATION_DATA_DIR, else ./.data/station) refused when others can read or write it,
 * the log file, the engine opened for one command and closed after it, and reading a file named on the command
 * line. Imports core/, native/ and station/ (config, engine); no command module.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { flagOn, str, type Command, type Io, type OptionTable, type ParsedArgs } from '../../core/cli/program.js';
import type { Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { createLogger, type SinkOptions } from '../../native/logger.js';
import type { StationDb } from '../../native/store/index.js';
import type { Engine } from '../engine.js';
import { reportError } from './exit.js';

/** What a `station` command runs with: where it prints (control characters escaped, see station/cli/program.ts). */
export interface StationCtx {
  readonly io: Io;
}

/** One command of the `station` program. */
export type StationCommand = Command<StationCtx>;

/** Options every `station` command takes. */
export const COMMON_OPTIONS = {
  'data-dir': {
    type: 'string',
    arg: 'D',
    help: 'the station data directory (default: $LINE_STATION_DATA_DIR, else ./.data/station)',
  },
  verbose: { type: 'boolean', short: 'v', help: 'log to the console too, at debug level' },
} as const satisfies OptionTable;

/** The data dir a command works on (absolute). */
export function dataDirOf(args: ParsedArgs): string {
  return resolve(str(args, 'data-dir') ?? process.env['LINE_STATION_DATA_DIR'] ?? '.data/station');
}

/** The station log (`<data dir>/logs/station.log`); with --verbose on the console too, at debug level. */
export function commandLogger(dataDir: string, args: ParsedArgs, tap?: SinkOptions['tap']): Logger {
  const verbose = flagOn(args, 'verbose');
  return createLogger({
    file: join(dataDir, 'logs', 'station.log'),
    console: verbose,
    level: verbose ? 'debug' : 'info',
    ...(tap ? { tap } : {}),
  });
}

/** The data dir and logger of a command. */
export interface CommandSetup {
  readonly dataDir: string;
  readonly logger: Logger;
}

/**
 * The data dir and logger of a command. A data dir others can read or write is refused before anything (even a log
 * line) is written to it; `init` passes `checkDataDir: false` (it checks its own, which may not exist yet).
 */
export async function commandSetup(
  args: ParsedArgs,
  o: { checkDataDir: boolean } = { checkDataDir: true },
): Promise<Result<CommandSetup>> {
  const dataDir = dataDirOf(args);
  // Loaded when a command runs, not at start (`station --help` does not load the configuration schemas).
  const { checkStationDataDir, CONFIG_FILE } = await import('../config.js');
  if (o.checkDataDir && existsSync(join(dataDir, CONFIG_FILE))) {
    const insecure = checkStationDataDir(dataDir);
    if (!insecure.ok) return insecure;
  }
  return ok({ dataDir, logger: commandLogger(dataDir, args) });
}

/** Run `fn` with the command's setup, or print why there is none and answer its exit code. */
export async function withSetup(
  args: ParsedArgs,
  io: Io,
  fn: (s: CommandSetup) => Promise<number> | number,
  o?: { checkDataDir: boolean },
): Promise<number> {
  const s = await commandSetup(args, o);
  return s.ok ? fn(s.value) : reportError(io, s.error);
}

/** Run `fn` with the station engine open (closed after it, whatever happens), or print why it did not open. */
export async function withEngine(
  s: CommandSetup,
  io: Io,
  fn: (engine: Engine) => Promise<number> | number,
): Promise<number> {
  // Loaded here, not at start: `station --help` and the commands without an engine do not pay for it.
  const { openEngine } = await import('../engine.js');
  const eng = await openEngine({ dataDir: s.dataDir, logger: s.logger });
  if (!eng.ok) return reportError(io, eng.error);
  try {
    return await fn(eng.value);
  } finally {
    await eng.value.close();
  }
}

/**
 * The common run of a command that only reads the station database (no HSM, no boards: `station records`): setup,
 * configuration, database (migrated as the engine would), `fn`, close. Refusals are the engine's: the same codes.
 */
export function storeCommand(
  fn: (db: StationDb, args: ParsedArgs, io: Io, s: CommandSetup) => Promise<number> | number,
): StationCommand['run'] {
  return (args, { io }) =>
    withSetup(args, io, async (s) => {
      const [{ loadConfig }, { openStationDb }] = await Promise.all([
        import('../config.js'),
        import('../../native/store/index.js'),
      ]);
      const cfg = loadConfig(s.dataDir);
      if (!cfg.ok) return reportError(io, cfg.error);
      const db = openStationDb(join(cfg.value.dataDir, 'station.db'), { logger: s.logger.child('[store]') });
      if (!db.ok) return reportError(io, db.error);
      try {
        return await fn(db.value, args, io, s);
      } finally {
        db.value.close();
      }
    });
}

/** The common run of a command that works on an open engine: setup, engine, `fn`, close. */
export function engineCommand(
  fn: (engine: Engine, args: ParsedArgs, io: Io, s: CommandSetup) => Promise<number> | number,
): StationCommand['run'] {
  return (args, { io }) => withSetup(args, io, (s) => withEngine(s, io, (engine) => fn(engine, args, io, s)));
}

/** The text of a file named on the command line, or null after printing why it cannot be read (INPUT_INVALID). */
export function readArgFile(file: string, io: Io): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    io.err(`INPUT_INVALID: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return null;
  }
}
