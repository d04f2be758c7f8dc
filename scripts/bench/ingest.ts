/**
 * The headquarters part of `npm run bench` (scripts/bench.ts calls `benchHeadquarters`; alone:
 * `npx tsx scripts/bench/ingest.ts [--query-records N] [--parts ingest,bundle,queries]`): registry ingest with full verification (SQLite and, with
 * LINE_STATION_TEST_PG_URL set, PostgreSQL; 1 and 8 stations), the raw node:crypto P-256 verification rate of one
 * core measured in the same run and the ratio of ingest to it, bundle size per record (format v2, and v1 for
 * comparison), bundle export and import rates, and the registry queries at a million records (p50 / p95 per query).
 * Figures go to docs/benchmarks.md by hand, with the date.
 */
import 'reflect-metadata';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../../core/ports.js';
import { createBundle, createBundleV2, signRequest, type BundleResponse } from '../../core/hq/protocol.js';
import { benchIngest } from '../../testkit/bench/registry.js';
import { startWindow } from '../../testkit/bench/window.js';
import { benchQueries } from '../../testkit/bench/queries.js';
import { createTestStation, makeManyRecords } from '../../testkit/registry/fixtures.js';
import { audienceAt } from '../../testkit/registry/harness.js';
import { startTestRegistry } from '../../test/integration/sync-fixture.js';

const INGEST_RECORDS = 4000;
const BUNDLE_RECORDS = 2000;
/** ECDSA verifications per record: the record, its manifest, its device certificate. */
const VERIFIES_PER_RECORD = 3;

const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

/** node:crypto ECDSA P-256 verifications per second on one core (a record-sized message, the same key). */
function rawVerifyRate(seconds = 2): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.alloc(8 * 1024, 7);
  const sig = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 100; i++) verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    n += 100;
  }
  return n / ((performance.now() - t0) / 1000);
}

async function ingestFigures(pgUrl: string | undefined): Promise<void> {
  const cores = availableParallelism();
  // The process's first records: the verification workers start and V8 compiles the hot code while they run. A
  // registry runs for days: the rows after it are its steady state (this one is printed apart, not a figure).
  const cold = await benchIngest({ backend: 'sqlite', stations: 8, records: INGEST_RECORDS });
  const before = rawVerifyRate();
  const rows: Array<[string, number, number, number | null]> = [];
  for (const backend of ['sqlite', 'postgres'] as const) {
    if (backend === 'postgres' && !pgUrl) {
      console.log('| PostgreSQL | skipped: LINE_STATION_TEST_PG_URL not set |');
      continue;
    }
    for (const stations of [1, 8] as const) {
      const r = await benchIngest({ backend, stations, records: INGEST_RECORDS, ...(pgUrl ? { pgUrl } : {}) });
      rows.push([
        `${backend}, ${stations} station${stations > 1 ? 's' : ''}`,
        r.recordsPerSecond,
        r.cpuMsPerRecord,
        r.mainCpuMsPerRecord,
      ]);
    }
  }
  rows.push([
    `sqlite, 8 stations, the process's first ${fmt(INGEST_RECORDS)} records (workers starting, code not yet compiled: not the figure)`,
    cold.recordsPerSecond,
    cold.cpuMsPerRecord,
    cold.mainCpuMsPerRecord,
  ]);
  const after = rawVerifyRate();
  const raw = (before + after) / 2;
  const ceiling = (raw * cores) / VERIFIES_PER_RECORD;
  console.log('');
  console.log(
    `| registry ingest, full verification, ${fmt(INGEST_RECORDS)} records in batches of 500 (format v2), ${cores} cores, steady state (after the process's first ${fmt(INGEST_RECORDS)}) | records/s | ÷ raw verify rate (1 core) | ÷ verify ceiling | CPU per record (process, all threads) | main thread CPU per record (registry + bench client) |`,
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [name, rate, cpu, main] of rows)
    console.log(
      `| ${name} | ${fmt(rate)} | ${fmt(rate / raw, 3)} | ${fmt((rate / ceiling) * 100, 1)} % | ${fmt(cpu, 2)} ms = ${fmt(cpu / (1000 / raw), 1)} raw verifications | ${main === null ? '-' : `${fmt(main, 3)} ms`} |`,
    );
  console.log(
    `| raw node:crypto ECDSA P-256 verify rate, 1 core (before / after the ingest runs) | ${fmt(before)} / ${fmt(after)} verifications/s | | | |`,
  );
  console.log(
    `| verify ceiling: ${cores} cores × raw rate ÷ ${VERIFIES_PER_RECORD} verifications per record (record, manifest, device certificate) | ${fmt(ceiling)} records/s | | | |`,
  );
}

