/**
 * `station operator add|revoke` (operators who may sign in at the station), `station serve` (the service behind the
 * localhost HTTP bridge for the browser UI), and the sign-in of `station provision|watch` (authenticateCli). Wired
 * into station/cli.ts.
 *
 * PINs come from the environment, a file or standard input, never from the command line (it would land in the shell
 * history and the process list). The bridge's access token never reaches stdout, a log or another process's argv: it
 * is only in `secrets/ui-url.html` (0600), the page `--open` hands to the browser by its path.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OPERATIONS, type OperationName } from '../core/api.js';
import { fail } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import { ok, type Result } from '../core/result.js';
import { writeFileAtomic } from '../native/atomic-file.js';
import { readPrivateFile } from '../native/data-dir.js';
import { loadConfig } from './config.js';
import { startBridge } from './bridge.js';
import { openEngine, type Engine } from './engine.js';
import { createLogger } from '../native/logger.js';
import { authPolicy, createSessions, pinLengthError } from './service/auth.js';
import { createLogTap, createStationService, hashBadge, hashPin, loadBadgeKey } from './service/index.js';
import { openServiceDb } from '../native/store/queries.js';

type Out = { out: (s: string) => void; err: (s: string) => void };

export const OPERATOR_USAGE = `  operator add    --data-dir D --id ID --name N --role operator|supervisor [--badge CODE]   (PIN: $LINE_STATION_NEW_PIN or stdin;
                  supervisors at least 6 digits, config.json auth.supervisorPinMinLength)
  operator revoke --data-dir D --id ID
  serve       --data-dir D [--port N] [--open]   (the UI address with its token: <data-dir>/secrets/ui-url.html, 0600)`;

const EXIT = { ok: 0, failed: 1, usage: 2, notReady: 3 } as const;

let stdinLines: string[] | null = null;

/** The next line of standard input (all of it is read once: a PIN per line); from a terminal, not echoed. */
async function readStdin(prompt = 'PIN (4 to 12 digits), then Enter: '): Promise<string> {
  if (process.stdin.isTTY) return readTtyLine(prompt);
  if (!stdinLines) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    stdinLines = Buffer.concat(chunks).toString('utf8').split('\n');
  }
  return (stdinLines.shift() ?? '').trim();
}

/** What was typed after the Enter that ended the previous terminal line (the next prompt's input). */
let ttyRest = '';

/**
 * One line typed at the terminal with echo off (raw mode): a PIN must not appear on the screen or in the scrollback.
 * Enter ends it, Backspace erases, Ctrl-D gives up (an empty answer), Ctrl-C interrupts as usual. stdin is paused, not closed, after
 * it, so a second prompt (the supervisor's PIN) reads the next line.
 */
function readTtyLine(prompt: string): Promise<string> {
  const tty = process.stdin;
  // Echo off BEFORE the prompt shows: what is typed as soon as it appears must not be echoed either.
  tty.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    let line = '';
    const take = (s: string): boolean => {
      for (let i = 0; i < s.length; i++) {
        const ch = s[i]!;
        if (ch === '\r' || ch === '\n') {
          ttyRest = s.slice(i + (ch === '\r' && s[i + 1] === '\n' ? 2 : 1));
          finish(line.trim());
          return true;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          ttyRest = '';
          finish('');
          if (ch === '\u0003') process.kill(process.pid, 'SIGINT'); // raw mode: Ctrl-C raises no signal itself
          return true;
        }
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
      return false;
    };
    const onData = (b: Buffer) => void take(b.toString('utf8'));
    const onEnd = () => finish(''); // the terminal went away before Enter
    const finish = (v: string) => {
      tty.off('data', onData);
      tty.off('end', onEnd);
      tty.off('error', onEnd);
      if (tty.destroyed) return resolve(v);
      tty.setRawMode(false);
      tty.pause();
      process.stderr.write('\n');
      resolve(v);
    };
    const rest = ttyRest;
    ttyRest = '';
    if (take(rest)) return;
    tty.on('data', onData);
    tty.once('end', onEnd);
    tty.once('error', onEnd);
    tty.resume();
  });
}

