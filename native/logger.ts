/**
 * The station's one log sink: JSON lines to a file (and optionally human lines to stderr), every line
 * prefixed with its subsystem (`[hsm]`, `[serial /dev/ttyACM0]`). Known secret-bearing keys are
 * redacted defensively, although callers never pass secrets.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger, LogLevel } from '../core/ports.js';
import { escapeControlChars } from '../core/display-text.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './data-dir.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEYS = /pin|password|secret|privatekey|private_key|passphrase/i;

export interface SinkOptions {
  readonly file?: string;
  readonly console?: boolean;
  readonly level?: LogLevel;
  /** Receives every line (the UI's live log view). */
  readonly tap?: (line: LogLine) => void;
}

export interface LogLine {
  readonly ts: string;
  readonly level: LogLevel;
  readonly subsystem: string;
  readonly msg: string;
  readonly ctx?: Readonly<Record<string, unknown>>;
}

/** Redact values under secret-looking keys (defence in depth). */
export function redact(ctx: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> | undefined {
  if (!ctx) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctx)) out[k] = SECRET_KEYS.test(k) ? '[redacted]' : v;
  return out;
}

export function createLogger(opts: SinkOptions = {}, prefix = 'station'): Logger {
  const min = ORDER[opts.level ?? 'info'];
  // Private from the first write (docs/architecture.md "Data directory permissions"): the folder 0700, the file 0600.
  if (opts.file) mkdirSync(dirname(opts.file), { recursive: true, mode: PRIVATE_DIR_MODE });
  const make = (subsystem: string): Logger => ({
    log(level, msg, ctx) {
      if (ORDER[level] < min) return;
      const safe = redact(ctx);
      const line: LogLine = { ts: new Date().toISOString(), level, subsystem, msg, ...(safe ? { ctx: safe } : {}) };
      // JSON escapes C0 controls; C1 and bidi controls are escaped too (same values once parsed) so that
      // `tail -f` of the log cannot be steered by board-chosen text.
      if (opts.file)
        appendFileSync(opts.file, escapeControlChars(JSON.stringify(line)) + '\n', { mode: PRIVATE_FILE_MODE });
      if (opts.console) {
        const c = safe && Object.keys(safe).length ? ' ' + JSON.stringify(safe) : '';
        const text = escapeControlChars(`${line.ts} ${level.toUpperCase().padEnd(5)} [${subsystem}] ${msg}${c}`);
        process.stderr.write(`${text}\n`);
      }
      opts.tap?.(line);
    },
    child: (p) => make(`${subsystem} ${p}`.trim()),
  });
  return make(prefix);
}

/** A logger that drops everything (tests that do not look at logs). */
export const nullLogger: Logger = { log() {}, child: () => nullLogger };
