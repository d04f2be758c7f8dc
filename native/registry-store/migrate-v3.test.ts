/**
 * Schema v3 (device state `rotated`) applied to a v2 registry database that already holds stations, devices and
 * credentials, per backend (SQLite; PostgreSQL with LINE_STATION_TEST_PG_URL): rows kept, indexes and the
 * credentials -> devices foreign key intact (SQLite: foreign_key_check and integrity_check clean), 'rotated'
 * accepted, unknown states still refused.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PG_URL } from '../../testkit/registry/harness.js';
import { openPostgresRegistryDb } from './postgres.js';
import { PG_MIGRATIONS, SQLITE_MIGRATIONS } from './migrations.js';
import { openSqliteRegistryDb } from './sqlite.js';

const T = '2026-01-01T00:00:00.000Z';
/** The v2 fixture: one station, two devices, three credentials (device A rotated once). */
const FIXTURE = [
  `INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders, enrolled_at)
   VALUES ('st-1', 'pem', 'c', 'a', 'r', '[]', '${T}')`,
  `INSERT INTO devices (serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at)
   VALUES ('SN-A', 'chip-a', 'st-1', 'M', 'WO-1', 'activated', '${T}', NULL, '${T}'),
          ('SN-B', 'chip-b', 'st-1', 'M', 'WO-2', 'suspended', '${T}', '${T}', '${T}')`,
  `INSERT INTO credentials (serial_number, version, cert_serial, station_id, status, reason, revoked_at, created_at)
   VALUES ('SN-A', 1, 'a1', 'st-1', 'superseded', 'superseded', '${T}', '${T}'),
          ('SN-A', 2, 'a2', 'st-1', 'active', NULL, NULL, '${T}'),
          ('SN-B', 1, 'b1', 'st-1', 'active', NULL, NULL, '${T}')`,
];
const DEVICES_SQL =
  'SELECT serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at FROM devices ORDER BY serial_number';
const CREDS_SQL = 'SELECT serial_number, version, cert_serial, status FROM credentials ORDER BY serial_number, version';

describe('registry schema v3 (sqlite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ls-reg-v3-'));
  const path = join(dir, 'registry.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('migrates a v2 database with devices and credentials, keeping rows, indexes and the foreign key', async () => {
    // Build the v2 database exactly as a v2 registry left it.
    const raw = new Database(path);
    raw.pragma('foreign_keys = ON');
    raw.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    for (const m of SQLITE_MIGRATIONS.filter((x) => x.version <= 2)) {
      raw.exec(m.sql);
      raw.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, T);
    }
    for (const q of FIXTURE) raw.exec(q);
    expect(() => raw.prepare("UPDATE devices SET state = 'rotated' WHERE serial_number = 'SN-A'").run()).toThrow(
      /CHECK constraint/,
    );
    const devicesBefore = raw.prepare(DEVICES_SQL).all();
    const credsBefore = raw.prepare(CREDS_SQL).all();
    raw.close();

    const opened = openSqliteRegistryDb(path);
    expect(opened.ok).toBe(true);
    if (!opened.ok) return;
    const db = opened.value;
    const x = db.sql;
    expect((await x.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r['version'])).toEqual(
      SQLITE_MIGRATIONS.map((m) => m.version),
    );
    expect(await x.all(DEVICES_SQL)).toEqual(devicesBefore);
    expect(await x.all(CREDS_SQL)).toEqual(credsBefore);
    expect(await x.all('PRAGMA foreign_key_check')).toEqual([]);
    expect(await x.all('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    expect((await x.all('PRAGMA foreign_keys'))[0]).toEqual({ foreign_keys: 1 });
    // Indexes: the explicit ones recreated, plus the primary key and chip_id UNIQUE autoindexes; no leftover table.
    const idx = (await x.all("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'devices'")).map(
      (r) => r['name'],
    );
    expect(idx).toEqual(expect.arrayContaining(['devices_work_order', 'devices_station']));
    expect(idx).toHaveLength(4);
    expect(await x.all("SELECT name FROM sqlite_master WHERE name LIKE 'devices_v3%'")).toEqual([]);
    const plan = await x.all("EXPLAIN QUERY PLAN SELECT * FROM devices WHERE work_order = 'WO-1'");
    expect(JSON.stringify(plan)).toContain('devices_work_order');
    // The credentials foreign key still points at devices and is enforced.
    expect(await x.all('PRAGMA foreign_key_list(credentials)')).toMatchObject([
      { table: 'devices', from: 'serial_number', to: 'serial_number' },
    ]);
    await expect(
      x.run(
        "INSERT INTO credentials (serial_number, version, cert_serial, station_id, status, created_at) VALUES ('SN-X', 1, 'x1', 'st-1', 'active', ?)",
        [T],
      ),
    ).rejects.toThrow(/FOREIGN KEY/);
    await expect(x.run("DELETE FROM devices WHERE serial_number = 'SN-A'")).rejects.toThrow(/FOREIGN KEY/);
    // The new state is accepted, unknown ones are still refused, chip_id is still unique.
    expect(await x.run("UPDATE devices SET state = 'rotated' WHERE serial_number = 'SN-A'")).toBe(1);
    await expect(x.run("UPDATE devices SET state = 'lost' WHERE serial_number = 'SN-A'")).rejects.toThrow(/CHECK/);
    await expect(x.run("UPDATE devices SET chip_id = 'chip-a' WHERE serial_number = 'SN-B'")).rejects.toThrow(/UNIQUE/);
    await db.close();
    // Opening again does not migrate twice.
    const again = openSqliteRegistryDb(path);
    expect(again.ok).toBe(true);
    if (again.ok) {
      expect(await again.value.sql.all('SELECT COUNT(*) AS n FROM schema_migrations')).toEqual([
        { n: SQLITE_MIGRATIONS.length },
      ]);
      await again.value.close();
    }
  });
});