/** `station operator ...` */
export async function cmdOperator(argv: string[], o: Out, readPin: () => Promise<string> = readStdin): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  let pos: string[];
  try {
    const p = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        id: { type: 'string' },
        name: { type: 'string' },
        role: { type: 'string' },
        badge: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
    v = p.values;
    pos = p.positionals;
  } catch (e) {
    o.err(`${(e as Error).message}\n${OPERATOR_USAGE}`);
    return EXIT.usage;
  }
  const sub = pos[0];
  const id = v['id'] as string | undefined;
  if ((sub !== 'add' && sub !== 'revoke') || pos.length !== 1 || !id || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
    o.err(`usage:\n${OPERATOR_USAGE}`);
    return EXIT.usage;
  }
  const dataDir = resolve(
    (v['data-dir'] as string | undefined) ?? process.env['LINE_STATION_DATA_DIR'] ?? '.data/station',
  );
  const cfg = loadConfig(dataDir);
  if (!cfg.ok) {
    o.err(`${cfg.error.code}: ${cfg.error.message}`);
    return EXIT.notReady;
  }
  const db = openServiceDb(join(cfg.value.dataDir, 'station.db'));
  if (!db.ok) {
    o.err(`${db.error.code}: ${db.error.message}`);
    return EXIT.notReady;
  }
  try {
    const now = new Date().toISOString();
    if (sub === 'revoke') {
      if (!db.value.operators.setRevoked(id, true, now)) {
        o.err(`no operator ${id}`);
        return EXIT.failed;
      }
      o.out(`operator ${id} revoked`);
      return EXIT.ok;
    }
    const name = v['name'] as string | undefined;
    const role = v['role'] as string | undefined;
    const badge = v['badge'] as string | undefined;
    if (!name || name.length > 128 || (role !== 'operator' && role !== 'supervisor')) {
      o.err(`operator add needs --name (1..128 chars) and --role operator|supervisor\n${OPERATOR_USAGE}`);
      return EXIT.usage;
    }
    if (badge !== undefined && (badge.length < 4 || badge.length > 128)) {
      o.err('--badge: 4 to 128 characters');
      return EXIT.usage;
    }
    const pin = process.env['LINE_STATION_NEW_PIN'] ?? (await readPin());
    const weak = pinLengthError(role, pin, authPolicy(cfg.value.config.auth));
    if (weak) {
      o.err(`AUTH_PIN_POLICY: ${weak}`);
      return EXIT.usage;
    }
    const key = badge ? loadBadgeKey(cfg.value.dataDir) : null;
    if (key && !key.ok) {
      o.err(`${key.error.code}: ${key.error.message}`);
      return EXIT.notReady;
    }
    try {
      db.value.operators.upsert(
        {
          operatorId: id,
          name,
          role,
          pinHash: await hashPin(pin),
          badgeHash: key ? hashBadge(key.value, badge!) : null,
        },
        now,
      );
    } catch (e) {
      o.err(
        `STORE_FAILED: ${(e as Error).message.includes('UNIQUE') ? 'this badge belongs to another operator' : (e as Error).message}`,
      );
      return EXIT.failed;
    }
    o.out(`operator ${id} (${role}) saved${badge ? ' with a badge' : ''}`);
    return EXIT.ok;
  } finally {
    db.value.close();
  }
}

/** `station serve`: open the engine, start the service and the bridge, print the URL, run until SIGINT/SIGTERM. */
export async function cmdServe(argv: string[], o: Out): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        open: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        'static-dir': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (e) {
    o.err(`${(e as Error).message}\n${OPERATOR_USAGE}`);
    return EXIT.usage;
  }
  const port = v['port'] ? Number(v['port']) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    o.err('--port: 0..65535');
    return EXIT.usage;
  }
  const dataDir = resolve(
    (v['data-dir'] as string | undefined) ?? process.env['LINE_STATION_DATA_DIR'] ?? '.data/station',
  );
  const hub = createLogTap();
  const logger = createLogger({
    file: join(dataDir, 'logs', 'station.log'),
    console: v['verbose'] === true,
    level: v['verbose'] ? 'debug' : 'info',
    tap: hub.tap,
  });
  const eng = await openEngine({ dataDir, logger });
  if (!eng.ok) {
    o.err(`${eng.error.code}: ${eng.error.message}\n  -> ${eng.error.guidance}`);
    return eng.error.kind === 'bug' ? 70 : EXIT.notReady;
  }
  const engine = eng.value;
  const service = createStationService({ engine, logger, logTap: hub });
  await service.start();
  let bridge;
  try {
    bridge = await startBridge({
      service,
      port,
      logger,
      ...(v['static-dir'] ? { staticDir: resolve(v['static-dir'] as string) } : {}),
    });
  } catch (e) {
    o.err(`cannot start the bridge: ${(e as Error).message}`);
    await service.stop();
    await engine.close();
    return EXIT.notReady;
  }
  // The address with its token only in a 0600 file (secrets/ is 0700 too); the browser gets the file's path.
  const urlFile = join(dataDir, UI_URL_FILE);
  writeFileAtomic(urlFile, uiLauncher(bridge.url), 0o600);
  o.out(
    `Line Station ${engine.station.id}: UI on http://127.0.0.1:${bridge.port}/\n` +
      `  open ${urlFile} in a browser on this machine (its address carries the access token; readable only by you)`,
  );
  if (v['open']) {
    try {
      const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [urlFile], {
        stdio: 'ignore',
        detached: true,
      });
      child.on('error', () => o.err(`could not open a browser; open ${urlFile}`));
      child.unref();
    } catch {
      o.err(`could not open a browser; open ${urlFile}`);
    }
  }
  await new Promise<void>((res) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      res();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  o.out('stopping: boards in progress stop at their last checkpoint');
  rmSync(urlFile, { force: true });
  await bridge.close();
  await service.stop();
  await engine.close();
  return EXIT.ok;
}

