/**
 * Ingest benchmark (for `npm run bench`): realistic signed records pushed over real HTTP on 127.0.0.1 in
 * batches of 500 (format v2: packed, certificates once) by 1 or 8 enrolled stations at once, with full verification (request signature, record
 * and manifest signatures, device certificate chain, schema) and a signed receipt per batch.
 * Record generation is not timed. PostgreSQL needs `pgUrl` or LINE_STATION_TEST_PG_URL (a fresh database is
 * created and dropped).
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { systemClock } from '../../core/ports.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { createTestSigner } from '../pki/test-signer.js';
import { MAX_BATCH_RECORDS, signRequest, type BatchResponse } from '../../core/hq/protocol.js';
import { packRecords } from '../../core/hq/pack.js';
import { startRegistry, type RegistryHttpOptions, type RunningRegistry } from '../../registry/http/server.js';
import { audienceOf } from '../../registry/common/context.js';
import { enrollStation } from '../../registry/stations/service.js';
import { createTestStation, makeManyRecords, type MadeRecord, type TestStation } from '../registry/fixtures.js';
import { startWindow } from './window.js';

export interface BenchResult {
  readonly backend: 'sqlite' | 'postgres';
  readonly stations: number;
  readonly records: number;
  readonly seconds: number;
  readonly recordsPerSecond: number;
  /** CPU time of the whole process (main thread and verification workers) per record, in ms. */
  readonly cpuMsPerRecord: number;
  /** CPU time of the main thread (the registry's event loop and the bench's client) per record, in ms (Linux). */
  readonly mainCpuMsPerRecord: number | null;
}

const quiet = { log() {}, child: () => quiet };

/** A registry for a bench on a fresh database (SQLite in a temp dir, or a new PostgreSQL database). */
export async function startBenchRegistry(o: {
  backend: 'sqlite' | 'postgres';
  pgUrl?: string | undefined;
  adminToken?: string;
  http?: RegistryHttpOptions;
}): Promise<{ reg: RunningRegistry; cleanup: () => Promise<void> }> {
  let dbUrl: string;
  let cleanup: () => Promise<void>;
  if (o.backend === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'ls-registry-bench-'));
    dbUrl = `sqlite:${join(dir, 'registry.db')}`;
    cleanup = () => rm(dir, { recursive: true, force: true });
  } else {
    const base = o.pgUrl ?? process.env['LINE_STATION_TEST_PG_URL'];
    if (!base) throw new Error('bench (postgres): set LINE_STATION_TEST_PG_URL (see scripts/pg-test.sh)');
    const name = `ls_bench_${Date.now().toString(36)}`;
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    const u = new URL(base);
    u.pathname = `/${name}`;
    dbUrl = u.toString();
    cleanup = async () => {
      const d = new pg.Client({ connectionString: base });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    };
  }
  const signer = await createTestSigner('P-256');
  const cert = await createRootCertificate({
    signer,
    subject: { commonName: 'Bench Registry' },
    validityDays: 30,
    clock: systemClock,
  });
  if (!cert.ok) throw new Error(cert.error.message);
  const reg = await startRegistry({
    db: dbUrl,
    port: 0,
    signer,
    registryChain: [cert.value],
    registryId: 'bench',
    clock: systemClock,
    logger: quiet,
    ...(o.adminToken ? { adminToken: o.adminToken } : {}),
    ...(o.http ? { http: o.http } : {}),
  });
  if (!reg.ok) {
    await cleanup();
    throw new Error(reg.error.message);
  }
  const running = reg.value;
  return {
    reg: running,
    cleanup: async () => {
      await running.close();
      await cleanup();
    },
  };
}

/** Measure ingest throughput (records/s) with full verification. */
export async function benchIngest(o: {
  backend: 'sqlite' | 'postgres';
  stations: 1 | 8;
  records: number;
  pgUrl?: string;
}): Promise<BenchResult> {
  // Every station's batch in flight at once (the default of 4 would answer the 8-station run 503 REGISTRY_BUSY).
  const { reg, cleanup } = await startBenchRegistry({
    backend: o.backend,
    pgUrl: o.pgUrl,
    http: { maxLargeBodies: 16 },
  });
  try {
    const per = Math.ceil(o.records / o.stations);
    const fleet: Array<{ station: TestStation; records: MadeRecord[] }> = [];
    for (let i = 0; i < o.stations; i++) {
      const station = await createTestStation(`bench-${i}`, systemClock);
      const e = await enrollStation(reg.context, { stationId: station.id, chainPem: station.chainPem });
      if (!e.ok) throw new Error(e.error.message);
      fleet.push({
        station,
        records: await makeManyRecords(station, systemClock, Math.min(per, o.records - i * per), 64),
      });
    }
    // The batch bodies are the stations' work (format v2: certificates once, records packed): made before the clock
    // starts. Timed: signing each request, HTTP, and everything the registry does.
    const bodies = fleet.map(({ records }) => {
      // As a station sends it: the body's UTF-8 bytes, made once (hashed for the request signature and sent as they are).
      const out: Buffer[] = [];
      for (let i = 0; i < records.length; i += MAX_BATCH_RECORDS)
        out.push(
          Buffer.from(
            JSON.stringify({
              batchId: globalThis.crypto.randomUUID(),
              ...packRecords(records.slice(i, i + MAX_BATCH_RECORDS).map((r) => r.jws)),
            }),
          ),
        );
      return out;
    });
    const window = await startWindow(`ingest-${o.backend}-${o.stations}`);
    let stored = 0;
    await Promise.all(
      fleet.map(async ({ station }, k) => {
        for (const body of bodies[k]!) {
          const auth = await signRequest(
            station.signer,
            station.id,
            'POST',
            '/v1/batches',
            body,
            systemClock,
            audienceOf(reg.context),
          );
          if (!auth.ok) throw new Error(auth.error.message);
          const res = await fetch(`${reg.url}/v1/batches`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: auth.value },
            body,
          });
          if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
          stored += ((await res.json()) as BatchResponse).summary.accepted;
        }
      }),
    );
    const w = await window.stop();
    if (stored !== o.records) throw new Error(`stored ${stored} of ${o.records}`);
    return {
      backend: o.backend,
      stations: o.stations,
      records: o.records,
      seconds: w.seconds,
      recordsPerSecond: o.records / w.seconds,
      cpuMsPerRecord: w.processMs / o.records,
      mainCpuMsPerRecord: w.mainMs === null ? null : w.mainMs / o.records,
    };
  } finally {
    await cleanup();
  }
}
