/**
 * The verification pool's scheduling (registry/trust/pool.ts): a batch is cut into jobs of about 64 records that the
 * workers take from a queue, the answers come back in the batch's order; a certificate table goes to a worker once
 * and later jobs name it (batches of two stations in flight at once); each worker parses a station's chain once
 * but checks every job against the station row it is sent with (its work orders), and a chain it has not parsed
 * (another key under the same station id) is parsed again; workers stopped while jobs are queued or running: every
 * record still gets the verdict of the calling thread.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { packRecords } from '../../core/hq/pack.js';
import {
  createTestStation,
  enrolledTrust,
  makeManyRecords,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import { verifyInline, verifyPool } from './pool.js';
import type { CheckedRecord } from './records.js';
import type { StationTrust } from './verify.js';

let A: TestStation;
let trust: StationTrust;
let packed: ReturnType<typeof packRecords>;
let jws: string[];

beforeAll(async () => {
  A = await createTestStation('station-pool', systemClock);
  trust = await enrolledTrust(A);
  jws = (await makeManyRecords(A, systemClock, 300, 8)).map((m) => m.jws);
  packed = packRecords(jws);
}, 60_000);
afterAll(async () => {
  await verifyPool().close();
});

const verdicts = (checked: readonly CheckedRecord[]) => checked.map((c) => (c.check.ok ? 'ok' : c.check.result.reason));

describe('verification pool: jobs, order, trust per job', () => {
  it('answers a 300-record batch (5 jobs) in order, each record as the calling thread does', async () => {
    const now = new Date();
    const pooled = await verifyPool().verify(trust, packed.records, packed.certificates, now);
    const inline = verifyInline(trust, packed.records, packed.certificates, now);
    expect(pooled.map((c) => c.jws)).toEqual(jws);
    expect(pooled.map((c) => c.check)).toEqual(inline.map((c) => c.check));
    expect(new Set(verdicts(pooled))).toEqual(new Set(['ok']));
  });

  it('checks each job against the row it is sent with, and parses another chain under the same id', async () => {
    const now = new Date();
    // Warm: the workers hold A's parsed chain.
    expect(new Set(verdicts(await verifyPool().verify(trust, packed.records, packed.certificates, now)))).toEqual(
      new Set(['ok']),
    );
    // The same chain, the row changed (another work order, a later sync): every record refused by the workers.
    const moved: StationTrust = {
      ...trust,
      row: { ...trust.row, workOrders: ['WO-ELSEWHERE'], lastSyncAt: now.toISOString() },
    };
    const refused = await verifyPool().verify(moved, packed.records, packed.certificates, now);
    expect(new Set(verdicts(refused))).toEqual(new Set(['work-order-not-allowed']));
    expect(refused.map((c) => c.check)).toEqual(
      verifyInline(moved, packed.records, packed.certificates, now).map((c) => c.check),
    );
    // Another station key enrolled under the same id (its own chain): A's records do not verify with it.
    const twin = await enrolledTrust(await createTestStation(A.id, systemClock));
    const other = await verifyPool().verify(twin, packed.records, packed.certificates, now);
    expect(new Set(verdicts(other))).toEqual(new Set(['signer-mismatch']));
    // And the row back as it was: accepted again.
    expect(new Set(verdicts(await verifyPool().verify(trust, packed.records, packed.certificates, now)))).toEqual(
      new Set(['ok']),
    );
  });

  it('sends each certificate table to a worker once: batches of two stations in flight at once, each read with its own', async () => {
    const B = await createTestStation('station-pool-b', systemClock);
    const trustB = await enrolledTrust(B);
    const jwsB = (await makeManyRecords(B, systemClock, 200, 6)).map((m) => m.jws);
    const packedB = packRecords(jwsB);
    expect(packedB.certificates).not.toEqual(packed.certificates);
    const now = new Date();
    // Six batches (four tables: two of them the same arrays again) queued together: 26 jobs over the workers.
    const tableA2 = [...packed.certificates];
    const tableB2 = [...packedB.certificates];
    const runs = [
      [trust, packed.records, packed.certificates, jws],
      [trustB, packedB.records, packedB.certificates, jwsB],
      [trust, packed.records, tableA2, jws],
      [trustB, packedB.records, tableB2, jwsB],
      [trust, packed.records, packed.certificates, jws],
      [trustB, packedB.records, packedB.certificates, jwsB],
    ] as const;
    const answers = await Promise.all(runs.map(([t, r, c]) => verifyPool().verify(t, r, c, now)));
    for (const [k, [t, r, c, expected]] of runs.entries()) {
      expect(answers[k]!.map((x) => x.jws)).toEqual(expected);
      expect(answers[k]!.map((x) => x.check)).toEqual(verifyInline(t, r, c, now).map((x) => x.check));
      expect(new Set(verdicts(answers[k]!))).toEqual(new Set(['ok']));
    }
  });

  it('gives every record its verdict when the workers stop with jobs running and queued', async () => {
    const now = new Date();
    const inline = verifyInline(trust, packed.records, packed.certificates, now);
    const batches = [0, 1, 2].map(() => verifyPool().verify(trust, packed.records, packed.certificates, now));
    await new Promise((r) => setImmediate(r));
    await verifyPool().close(); // the running jobs fail over to this thread; the queued ones go to new workers
    for (const b of await Promise.all(batches)) {
      expect(b.map((c) => c.jws)).toEqual(jws);
      expect(b.map((c) => c.check)).toEqual(inline.map((c) => c.check));
    }
  });
});
