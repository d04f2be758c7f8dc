/**
 * Record verification worker (worker_threads): verifies a slice of a batch's records against the station's trust
 * material, exactly as the main thread would (registry/trust/records.ts `verifyRecord`), so ingest uses every
 * core. Started by ./pool.ts: compiled builds load this file as JavaScript, development through
 * ./verify.worker.dev.mjs, which registers tsx first. Imports core and registry/trust.
 */
import 'reflect-metadata';
import { parentPort } from 'node:worker_threads';
import { loadStationTrust, type StationTrust } from './verify.js';
import { checkBatchRecord, type SignerCache } from './records.js';
import { readShare, type Utf8Span, type VerifyAnswer, type VerifyJob } from './pool.js';
import type { PackedRecord } from '../../core/hq/pack.js';

const MAX_CACHED = 64;
const trusts = new Map<string, StationTrust>();

/** Certificate tables by id, the last 16 received (the pool counts on the last 4 it sent: ./pool.ts TABLES_SENT). */
const MAX_TABLES = 16;
const tables = new Map<number, readonly string[]>();

/** The job's certificate table: sent with it (kept for the next jobs of its batch), or sent before. */
function tableOf(job: VerifyJob): readonly string[] | undefined {
  if (job.certificates === null) return tables.get(job.tableId);
  tables.delete(job.tableId); // sent again: it is the newest now, as in the pool's count
  tables.set(job.tableId, job.certificates);
  if (tables.size > MAX_TABLES) tables.delete(tables.keys().next().value!);
  return job.certificates;
}

/** The station's trust material parsed once per `trustKey` (its chain and replaced keys), with this job's row. */
async function trustOf(job: VerifyJob): Promise<StationTrust | string> {
  const hit = trusts.get(job.trustKey);
  if (hit) return { ...hit, row: job.row };
  const t = await loadStationTrust(job.row, job.history);
  if (!t.ok) return t.error.message;
  if (trusts.size >= MAX_CACHED) trusts.delete(trusts.keys().next().value!);
  trusts.set(job.trustKey, t.value);
  return t.value;
}

async function run(job: VerifyJob): Promise<VerifyAnswer> {
  const certificates = tableOf(job);
  const trust = await trustOf(job);
  if (typeof trust === 'string') return { id: job.id, error: trust };
  // Not held (it cannot happen while the pool counts right): the caller verifies the job itself.
  if (!certificates) return { id: job.id, error: `certificate table ${job.tableId} is not held by this worker` };
  const now = new Date(job.now);
  const seen: SignerCache = new Map();
  const records =
    typeof job.records === 'string' ? (JSON.parse(job.records) as PackedRecord[]) : readShare(job.records);
  if (!records) return { id: job.id, malformed: true };
  // A compact JWS of a JSON-text slice the caller holds already; a share's it has not parsed.
  const held = typeof job.records === 'string';
  const out = records.map((r, i) => checkBatchRecord(trust, r, certificates, job.base + i, now, seen));
  // The rebuilt JWS texts as UTF-8 in one buffer the answer transfers.
  let size = 0;
  for (const [i, c] of out.entries())
    if (!held || typeof records[i] !== 'string') size += Buffer.byteLength(c.jws, 'utf8');
  const utf8 = Buffer.allocUnsafeSlow(size); // its own ArrayBuffer, exactly `size` bytes: transferable
  let at = 0;
  const checked = out.map(({ jws, check }, i) => {
    const c = check.ok ? { ok: true as const, record: { ...check.record, jws: '' } } : check;
    if (held && typeof records[i] === 'string') return { jws: null, check: c };
    const n = utf8.write(jws, at, 'utf8');
    const span: Utf8Span = [at, n];
    at += n;
    return { jws: span, check: c };
  });
  return { id: job.id, checked, utf8: utf8.buffer as ArrayBuffer };
}

parentPort?.on('message', (job: VerifyJob) => {
  run(job).then(
    (answer) => parentPort!.postMessage(answer, 'utf8' in answer ? [answer.utf8] : []),
    (e: unknown) => parentPort!.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