/** Where `station serve` writes the UI address with its access token (relative to the data dir, 0600). */
export const UI_URL_FILE = join('secrets', 'ui-url.html');

/** A page that sends the browser on to the bridge URL (the token stays in the fragment) and shows the link. */
function uiLauncher(url: string): string {
  const u = url.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return (
    `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
    `<meta http-equiv="refresh" content="0;url=${u}"><title>Line Station</title>` +
    `<p>Line Station UI: <a href="${u}">${u}</a></p>\n`
  );
}

// ---------------------------------------------------------------- sign-in of the provisioning commands

/** The StationApi operation whose role (core/api.ts OPERATIONS, the UI's role table) each CLI action needs. */
export const CLI_OPERATION = {
  provision: 'retrySlot',
  reprovision: 'approveOverride',
  watch: 'selectWorkOrder',
} as const satisfies Record<string, OperationName>;

export interface CliCredentials {
  readonly operatorId: string;
  /** PIN file (else $LINE_STATION_PIN, else the first line of stdin). */
  readonly pinFile?: string;
  readonly supervisorId?: string;
  /** Supervisor PIN file (else $LINE_STATION_SUPERVISOR_PIN, else the next line of stdin). */
  readonly supervisorPinFile?: string;
}

async function readSecret(file: string | undefined, env: string, prompt: string): Promise<Result<string>> {
  if (file) {
    const f = readPrivateFile(file, 'INPUT_INVALID');
    return f.ok ? ok(f.value.split('\n')[0]!.trim()) : f;
  }
  const v = process.env[env];
  return ok(v !== undefined ? v.trim() : await readStdin(prompt));
}

/**
 * Sign a registered operator in for a CLI action (same sessions, attempt accounting and registry policy as the
 * UI), and a supervisor too when the action's operation needs one and the operator is not one. Returns who acts.
 */
export async function authenticateCli(
  engine: Engine,
  action: keyof typeof CLI_OPERATION,
  c: CliCredentials,
  logger: Logger,
): Promise<Result<{ operatorId: string; supervisorId: string | null }>> {
  const needs = OPERATIONS[CLI_OPERATION[action]].role;
  const db = openServiceDb(join(engine.config.dataDir, 'station.db'), { logger });
  if (!db.ok) return db;
  try {
    const key = loadBadgeKey(engine.config.dataDir);
    if (!key.ok) return key;
    const s = createSessions({
      operators: db.value.operators,
      attempts: db.value.attempts,
      badgeKey: key.value,
      clock: engine.clock,
      logger: logger.child('[auth]'),
      policy: authPolicy(engine.config.config.auth),
    });
    const signIn = async (id: string, file: string | undefined, env: string, who: string) => {
      const revoked = engine.lifecycle.checkOperator(id);
      if (!revoked.ok) return revoked;
      const pin = await readSecret(file, env, `${who} ${id}: PIN, then Enter: `);
      if (!pin.ok) return pin;
      if (!/^[0-9]{4,12}$/.test(pin.value))
        return fail('AUTH_INVALID_CREDENTIALS', `${who} ${id}: the PIN must be 4 to 12 digits`);
      return who === 'operator'
        ? s.signIn('cli', { operatorId: id, pin: pin.value })
        : s.elevate('cli', { operatorId: id, pin: pin.value });
    };
    const op = await signIn(c.operatorId, c.pinFile, 'LINE_STATION_PIN', 'operator');
    if (!op.ok) return op;
    if (needs === 'supervisor' && !s.isSupervisor('cli')) {
      if (!c.supervisorId)
        return fail(
          'AUTH_FORBIDDEN',
          `${action} needs a supervisor: --supervisor ID (PIN from --supervisor-pin-file, $LINE_STATION_SUPERVISOR_PIN or stdin)`,
          { operation: CLI_OPERATION[action] },
        );
      const sup = await signIn(c.supervisorId, c.supervisorPinFile, 'LINE_STATION_SUPERVISOR_PIN', 'supervisor');
      if (!sup.ok) return sup;
    }
    return ok({ operatorId: c.operatorId, supervisorId: s.supervisorOf('cli')?.operatorId ?? null });
  } finally {
    db.value.close();
  }
}
