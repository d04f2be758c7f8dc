/**
 * The verification workers' CPU per record, alone (`npx tsx testkit/bench/verify.ts [records] [rounds] [devices]
 * [v3|v2|v1]`): a batch of realistic signed records (testkit/registry/fixtures.ts; `devices` device certificates, 64 as
 * in testkit/bench/registry.ts, or one per record as on a real line; record format v3 as the station writes it, or v2),
 * packed as format v2, verified on this thread exactly as a verification worker does (registry/trust/verify.worker.ts:
 * the slice's JSON text parsed, then checkBatchRecord per record with one SignerCache), `rounds` times after one
 * warm-up round. Prints the process CPU (user+sys, all threads: GC helpers included) and the wall time per record,
 * and the floor: the CPU of the same records' three ECDSA verifications alone (node:crypto, same keys and bytes).
 * Every record must be accepted (a round that refuses one stops the bench). Record generation is not timed.
 */
import 'reflect-metadata';
import { verify } from 'node:crypto';
import { fromPem } from '../../core/pki/pem.js';
import { certificateParts } from '../../core/pki/der.js';
import { systemClock } from '../../core/ports.js';
import { jwsHeaderOf, recordManifestJws } from '../../core/provisioning/record-manifest.js';
import { packRecords, type PackedRecord } from '../../core/hq/pack.js';
import { checkBatchRecord, type SignerCache } from '../../registry/trust/records.js';
import { createTestStation, enrolledTrust, makeManyRecords } from '../registry/fixtures.js';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 500);
  const rounds = Number(process.argv[3] ?? 10);
  const devices = Number(process.argv[4] ?? 64);
  const format = (process.argv[5] ?? 'v3') as 'v1' | 'v2' | 'v3';
  if (!['v1', 'v2', 'v3'].includes(format)) throw new Error('the record format is v1, v2 or v3');
  const station = await createTestStation('bench-verify', systemClock);
  const made = await makeManyRecords(station, systemClock, n, devices, { format });
  const { certificates, records } = packRecords(made.map((m) => m.jws));
  const text = JSON.stringify(records);
  const trust = await enrolledTrust(station);
  const round = (): void => {
    const now = new Date();
    const seen: SignerCache = new Map();
    const parsed = JSON.parse(text) as PackedRecord[];
    parsed.forEach((r, i) => {
      const c = checkBatchRecord(trust, r, certificates, i, now, seen);
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
  // The floor: the record's three ECDSA verifications alone (record, manifest, device certificate), same bytes.
  const sigs = made.map((m) => {
    const [h, p, s] = m.jws.split('.') as [string, string, string];
    const mjws = recordManifestJws(m.record, jwsHeaderOf(m.jws));
    if (!mjws.ok) throw new Error(`floor: ${mjws.error}`);
    const [mh, mp, ms] = mjws.value.split('.') as [string, string, string];
    const der = fromPem(m.record.certificate.pem);
    const cert = der.ok ? certificateParts(der.value) : null;
    if (!cert) throw new Error('floor: unreadable device certificate');
    return [
      [Buffer.from(`${h}.${p}`), Buffer.from(s, 'base64url')],
      [Buffer.from(`${mh}.${mp}`), Buffer.from(ms, 'base64url')],
      [cert.tbs, cert.signature],
    ] as const;
  });
  const key = trust.currentKey.keyObject;
  const floor = (): void => {
    for (const [r, m, c] of sigs) {
      const ok =
        verify('sha256', r[0], { key, dsaEncoding: 'ieee-p1363' }, r[1]) &&
        verify('sha256', m[0], { key, dsaEncoding: 'ieee-p1363' }, m[1]) &&
        verify('sha256', c[0], trust.ca.key, c[1]);
      if (!ok) throw new Error('floor: a signature does not verify');
    }
  };
  floor();
  const f0 = process.cpuUsage();
  for (let k = 0; k < rounds; k++) floor();
  const fc = process.cpuUsage(f0);
  console.log(
    `floor: the 3 signature verifications alone: CPU ${((fc.user + fc.system) / 1000 / total).toFixed(3)} ms/record`,
  );
  console.log(
    `verify ${total} ${format} records of ${Math.round(made.reduce((a, m) => a + m.jws.length, 0) / n)} JWS characters (${n} a batch, ${certificates.length} table certificates): CPU ${((cpu.user + cpu.system) / 1000 / total).toFixed(3)} ms/record (user ${(cpu.user / 1000 / total).toFixed(3)}), wall ${(ms / total).toFixed(3)} ms/record, ${Math.round(total / (ms / 1000))} records/s on one thread`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
