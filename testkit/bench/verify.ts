/**
 * The verification workers' CPU per record, alone (`npx tsx testkit/bench/verify.ts [records] [rounds]`): a batch of
 * realistic signed records (testkit/registry/fixtures.ts, 64 device certificates as in testkit/bench/registry.ts),
 * packed as format v2, verified on this thread exactly as a verification worker does (registry/trust/verify.worker.ts:
 * the slice's JSON text parsed, then checkBatchRecord per record with one SignerCache), `rounds` times after one
 * warm-up round. Prints the process CPU (user+sys, all threads: GC helpers included) and the wall time per record.
 * Every record must be accepted (a round that refuses one stops the bench). Record generation is not timed.
 */
import 'reflect-metadata';
import { systemClock } from '../../core/ports.js';
import type { StationRow } from '../../core/hq/registry-db.js';
import { packRecords, type PackedRecord } from '../../core/hq/pack.js';
import { loadStationTrust } from '../../registry/trust/verify.js';
import { checkBatchRecord, type SignerCache } from '../../registry/trust/records.js';
import { createTestStation, makeManyRecords } from '../registry/fixtures.js';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 500);
  const rounds = Number(process.argv[3] ?? 10);
  const station = await createTestStation('bench-verify', systemClock);
  const made = await makeManyRecords(station, systemClock, n, 64);
  const { certificates, records } = packRecords(made.map((m) => m.jws));
  const text = JSON.stringify(records);
  const row: StationRow = {
    stationId: station.id,
    chainPem: station.chainPem,
    certificateSha256: made[0]!.record.station.certificateSha256,
    issuingCaSha256: '',
    rootSha256: '',
    workOrders: [station.workOrder],
    enrolledAt: new Date().toISOString(),
    revokedAt: null,
    lastSyncAt: null,
  };
  const trust = await loadStationTrust(row);
  if (!trust.ok) throw new Error(trust.error.message);
  const round = (): void => {
    const now = new Date();
    const seen: SignerCache = new Map();
    const parsed = JSON.parse(text) as PackedRecord[];
    parsed.forEach((r, i) => {
      const c = checkBatchRecord(trust.value, r, certificates, i, now, seen);
      if (!c.check.ok) throw new Error(`record ${i} refused: ${c.check.result.reason} ${c.check.result.message}`);
    });
  };
  round();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < rounds; k++) round();
  const cpu = process.cpuUsage(cpu0);
  const ms = performance.now() - t0;
  const total = n * rounds;
  console.log(
    `verify ${total} records (${n} a batch, ${certificates.length} table certificates): CPU ${((cpu.user + cpu.system) / 1000 / total).toFixed(3)} ms/record (user ${(cpu.user / 1000 / total).toFixed(3)}), wall ${(ms / total).toFixed(3)} ms/record, ${Math.round(total / (ms / 1000))} records/s on one thread`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