describe.runIf(PG_URL)('registry schema v3 (postgres)', () => {
  const name = `ls_reg_v3_${Date.now().toString(36)}`;
  let url = '';
  afterAll(async () => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });

  it('migrates a v2 database with devices and credentials (constraint replaced, rows kept)', async () => {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(PG_URL!);
    u.pathname = `/${name}`;
    url = u.toString();
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    await raw.query(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    for (const m of PG_MIGRATIONS.filter((x) => x.version <= 2)) {
      await raw.query(m.sql);
      await raw.query('INSERT INTO schema_migrations VALUES ($1, $2, $3)', [m.version, m.name, T]);
    }
    for (const q of FIXTURE) await raw.query(q);
    await expect(raw.query("UPDATE devices SET state = 'rotated' WHERE serial_number = 'SN-A'")).rejects.toThrow(
      /devices_state_check/,
    );
    const devicesBefore = (await raw.query(DEVICES_SQL)).rows;
    const credsBefore = (await raw.query(CREDS_SQL)).rows;
    await raw.end();

    const opened = await openPostgresRegistryDb(url, { poolSize: 2 });
    expect(opened.ok).toBe(true);
    if (!opened.ok) return;
    const db = opened.value;
    const x = db.sql;
    expect((await x.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r['version'])).toEqual(
      PG_MIGRATIONS.map((m) => m.version),
    );
    expect(await x.all(DEVICES_SQL)).toEqual(devicesBefore);
    expect(await x.all(CREDS_SQL)).toEqual(credsBefore);
    const checks = await x.all(
      "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'devices'::regclass AND contype = 'c'",
    );
    expect(checks).toHaveLength(1);
    expect(checks[0]!['conname']).toBe('devices_state_check');
    expect(String(checks[0]!['def'])).toContain("'rotated'");
    expect(await x.run("UPDATE devices SET state = 'rotated' WHERE serial_number = 'SN-A'")).toBe(1);
    await expect(x.run("UPDATE devices SET state = 'lost' WHERE serial_number = 'SN-A'")).rejects.toThrow(
      /devices_state_check/,
    );
    await expect(x.run("DELETE FROM devices WHERE serial_number = 'SN-B'")).rejects.toThrow(/foreign key/);
    await db.close();
  });
});
