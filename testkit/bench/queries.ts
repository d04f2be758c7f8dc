/**
 * Registry queries at scale (for `npm run bench`, scripts/bench/ingest.ts): a registry database filled with
 * `records` synthetic rows (multi-row INSERTs through the store's SQL port, 500 rows a statement; schema-valid rows
 * with short record_json/jws texts: the query cost is the index walk, not the record bytes), then the admin queries
 * over real HTTP with the admin token, each timed `samples` times: a device by serial number and by chip id, the
 * first page of a station's records, a page deep into a station's records (keyset cursor), a work order's page, a
 * station and work order page, a one-hour time range of a station, and the stats. 8 stations, 100 work orders,
 * one device in ten has a second (rotation) record.
 */
import 'reflect-metadata';
import { systemClock } from '../../core/ports.js';
import { enrollStation } from '../../registry/stations/service.js';
import { createTestStation } from '../registry/fixtures.js';
import { call } from '../registry/harness.js';
import { startBenchRegistry } from './registry.js';

export interface QueryFigure {
  readonly query: string;
  readonly p50: number;
  readonly p95: number;
}

export interface QueryBench {
  readonly backend: 'sqlite' | 'postgres';
  readonly records: number;
  readonly fillSeconds: number;
  readonly figures: readonly QueryFigure[];
}

const STATIONS = 8;
const WORK_ORDERS = 100;
const ROWS_PER_STATEMENT = 500;
const ROWS_PER_TRANSACTION = 50_000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
/** One record every 30 s of fleet time (a million records span about a year). */
const STEP_MS = 30_000;

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const chipOf = (d: number) => d.toString(16).padStart(16, '0');
const serialOf = (d: number) => `LS${d.toString(36).toUpperCase().padStart(8, '0')}`;

/** Row i of the synthetic fleet: devices numbered so that every tenth has a rotation record later on. */
function row(i: number, stations: readonly string[], batchId: string): unknown[] {
  const rotation = i % 11 === 10;
  const device = rotation ? i - 10 : i;
  const recordId = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
  const at = new Date(T0 + i * STEP_MS).toISOString();
  const station = stations[i % stations.length]!;
  const json = JSON.stringify({ recordId, station: { id: station }, board: { chipId: chipOf(device) } });
  return [
    recordId,
    station,
    i.toString(16).padStart(64, '0'),
    chipOf(device),
    serialOf(device),
    'LS-SIM-BASIC',
    `WO-BENCH-${i % WORK_ORDERS}`,
    rotation ? 'rotation' : 'initial',
    null,
    at,
    at,
    batchId,
    json,
    `bench.${recordId}.sig`,
  ];
}

/** Fill, then time the queries. PostgreSQL needs `pgUrl` (a fresh database is created and dropped). */
export async function benchQueries(o: {
  backend: 'sqlite' | 'postgres';
  records: number;
  samples?: number;
  pgUrl?: string;
}): Promise<QueryBench> {
  const samples = o.samples ?? 200;
  const adminToken = 'bench-admin-token-0123456789abcdef';
  const { reg, cleanup } = await startBenchRegistry({ backend: o.backend, pgUrl: o.pgUrl, adminToken });
  try {
    const stations: string[] = [];
    for (let s = 0; s < STATIONS; s++) {
      const st = await createTestStation(`bench-q-${s}`, systemClock);
      const e = await enrollStation(reg.context, { stationId: st.id, chainPem: st.chainPem });
      if (!e.ok) throw new Error(e.error.message);
      stations.push(st.id);
    }
    const sql = reg.db.sql;
    const columns =
      'record_id, station_id, sha256, chip_id, serial_number, model, work_order, kind, supersedes_record_id, completed_at, received_at, batch_id, record_json, jws';
    const tuple = `(${Array.from({ length: 14 }, () => '?').join(', ')})`;
    const t0 = performance.now();
    for (let start = 0; start < o.records; start += ROWS_PER_TRANSACTION) {
      const end = Math.min(o.records, start + ROWS_PER_TRANSACTION);
      await sql.transaction(async (tx) => {
        for (let i = start; i < end; i += ROWS_PER_STATEMENT) {
          const n = Math.min(ROWS_PER_STATEMENT, end - i);
          const batchId = globalThis.crypto.randomUUID();
          const args: unknown[] = [];
          for (let k = 0; k < n; k++) args.push(...row(i + k, stations, batchId));
          await tx.run(`INSERT INTO records (${columns}) VALUES ${Array(n).fill(tuple).join(', ')}`, args);
        }
      });
    }
    const fillSeconds = (performance.now() - t0) / 1000;

    const rnd = (n: number) => Math.floor(Math.random() * n);
    const device = () => {
      const i = rnd(o.records);
      return i % 11 === 10 ? i - 10 : i;
    };
    const hourAt = (i: number) => new Date(T0 + i * STEP_MS).toISOString();
    const queries: Array<[string, () => string]> = [
      ['device by serial number', () => `/v1/devices/${serialOf(device())}`],
      ['device by chip id', () => `/v1/devices/${chipOf(device())}`],
      ['records of a station, first page (100)', () => `/v1/records?station=${stations[rnd(STATIONS)]}&limit=100`],
      [
        'records of a station, a page deep in (keyset cursor)',
        () => `/v1/records?station=${stations[rnd(STATIONS)]}&limit=100&cursor=c${1 + rnd(o.records)}`,
      ],
      ['records of a work order, a page (100)', () => `/v1/records?workOrder=WO-BENCH-${rnd(WORK_ORDERS)}&limit=100`],
      [
        'records of a station and work order, a page (100)',
        () => `/v1/records?station=${stations[rnd(STATIONS)]}&workOrder=WO-BENCH-${rnd(WORK_ORDERS)}&limit=100`,
      ],
      [
        'records of a station in one hour (from..to)',
        () => {
          const i = rnd(o.records - 200);
          return `/v1/records?station=${stations[rnd(STATIONS)]}&from=${hourAt(i)}&to=${hourAt(i + 120)}&limit=100`;
        },
      ],
      ['stats', () => '/v1/stats'],
    ];
    const figures: QueryFigure[] = [];
    for (const [query, path] of queries) {
      const ms: number[] = [];
      for (let k = 0; k < samples + 5; k++) {
        const p = path();
        const t = performance.now();
        const r = await call(reg.url, 'GET', p, { bearer: adminToken });
        const d = performance.now() - t;
        if (r.status !== 200) throw new Error(`${p}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        if (k >= 5) ms.push(d); // the first few warm the caches
      }
      figures.push({ query, p50: pct(ms, 50), p95: pct(ms, 95) });
    }
    const stats = await call(reg.url, 'GET', '/v1/stats', { bearer: adminToken });
    const s = stats.json as { records: number };
    if (s.records !== o.records) throw new Error(`stats says ${s.records} records, filled ${o.records}`);
    return { backend: o.backend, records: o.records, fillSeconds, figures };
  } finally {
    await cleanup();
  }
}
