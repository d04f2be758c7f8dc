/**
 * `station operator add|revoke` (operators who may sign in at the station) and `station serve` (the service
 * behind the localhost HTTP bridge for the browser UI). Wired into station/cli.ts.
 *
 * The new operator's PIN comes from the environment (LINE_STATION_NEW_PIN) or standard input, never from
 * the command line (it would land in the shell history and the process list).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import { startBridge } from './bridge.js';
import { openEngine } from './engine.js';
import { createLogger } from './logger.js';
import { createLogTap, createStationService, hashBadge, hashPin } from './service/index.js';
import { openServiceDb } from '../native/store/queries.js';

type Out = { out: (s: string) => void; err: (s: string) => void };

export const OPERATOR_USAGE = `  operator add    --data-dir D --id ID --name N --role operator|supervisor [--badge CODE]   (PIN: $LINE_STATION_NEW_PIN or stdin)
  operator revoke --data-dir D --id ID
  serve       --data-dir D [--port N] [--open]`;

const EXIT = { ok: 0, failed: 1, usage: 2, notReady: 3 } as const;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('PIN (4 to 12 digits), then Enter: ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(c);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split('\n')[0]!.trim();
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
    if (!/^[0-9]{4,12}$/.test(pin)) {
      o.err('the PIN must be 4 to 12 digits');
      return EXIT.usage;
    }
    try {
      db.value.operators.upsert(
        { operatorId: id, name, role, pinHash: await hashPin(pin), badgeHash: badge ? hashBadge(badge) : null },
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
  o.out(`Line Station ${engine.station.id}: open ${bridge.url}`);
  if (v['open']) {
    try {
      const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [bridge.url], {
        stdio: 'ignore',
        detached: true,
      });
      child.on('error', () => o.err('could not open a browser; open the URL above'));
      child.unref();
    } catch {
      o.err('could not open a browser; open the URL above');
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
  await bridge.close();
  await service.stop();
  await engine.close();
  return EXIT.ok;
}
