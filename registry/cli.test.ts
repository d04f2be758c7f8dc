/**
 * The `registry` CLI: init (SoftHSM2 key, certificate, admin token), enrol, import bundles, queries, serve; and its
 * usage from the command table: `<command> --help` of every command and an unknown option through the real
 * bin/registry.mjs, `registry --help` listing the exit codes of the table.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../core/ports.js';
import { EXIT, main, REGISTRY } from './cli.js';
import { spawnServe } from '../testkit/registry/harness.js';
import { createBundle } from '../core/hq/protocol.js';
import { createTestStation, makeRecords, type MadeRecord, type TestStation } from '../testkit/registry/fixtures.js';

let dir: string;
let station: TestStation;
let recs: MadeRecord[];

function capture() {
  const lines: string[] = [];
  return {
    lines,
    text: () => lines.join('\n'),
    out: { log: (s: string) => lines.push(s), err: (s: string) => lines.push(s) },
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ls-registry-cli-'));
  station = await createTestStation('station-cli', systemClock);
  recs = await makeRecords(station, systemClock, 3);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A bundle of `records` signed by the test station, written to `name` in the test dir. */
async function writeBundle(
  records: readonly MadeRecord[],
  name: string,
): Promise<{ file: string; jws: string; bundleId: string }> {
  const b = await createBundle({
    signer: station.signer,
    chain: station.chain,
    stationId: station.id,
    records: records.map((r) => r.jws),
    clock: systemClock,
  });
  if (!b.ok) throw new Error(b.error.message);
  const file = join(dir, name);
  await writeFile(file, b.value.jws);
  return { file, jws: b.value.jws, bundleId: b.value.bundleId };
}

