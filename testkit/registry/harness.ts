/**
 * Registry test harness: registry keys in a throwaway SoftHSM2 token (through `initRegistry`), a fresh database
 * per backend (a SQLite file in a temp dir, or a new PostgreSQL database on LINE_STATION_TEST_PG_URL), and a
 * small HTTP client that signs station requests.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import type { Clock, Logger } from '../../core/ports.js';
import { systemClock } from '../../core/ports.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { initRegistry, openRegistryKeys, type RegistryKeys } from '../../registry/setup/keys.js';
import { signRequest } from '../../core/hq/protocol.js';
import type { TestStation } from './fixtures.js';
import { startRegistry, type RunningRegistry } from '../../registry/http/server.js';

export const PG_URL = process.env['LINE_STATION_TEST_PG_URL'];

export type Backend = 'sqlite' | 'postgres';

/** The backends to run: SQLite always, PostgreSQL when LINE_STATION_TEST_PG_URL is set (else a printed skip). */
export function backends(): Backend[] {
  if (!PG_URL) {
    console.log(
      'LINE_STATION_TEST_PG_URL is unset: the PostgreSQL run of the registry tests is SKIPPED (see scripts/pg-test.sh)',
    );
    return ['sqlite'];
  }
  return ['sqlite', 'postgres'];
}

export const quietLogger: Logger = { log() {}, child: () => quietLogger };

export interface TestKeys extends RegistryKeys {
  readonly dataDir: string;
  readonly certificatePem: string;
  cleanup(): Promise<void>;
}

/** `registry init` in a temp dir (SoftHSM2 token + receipt key + certificate + admin token), then open the keys. */
export async function createRegistryKeys(clock: Clock = systemClock): Promise<TestKeys> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ls-registry-'));
  const init = await initRegistry({ dataDir, registryId: 'registry-test', clock, logger: quietLogger });
  if (!init.ok) throw new Error(`initRegistry: ${init.error.message}`);
  const keys = await openRegistryKeys(dataDir, quietLogger);
  if (!keys.ok) throw new Error(`openRegistryKeys: ${keys.error.message}`);
  const { readFileSync } = await import('node:fs');
  return {
    ...keys.value,
    dataDir,
    certificatePem: readFileSync(join(dataDir, 'registry.pem'), 'utf8'),
    async cleanup() {
      await keys.value.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestDb {
  readonly url: string;
  open(): Promise<RegistryDb>;
  cleanup(): Promise<void>;
}

/** A fresh, empty database for `backend`. */
export async function createTestDb(backend: Backend): Promise<TestDb> {
  if (backend === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'ls-registry-db-'));
    const url = `sqlite:${join(dir, 'registry.db')}`;
    return { url, open: () => openOrThrow(url), cleanup: () => rm(dir, { recursive: true, force: true }) };
  }
  if (!PG_URL) throw new Error('LINE_STATION_TEST_PG_URL is not set');
  const name = `ls_reg_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  return {
    url,
    open: () => openOrThrow(url),
    async cleanup() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

async function openOrThrow(url: string): Promise<RegistryDb> {
  const r = await openRegistryDb(url);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

export interface HttpAnswer {
  readonly status: number;
  readonly json: unknown;
  readonly text: string;
}

/** The audience a registry on `base` expects (its health answer; stations take it from their pinned certificate). */
export async function audienceAt(base: string): Promise<string> {
  const h = (await (await fetch(`${base}/v1/health`)).json()) as { audience?: unknown };
  if (typeof h.audience !== 'string') throw new Error(`${base}/v1/health names no audience`);
  return h.audience;
}

/**
 * Send a request; `station` signs it (LS-Sig, for `audience`, default the registry's own), `bearer` sends the admin
 * token, `authorization` overrides both.
 */
export async function call(
  base: string,
  method: string,
  path: string,
  o: {
    body?: unknown;
    rawBody?: string;
    station?: TestStation;
    bearer?: string;
    authorization?: string;
    clock?: Clock;
    audience?: string;
  } = {},
): Promise<HttpAnswer> {
  const body = o.rawBody ?? (o.body !== undefined ? JSON.stringify(o.body) : '');
  const headers: Record<string, string> = {};
  if (body) headers['content-type'] = 'application/json';
  if (o.station) {
    const aud = o.audience ?? (await audienceAt(base));
    const a = await signRequest(o.station.signer, o.station.id, method, path, body, o.clock ?? systemClock, aud);
    if (!a.ok) throw new Error(a.error.message);
    headers['authorization'] = a.value;
  }
  if (o.bearer) headers['authorization'] = `Bearer ${o.bearer}`;
  if (o.authorization !== undefined) headers['authorization'] = o.authorization;
  const res = await fetch(base + path, { method, headers, ...(body ? { body } : {}) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

/**
 * `node bin/registry.mjs serve --data-dir D --port 0 ...args` as a child process (the registry itself: no wrapper to
 * kill instead); resolves with its URL once it listens. Its stderr is kept in `stderr()` (last 20,000 characters).
 */
export async function spawnServe(
  dataDir: string,
  args: readonly string[] = [],
): Promise<{ child: ChildProcessByStdio<null, Readable, Readable>; url: string; stderr(): string }> {
  const child = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--data-dir', dataDir, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-20_000)));
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no listening line: ${buf} ${err}`)), 30_000);
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`registry serve exited ${code}: ${buf} ${err}`)));
  });
  return { child, url, stderr: () => err };
}

/** A registry started in this process (startEnrolledRegistry) over a fresh database. */
export interface EnrolledRegistry {
  readonly reg: RunningRegistry;
  readonly db: RegistryDb;
  readonly url: string;
  /** An admin API call (bearer admin token). */
  admin(method: string, path: string, body?: unknown): Promise<HttpAnswer>;
  /** Stop the registry, close and drop the database. */
  close(): Promise<void>;
}

/**
 * `startRegistry` on a free port over a fresh `backend` database, signing with `keys`, with `stations` enrolled through
 * the admin API (POST /v1/admin/stations: their chains as they are).
 */
export async function startEnrolledRegistry(
  backend: Backend,
  keys: TestKeys,
  stations: readonly TestStation[],
  registryId = 'registry-test',
): Promise<EnrolledRegistry> {
  const tdb = await createTestDb(backend);
  const db = await tdb.open();
  const r = await startRegistry({
    db,
    port: 0,
    signer: keys.signer,
    registryChain: keys.chain,
    registryId,
    adminToken: keys.adminToken,
    clock: systemClock,
    logger: quietLogger,
  });
  if (!r.ok) throw new Error(r.error.message);
  const reg = r.value;
  const admin = (method: string, path: string, body?: unknown) =>
    call(reg.url, method, path, { bearer: keys.adminToken, ...(body !== undefined ? { body } : {}) });
  for (const s of stations) {
    const e = await admin('POST', '/v1/admin/stations', { stationId: s.id, chainPem: s.chainPem });
    if (e.status !== 201) throw new Error(`enrol ${s.id}: ${e.text}`);
  }
  return {
    reg,
    db,
    url: reg.url,
    admin,
    async close() {
      await reg.close();
      await db.close();
      await tdb.cleanup();
    },
  };
}