async function bundleFigures(dir: string): Promise<void> {
  const station = await createTestStation('bench-bundle', systemClock);
  // Every record with its own device certificate, as on a line (only the station chain is shared).
  const made = await makeManyRecords(station, systemClock, BUNDLE_RECORDS, BUNDLE_RECORDS);
  const records = made.map((m) => m.jws);
  const common = { signer: station.signer, chain: station.chain, stationId: station.id, records, clock: systemClock };
  const v1 = await createBundle(common);
  if (!v1.ok) throw new Error(v1.error.message);
  const t = performance.now();
  const v2 = await createBundleV2(common);
  if (!v2.ok) throw new Error(v2.error.message);
  const exportS = (performance.now() - t) / 1000;
  const v1Bytes = Buffer.byteLength(v1.value.jws);
  const v2Bytes = Buffer.byteLength(v2.value.content);
  const reg = await startTestRegistry(mkdtempSync(join(dir, 'reg-')), [station]);
  try {
    const body = JSON.stringify({ bundle: JSON.parse(v2.value.content) as unknown });
    const aud = await audienceAt(reg.url);
    const window = await startWindow('bundle-import');
    const auth = await signRequest(station.signer, station.id, 'POST', '/v1/bundles', body, systemClock, aud);
    if (!auth.ok) throw new Error(auth.error.message);
    const res = await fetch(`${reg.url}/v1/bundles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: auth.value },
      body,
    });
    const answer = (await res.json()) as BundleResponse;
    const w = await window.stop();
    const importS = w.seconds;
    const importCpuMs = w.processMs / BUNDLE_RECORDS;
    if (!res.ok || answer.summary.accepted !== BUNDLE_RECORDS)
      throw new Error(`bundle import failed: ${res.status} ${JSON.stringify(answer).slice(0, 200)}`);
    console.log('');
    console.log(`| bundle of ${fmt(BUNDLE_RECORDS)} records | value |`);
    console.log('| --- | --- |');
    console.log(
      `| size per record, format v2 (${fmt(v2Bytes / 2 ** 20, 1)} MiB) | ${fmt(v2Bytes / BUNDLE_RECORDS)} B (${fmt(v2Bytes / BUNDLE_RECORDS / 1024, 2)} KiB) |`,
    );
    console.log(
      `| size per record, format v1, for comparison (${fmt(v1Bytes / 2 ** 20, 1)} MiB) | ${fmt(v1Bytes / BUNDLE_RECORDS)} B (${fmt(v1Bytes / BUNDLE_RECORDS / 1024, 2)} KiB) |`,
    );
    console.log(`| export at the station (pack, sign the manifest) | ${fmt(BUNDLE_RECORDS / exportS)} records/s |`);
    console.log(
      `| import at the registry (rebuild, verify everything, store, sign the receipt) | ${fmt(BUNDLE_RECORDS / importS)} records/s (CPU per record, process, all threads: ${fmt(importCpuMs, 2)} ms; main thread ${w.mainMs === null ? '-' : `${fmt(w.mainMs / BUNDLE_RECORDS, 3)} ms`}) |`,
    );
  } finally {
    await reg.close();
  }
}

async function queryFigures(pgUrl: string | undefined, records: number): Promise<void> {
  console.log('');
  console.log(
    `| registry query at ${fmt(records)} records (HTTP, admin token) | SQLite p50 / p95 | PostgreSQL p50 / p95 |`,
  );
  console.log('| --- | --- | --- |');
  const sqlite = await benchQueries({ backend: 'sqlite', records });
  const postgres = pgUrl ? await benchQueries({ backend: 'postgres', records, pgUrl }) : null;
  for (const [i, f] of sqlite.figures.entries()) {
    const p = postgres?.figures[i];
    console.log(
      `| ${f.query} | ${fmt(f.p50, 1)} / ${fmt(f.p95, 1)} ms | ${p ? `${fmt(p.p50, 1)} / ${fmt(p.p95, 1)} ms` : 'skipped: LINE_STATION_TEST_PG_URL not set'} |`,
    );
  }
  console.log(
    `| filling the ${fmt(records)} rows (multi-row INSERT, 500 rows a statement) | ${fmt(sqlite.fillSeconds, 1)} s | ${postgres ? `${fmt(postgres.fillSeconds, 1)} s` : '-'} |`,
  );
}

type Part = 'ingest' | 'bundle' | 'queries';

/** Print every headquarters figure of `npm run bench` (or only `parts`). */
export async function benchHeadquarters(o: { queryRecords?: number; parts?: readonly Part[] } = {}): Promise<void> {
  const parts = new Set<Part>(o.parts ?? ['ingest', 'bundle', 'queries']);
  const pgUrl = process.env['LINE_STATION_TEST_PG_URL'];
  const dir = mkdtempSync(join(tmpdir(), 'ls-bench-hq-'));
  console.log('');
  console.log(
    `## Headquarters (${new Date().toISOString()}, ${availableParallelism()} cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')})`,
  );
  try {
    if (parts.has('ingest')) await ingestFigures(pgUrl);
    if (parts.has('bundle')) await bundleFigures(dir);
    if (parts.has('queries')) await queryFigures(pgUrl, o.queryRecords ?? 1_000_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const n = Number(arg('--query-records') ?? 1_000_000);
  const parts = (arg('--parts') ?? 'ingest,bundle,queries').split(',') as Part[];
  benchHeadquarters({ queryRecords: n, parts }).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