describe('registry CLI', () => {
  const D = () => join(dir, 'reg');

  it('initialises a data dir with an HSM key, a certificate and a 0600 admin token (idempotent)', async () => {
    const c = capture();
    expect(await main(['init', '--data-dir', D(), '--registry-id', 'reg-cli'], c.out)).toBe(0);
    expect(c.text()).toContain('reg-cli initialised');
    expect((await stat(join(D(), 'secrets', 'admin.token'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(D(), 'registry.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    const cfg = JSON.parse(await readFile(join(D(), 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(JSON.stringify(cfg)).not.toMatch(/[0-9a-f]{24}/); // no PIN in the config
    const again = capture();
    expect(await main(['init', '--data-dir', D()], again.out)).toBe(0);
    expect(again.text()).toContain('already initialised');
  });

  it('enrols a station, imports a bundle twice, refuses a truncated one, answers queries', async () => {
    const chainFile = join(dir, 'station-chain.pem');
    await writeFile(chainFile, station.chainPem);
    expect(
      await main(
        ['enroll-station', '--data-dir', D(), '--id', station.id, '--chain', chainFile, '--work-orders', 'WO-TEST-1'],
        capture().out,
      ),
    ).toBe(0);

    const b = await writeBundle(recs, 'bundle.jws');
    const file = b.file;
    const c1 = capture();
    expect(await main(['import', file, '--data-dir', D(), '--out', join(dir, 'receipt.jws')], c1.out)).toBe(0);
    expect(c1.text()).toContain('3 accepted');
    const key = await importX509(await readFile(join(D(), 'registry.pem'), 'utf8'), 'ES256');
    const receipt = (await readFile(join(dir, 'receipt.jws'), 'utf8')).trim();
    const v = await compactVerify(receipt, key);
    const payload = JSON.parse(new TextDecoder().decode(v.payload)) as {
      accepted: Array<{ recordId: string }>;
      batchId: string;
    };
    expect(payload.batchId).toBe(b.bundleId);
    expect(payload.accepted.map((a) => a.recordId)).toEqual(recs.map((r) => r.recordId));

    const c2 = capture();
    expect(await main(['import', file, '--data-dir', D()], c2.out)).toBe(0);
    expect(c2.text()).toContain('imported before');

    const cut = join(dir, 'cut.jws');
    await writeFile(cut, b.jws.slice(0, b.jws.length - 100));
    const c3 = capture();
    expect(await main(['import', cut, '--data-dir', D()], c3.out)).toBe(1);
    expect(c3.text()).toMatch(/BUNDLE_INVALID.*(truncated|modified)/);

    const s = capture();
    expect(await main(['stats', '--json', '--data-dir', D()], s.out)).toBe(0);
    expect(JSON.parse(s.text())).toMatchObject({ stations: 1, devices: 3, records: 3 });
    const d = capture();
    expect(await main(['device', recs[0]!.record.board.serialNumber, '--json', '--data-dir', D()], d.out)).toBe(0);
    expect(JSON.parse(d.text())).toMatchObject({
      chipId: recs[0]!.record.board.chipId,
      currentRecordId: recs[0]!.recordId,
    });
    expect(await main(['device', 'LSNOPE', '--data-dir', D()], capture().out)).toBe(1);
    const r = capture();
    expect(await main(['records', '--json', '--limit', '2', '--data-dir', D()], r.out)).toBe(0);
    const page = JSON.parse(r.text()) as { records: unknown[]; nextCursor: string };
    expect(page.records).toHaveLength(2);
    expect(page.nextCursor).toMatch(/^c\d+$/);
  });

  it('prints a JSON listing over 64 KiB whole through a pipe (bin/registry.mjs records --json | a JSON parser)', async () => {
    // process.exit() before stdout drained cut piped output at the pipe buffer (64 KiB) (issue 13).
    const { file } = await writeBundle(await makeRecords(station, systemClock, 60), 'bundle-many.jws');
    expect(await main(['import', file, '--data-dir', D()], capture().out)).toBe(0);
    const { code, out: text } = await registryBin('records', '--json', '--limit', '1000', '--data-dir', D());
    expect(code).toBe(0);
    expect(text.length).toBeGreaterThan(64 * 1024);
    const page = JSON.parse(text) as { records: unknown[] };
    expect(page.records).toHaveLength(63);
  }, 120_000);

  it('revokes a station: its bundles are refused afterwards', async () => {
    expect(await main(['revoke-station', station.id, '--data-dir', D()], capture().out)).toBe(0);
    const { file } = await writeBundle(await makeRecords(station, systemClock, 1), 'bundle2.jws');
    const c = capture();
    expect(await main(['import', file, '--data-dir', D()], c.out)).toBe(1);
    expect(c.text()).toContain('AUTH_STATION_REVOKED');
    expect(c.text()).toContain('--allow-revoked-station');
    // Deliberately taken in: the record was completed after the revocation, so it is rejected (exit 1).
    const d = capture();
    expect(await main(['import', file, '--allow-revoked-station', '--json', '--data-dir', D()], d.out)).toBe(1);
    expect(JSON.parse(d.text())).toMatchObject({ summary: { accepted: 0, rejected: 1 } });
    expect(d.text()).toContain('STATION_REVOKED');
  });

  it('reports usage errors and a missing data dir', async () => {
    expect(await main(['bogus', '--data-dir', D()], capture().out)).toBe(2);
    expect(await main(['--nope'], capture().out)).toBe(2);
    expect(await main(['stats', '--data-dir', join(dir, 'missing')], capture().out)).toBe(3);
  });

  it('serves over HTTP through bin/registry.mjs and stops on SIGTERM', async () => {
    const { child, url } = await spawnServe(D());
    const h = await fetch(`${url}/v1/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', registryId: 'reg-cli' });
    const token = (await readFile(join(D(), 'secrets', 'admin.token'), 'utf8')).trim();
    const st = await fetch(`${url}/v1/stats`, { headers: { authorization: `Bearer ${token}` } });
    expect(await st.json()).toMatchObject({ records: 63 }); // 3 + 60 from the pipe test
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  });
});

/** `node bin/registry.mjs ...args` in its own process, as the product runs it. */
async function registryBin(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = spawn(process.execPath, ['bin/registry.mjs', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': the child's output is read to its end.
  const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
  return { code, out, err };
}

/** Run `f` over `items`, `n` at a time. */
async function inBatches<T>(items: readonly T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(f));
}

describe('registry CLI usage (from the command table)', () => {
  it("prints every command's usage on <command> --help (bin/registry.mjs), exit 0, nothing opened", async () => {
    await inBatches(REGISTRY.commands, 3, async (c) => {
      const r = await registryBin(c.name, '--help', '--data-dir', join(dir, 'never-created'));
      expect(r.code, `${c.name}: ${r.err}`).toBe(0);
      expect(r.out).toContain(`usage: registry ${c.name} `);
      expect(r.out).toContain(c.summary);
      for (const o of Object.keys(c.options)) expect(r.out, `${c.name} --${o}`).toContain(`--${o}`);
      for (const p of c.positionals ?? []) expect(r.out).toContain(p.name);
      expect(r.out).toContain('--data-dir D');
    });
    expect(existsSync(join(dir, 'never-created'))).toBe(false);
  }, 400_000);

  it('prints the same usage on help <command> and -h', async () => {
    for (const c of REGISTRY.commands) {
      const a = capture();
      const b = capture();
      expect(await main(['help', c.name], a.out)).toBe(0);
      expect(await main([c.name, '-h'], b.out)).toBe(0);
      expect(a.text()).toContain(`usage: registry ${c.name} `);
      expect(b.text()).toBe(a.text());
    }
  });

  it('refuses an unknown option with the usage code, naming it and showing the command usage', async () => {
    const r = await registryBin('stats', '--bogus', '--data-dir', join(dir, 'never-created'));
    expect(r.code).toBe(EXIT.usage.code);
    expect(r.err).toMatch(/registry stats: Unknown option '--bogus'/);
    expect(r.err).toContain('usage: registry stats [options]');
    for (const c of REGISTRY.commands) {
      const x = capture();
      expect(await main([c.name, '--no-such-option'], x.out), c.name).toBe(EXIT.usage.code);
      expect(x.text()).toContain(`registry ${c.name}: Unknown option '--no-such-option'`);
      expect(x.text()).toContain(`usage: registry ${c.name} `);
    }
    // Options of another command are unknown here (each command declares its own).
    const y = capture();
    expect(await main(['stats', '--registry-id', 'x', '--data-dir', join(dir, 'never-created')], y.out)).toBe(2);
    expect(y.text()).toContain("Unknown option '--registry-id'");
  });

  it('lists every command and exactly the exit codes of the table on registry --help', async () => {
    const r = await registryBin('--help');
    expect(r.code).toBe(0);
    for (const c of REGISTRY.commands) expect(r.out).toMatch(new RegExp(`^  ${c.name} +\\S`, 'm'));
    const section = r.out.slice(r.out.indexOf('exit codes:'));
    const printed = [...section.matchAll(/^ +(\d+) {2}(.+)$/gm)].map((m) => ({ code: Number(m[1]), meaning: m[2] }));
    expect(printed).toEqual(Object.values(EXIT).sort((a, b) => a.code - b.code));
    expect(printed.map((e) => e.code)).toEqual([0, 1, 2, 3, 70]);
  });
});
