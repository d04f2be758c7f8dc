/**
 * `station records` output that scripts can trust (issue 13): run as the product runs it (`node bin/station.mjs`, in
 * its own process) with stdout piped into a parser. `--json` of more than 1 MiB arrives whole; `--ndjson` streams
 * every record once, one JSON object per line, the same objects as `--json`; paging (`--limit`, `--offset`) and
 * the time window (`--since`, `--before`) select what the store holds.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestStation, makeRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { createWorld, type World } from '../harness.js';
import { commitRecords } from './sync-fixture.js';

const N = 260;
let w: World;
let other: TestStation;

/** `node bin/station.mjs ...args --data-dir D`, stdout read through a pipe to its end. */
async function stationBin(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = spawn(process.execPath, ['bin/station.mjs', ...args, '--data-dir', w.dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
  return { code, out: Buffer.concat(out).toString('utf8'), err };
}

type Listed = {
  recordId: string;
  createdAt: string;
  record: { recordId: string; schema: string };
  chain: string[];
  jws: string;
};

beforeAll(async () => {
  w = await createWorld({ boards: [] });
  // Records of a test station committed into this station's database: the listing reads them as it reads its own.
  other = await createTestStation('records-cli', systemClock);
  // Format v3 (the station chain once) and, as older stations wrote them, v2 records (chain PEM, manifest JWS).
  const v2 = await makeRecords(other, systemClock, 3, { shareDeviceKey: true, format: 'v2' });
  commitRecords(w.engine.store, other, [
    ...v2,
    ...(await makeRecords(other, systemClock, N - 3, { shareDeviceKey: true })),
  ]);
}, 120_000);

afterAll(async () => {
  await w?.teardown();
});

describe('station records through a pipe', () => {
  it('--json of more than 1 MiB arrives whole and parses; --ndjson streams the same records, once each', async () => {
    const json = await stationBin('records', '--json', '--limit', '1000');
    expect(json.code, json.err).toBe(0);
    expect(Buffer.byteLength(json.out)).toBeGreaterThan(1024 * 1024);
    const all = JSON.parse(json.out) as Listed[];
    expect(all).toHaveLength(N);

    const nd = await stationBin('records', '--ndjson');
    expect(nd.code, nd.err).toBe(0);
    const lines = nd.out.split('\n');
    expect(lines.pop()).toBe('');
    const streamed = lines.map((l) => JSON.parse(l) as Listed);
    expect(streamed.map((r) => r.recordId)).toEqual(all.map((r) => r.recordId));
    expect(new Set(streamed.map((r) => r.recordId)).size).toBe(N);
    expect(streamed[7]).toEqual(all[7]);
    expect(streamed.every((r) => r.record.recordId === r.recordId)).toBe(true);
    // v2 and v3 rows alike: `chain` is the device certificate's issuing chain as PEM (v3: from the record's x5c).
    const schemas = new Set(all.map((r) => r.record.schema));
    expect([...schemas].sort()).toEqual(['line-station/provisioning-record/v2', 'line-station/provisioning-record/v3']);
    const issuing = other.chain.slice(1).map((d) => toPem(d, 'CERTIFICATE'));
    for (const r of all) expect(r.chain).toEqual(issuing);
  }, 120_000);

  it('pages with --limit/--offset and selects a time window with --since/--before', async () => {
    const all = JSON.parse((await stationBin('records', '--json', '--limit', '1000')).out) as Listed[];
    const page = await stationBin('records', '--json', '--limit', '50', '--offset', '100');
    expect((JSON.parse(page.out) as Listed[]).map((r) => r.recordId)).toEqual(
      all.slice(100, 150).map((r) => r.recordId),
    );
    const nd = await stationBin('records', '--ndjson', '--limit', '30', '--offset', '10');
    expect(nd.out.trim().split('\n')).toHaveLength(30);
    // Newest first: the window [since, before) of the 11th..60th newest records.
    const since = all[59]!.createdAt;
    const before = all[10]!.createdAt;
    const win = JSON.parse(
      (await stationBin('records', '--json', '--since', since, '--before', before)).out,
    ) as Listed[];
    const expected = all.filter((r) => r.createdAt >= since && r.createdAt < before).map((r) => r.recordId);
    expect(expected.length).toBeGreaterThan(0);
    expect(win.map((r) => r.recordId)).toEqual(expected);
  }, 120_000);

  it('refuses what it cannot do with a usage error (exit 2), before printing anything', async () => {
    const refused = [
      ['--json', '--ndjson'],
      ['--limit', '5000'],
      ['--limit', '-1'],
      ['--since', 'yesterday'],
    ];
    const results = await Promise.all(refused.map((args) => stationBin('records', ...args)));
    results.forEach((r, i) => {
      expect(r.code, refused[i]!.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toContain('--');
    });
  }, 120_000);
});
