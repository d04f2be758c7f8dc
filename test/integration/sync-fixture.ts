/**
 * Sync test fixtures: a station database filled with many realistic signed records (testkit/registry/fixtures.ts:
 * test-signer station PKI whose chain is enrolled at the registry, device certificates from the station CA,
 * signed manifests and records) written through the real Store (createRun, certify checkpoint with the issued
 * certificate, completeRun), so the outbox trigger queues them as in production; and an in-process registry
 * whose receipt key is a WebCrypto test signer with a self-signed certificate.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootCertificate } from '../../core/pki/ca.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { toPem } from '../../core/pki/pem.js';
import { systemClock, type Logger } from '../../core/ports.js';
import type { Store } from '../../core/provisioning/store.js';
import { openStationDb, type SqliteStore, type StationDb } from '../../native/store/index.js';
import { fakeCertificate } from '../../testkit/store-fixtures.js';
import { startRegistry, type RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import type { MadeRecord, TestStation } from '../../testkit/registry/fixtures.js';

export const quiet: Logger = { log() {}, child: () => quiet };

/** A logger that keeps lines in memory (printed on failure). */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  const mk = (prefix: string): Logger => ({
    log: (level, msg, ctx) => void lines.push(`${level} ${prefix} ${msg} ${ctx ? JSON.stringify(ctx) : ''}`),
    child: (p) => mk(`${prefix}${p}`),
  });
  return Object.assign(mk(''), { lines });
}

/** A new station database in a temp dir. */
export function createStationDb(synchronous: 'FULL' | 'NORMAL' = 'NORMAL'): {
  dir: string;
  file: string;
  store: SqliteStore;
  /** Every port of the database on the store's connection (closing the store closes it). */
  db: StationDb;
} {
  const dir = mkdtempSync(join(tmpdir(), 'ls-sync-'));
  const file = join(dir, 'station.db');
  const s = openStationDb(file, { synchronous });
  if (!s.ok) throw new Error(s.error.message);
  return { dir, file, store: s.value.store, db: s.value };
}

/** Commit `records` through the Store as the flow does (one run each); returns the elapsed milliseconds. */
export function commitRecords(store: Store, station: TestStation, records: readonly MadeRecord[]): number {
  const t0 = performance.now();
  for (const m of records) {
    const r = m.record;
    const run = store.createRun({
      runId: r.runId,
      chipId: r.board.chipId,
      serialNumber: r.board.serialNumber,
      port: r.board.port,
      workOrder: r.workOrder,
      operator: r.operator,
      stationId: station.id,
      kind: 'initial',
      supersedesRecordId: null,
      startedAt: r.startedAt,
    });
    // The fixture records share device certificates; the station's issuance log gets one entry per run.
    const issued = fakeCertificate(run);
    store.checkpoint(run.runId, 'certify', {}, { serialNumber: issued.serialNumber }, issued);
    store.completeRun(run.runId, {
      recordId: m.recordId,
      runId: run.runId,
      chipId: run.chipId,
      serialNumber: run.serialNumber,
      workOrder: run.workOrder,
      operator: run.operator,
      kind: 'initial',
      supersedesRecordId: null,
      outcome: 'provisioned',
      certificateSerial: issued.serialNumber,
      recordJson: m.json,
      jws: m.jws,
      recordSha256: m.sha256,
    });
  }
  return performance.now() - t0;
}

export interface TestRegistry {
  readonly reg: RunningRegistry;
  readonly url: string;
  readonly port: number;
  readonly certificateDer: Uint8Array;
  readonly certificatePem: string;
  /** Stop and start again on the same port and database (a registry restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** An in-process registry on 127.0.0.1 (SQLite in `dir`) with `stations` enrolled. */
export async function startTestRegistry(dir: string, stations: readonly TestStation[]): Promise<TestRegistry> {
  const signer = await createTestSigner('P-256');
  const cert = await createRootCertificate({
    signer,
    subject: { commonName: 'Test Registry' },
    validityDays: 30,
    clock: systemClock,
  });
  if (!cert.ok) throw new Error(cert.error.message);
  const db = `sqlite:${join(dir, 'registry.db')}`;
  const start = async (port: number) => {
    const r = await startRegistry({
      db,
      port,
      signer,
      registryChain: [cert.value],
      registryId: 'registry-test',
      clock: systemClock,
      logger: quiet,
    });
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  };
  let reg = await start(0);
  for (const s of stations) {
    const e = await enrollStation(reg.context, { stationId: s.id, chainPem: s.chainPem });
    if (!e.ok) throw new Error(e.error.message);
  }
  const port = reg.port;
  return {
    get reg() {
      return reg;
    },
    url: reg.url,
    port,
    certificateDer: cert.value,
    certificatePem: toPem(cert.value, 'CERTIFICATE'),
    async restart() {
      await reg.close();
      await new Promise((r) => setTimeout(r, 100));
      reg = await start(port);
    },
    close: () => reg.close(),
  };
}
