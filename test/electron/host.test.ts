/**
 * The engine host as a real child process (node + tsx, as Electron's utilityProcess would run the
 * bundle) over a createWorld data dir (SoftHSM2 token, SQLite, simulator): getStatus, argument
 * validation, sign-in with an operator from the operators table, per-client events, log lines into
 * main's sink; a SIGKILLed host is detected (signal logged) and restarted. Then the esbuild bundle
 * of the host runs in plain Node too.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StationEventSchema, StationStatusSchema, type StationEvent } from '../../core/api.js';
import type { Logger } from '../../core/ports.js';
import { bundleOptions } from '../../electron/build.js';
import { createEngineClient, type EngineClient, type HostChild } from '../../electron/main/engine-client.js';
import type { HostRequest } from '../../electron/shared/ipc.js';
import { openStationDb } from '../../native/store/index.js';
import { hashPin } from '../../station/service/index.js';
import { createWorld, type World } from '../harness.js';

const root = resolve(import.meta.dirname, '../..');

/** Fork an engine host entry as a Node child (structured-clone messages, like Electron's MessagePort). */
function forkHost(entry: string, dataDir: string, execArgv: string[]): HostChild {
  const c: ChildProcess = fork(entry, ['--data-dir', dataDir], {
    execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, LINE_STATION_LOG_LEVEL: 'info' },
  });
  return {
    pid: c.pid,
    postMessage: (m: HostRequest) => void c.send(m),
    onMessage: (cb) => void c.on('message', cb),
    onExit: (cb) => void c.once('exit', (code, signal) => cb(code, signal)),
    kill: () => void c.kill('SIGKILL'),
  };
}

function memoryLogger() {
  const lines: { level: string; msg: string; ctx?: Record<string, unknown> }[] = [];
  const l: Logger = {
    log: (level, msg, ctx) => void lines.push({ level, msg, ...(ctx ? { ctx: { ...ctx } } : {}) }),
    child: () => l,
  };
  return { l, lines };
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let w: World;
beforeAll(async () => {
  w = await createWorld({ boards: [] });
  const db = openStationDb(join(w.dataDir, 'station.db'));
  if (!db.ok) throw new Error(db.error.message);
  const now = new Date().toISOString();
  db.value.operators.upsert(
    {
      operatorId: 'sup1',
      name: 'Sam Supervisor',
      role: 'supervisor',
      pinHash: await hashPin('482915'),
      badgeHash: null,
    },
    now,
  );
  db.value.close();
  await w.engine.close(); // the host opens its own engine on this data dir
}, 120_000);
afterAll(async () => {
  await w?.reopen(); // so teardown closes a live engine
  await w?.teardown();
});

describe('engine host child process', () => {
  let client: EngineClient;
  const events: [string, StationEvent][] = [];
  const hostLines: { subsystem: string; msg: string }[] = [];
  const main = memoryLogger();

  afterAll(async () => client?.stop(5000));

  it('answers getStatus, validates arguments, signs in, pushes per-client events and log lines', async () => {
    client = createEngineClient({
      spawn: () => forkHost(join(root, 'electron/engine-host/main.ts'), w.dataDir, ['--import', 'tsx']),
      logger: main.l,
      backoff: { initialMs: 100, maxMs: 1000 },
      onEvent: (clientId, e) => events.push([clientId, StationEventSchema.parse(e)]),
      onLog: (line) => hostLines.push(line),
    });
    const status = await client.invoke('electron:1', 'getStatus', {});
    expect(status.ok, JSON.stringify(status)).toBe(true);
    if (status.ok)
      expect(StationStatusSchema.parse(status.value)).toMatchObject({ stationId: 'test-station', session: null });

    const bad = await client.invoke('electron:1', 'getStatus', { extra: 1 });
    expect(bad).toMatchObject({ ok: false, error: { code: 'INPUT_INVALID' } });
    const wrongPin = await client.invoke('electron:1', 'signIn', { operatorId: 'sup1', pin: '000000' });
    expect(wrongPin).toMatchObject({ ok: false, error: { code: 'AUTH_INVALID_CREDENTIALS' } });
    const forbidden = await client.invoke('electron:2', 'getHsm', {});
    expect(forbidden.ok).toBe(false);

    const signIn = await client.invoke('electron:1', 'signIn', { operatorId: 'sup1', pin: '482915' });
    expect(signIn).toMatchObject({ ok: true, value: { operatorId: 'sup1', role: 'supervisor' } });
    const session = await until('a session event for electron:1', () =>
      events.find(([id, e]) => id === 'electron:1' && e.type === 'session' && e.session?.operatorId === 'sup1'),
    );
    expect(session).toBeDefined();
    // Client 2 (not signed in) never sees client 1's session, nor supervisor-only log lines.
    expect(events.filter(([id]) => id === 'electron:2').map(([, e]) => e.type)).not.toContain('session');
    expect(events.some(([id, e]) => id === 'electron:2' && e.type === 'log')).toBe(false);

    const hsm = await client.invoke('electron:1', 'getHsm', {});
    expect(hsm).toMatchObject({ ok: true, value: { present: true, loggedIn: true } });

    // Host log lines reach main's sink with their subsystem prefix; no PIN in any of them.
    await until('host log lines', () => hostLines.some((l) => l.subsystem === '[host]' && /engine open/.test(l.msg)));
    expect(JSON.stringify(hostLines)).not.toContain('482915');
  });

  it('detects a killed host (signal logged) and restarts it with a fresh engine', async () => {
    const pid = client.pid;
    expect(pid).toBeTypeOf('number');
    process.kill(pid!, 'SIGKILL');
    await until('the death to be logged', () => main.lines.find((l) => l.msg === 'engine host died (signal SIGKILL)'));
    await until('a restart', () => client.starts === 2 && client.pid !== undefined && client.pid !== pid);
    const status = await client.invoke('electron:1', 'getStatus', {});
    expect(status).toMatchObject({ ok: true, value: { stationId: 'test-station', session: null } });
    expect(main.lines.find((l) => l.msg === 'restarting the engine host')?.ctx?.inMs).toBe(100);
    await client.stop(5000);
    expect(main.lines.some((l) => l.msg === 'engine host stopped')).toBe(true);
  });

  it('runs as the esbuild bundle (dist layout) in plain Node', async () => {
    const out = join(root, 'test-results', `electron-bundle-${process.pid}`);
    mkdirSync(out, { recursive: true });
    try {
      await build({ ...bundleOptions(out).engineHost!, sourcemap: false });
      const log = memoryLogger();
      const c = createEngineClient({
        spawn: () => forkHost(join(out, 'engine-host.mjs'), w.dataDir, []),
        logger: log.l,
      });
      try {
        const status = await c.invoke('electron:1', 'getStatus', {});
        expect(status).toMatchObject({ ok: true, value: { stationId: 'test-station' } });
      } finally {
        await c.stop(5000);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
