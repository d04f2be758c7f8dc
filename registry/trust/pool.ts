/**
 * The record verification pool: a batch's records are verified in worker threads (./verify.worker.ts), one slice
 * per worker, with the same function the main thread would run (records.ts `verifyRecord`): every check stays,
 * only the cores change. One pool per process, sized to the cores (`os.availableParallelism()`, or
 * LINE_STATION_VERIFY_WORKERS; 0 verifies on the calling thread). Workers start on first use, hold the event loop
 * only while they have work, and are rebuilt after a crash; a batch whose worker fails is verified on the calling
 * thread instead (same result, slower). Imports core and registry/trust.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { StationRow } from '../../core/hq/registry-db.js';
import type { PackedRecord } from '../../core/hq/pack.js';
import { checkBatchRecord, type CheckedRecord, type SignerCache } from './records.js';
import type { StationKeyHistoryRow, StationTrust } from './verify.js';

/** A slice of a batch for one worker. */
export interface VerifyJob {
  readonly id: number;
  /** Identifies the trust material (row + history) so the worker parses it once. */
  readonly trustKey: string;
  readonly row: StationRow;
  readonly history: readonly StationKeyHistoryRow[];
  /**
   * The slice's records (PackedRecord[]) as JSON text: one string is copied to the worker at memory speed, where a
   * structured clone of the packed records' object graph cost more on the main thread than JSON.stringify does.
   */
  readonly records: string;
  /** The certificate table the packed records refer to (format v2; empty for v1). */
  readonly certificates: readonly string[];
  /** Index of records[0] in the batch. */
  readonly base: number;
  /** The registry clock (ms since the epoch). */
  readonly now: number;
}

/**
 * A worker's answer: the checked records in order, or why it could not run. A record sent as a compact JWS comes
 * back without it (`jws: null`, the caller has it); a packed one with the JWS it was rebuilt to.
 */
export type VerifyAnswer =
  | { readonly id: number; readonly checked: Array<{ jws: string | null; check: CheckedRecord['check'] }> }
  | { readonly id: number; readonly error: string };

/** Below this many records a batch is verified on the calling thread (a message round trip costs more). */
const MIN_PARALLEL = 16;

interface Slot {
  worker: Worker;
  busy: number;
}

/** The worker entry: compiled JavaScript beside this module, else the development bootstrap (tsx). */
function workerEntry(): URL {
  const compiled = new URL('./verify.worker.js', import.meta.url);
  return existsSync(fileURLToPath(compiled)) ? compiled : new URL('./verify.worker.dev.mjs', import.meta.url);
}

function configuredSize(): number {
  const env = process.env['LINE_STATION_VERIFY_WORKERS'];
  if (env !== undefined && /^[0-9]{1,3}$/.test(env)) return Number(env);
  return availableParallelism();
}

/** Rebuild and verify records on the calling thread (the reference the workers must equal). */
export function verifyInline(
  trust: StationTrust,
  records: readonly PackedRecord[],
  certificates: readonly string[],
  now: Date,
  base = 0,
): CheckedRecord[] {
  const seen: SignerCache = new Map();
  return records.map((r, i) => checkBatchRecord(trust, r, certificates, base + i, now, seen));
}

class VerifyPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (a: VerifyAnswer) => void; slot: Slot }>();
  private nextId = 1;

  constructor(readonly size: number) {}

  /** Rebuild and verify every record of a batch or bundle; one answer per record, in order. */
  async verify(
    trust: StationTrust,
    records: readonly PackedRecord[],
    certificates: readonly string[],
    now: Date,
  ): Promise<CheckedRecord[]> {
    if (this.size === 0 || records.length < MIN_PARALLEL) return verifyInline(trust, records, certificates, now);
    const trustKey = createHash('sha256')
      .update(JSON.stringify([trust.row, trust.history]))
      .digest('hex');
    const n = Math.min(this.size, Math.ceil(records.length / MIN_PARALLEL));
    const per = Math.ceil(records.length / n);
    const parts = await Promise.all(
      Array.from({ length: n }, (_, k) => {
        const base = k * per;
        const slice = records.slice(base, base + per);
        return this.run({
          id: this.nextId++,
          trustKey,
          row: trust.row,
          history: trust.history,
          records: JSON.stringify(slice),
          certificates,
          base,
          now: now.getTime(),
        }).then((a): CheckedRecord[] =>
          'checked' in a && a.checked.length === slice.length
            ? a.checked.map((c, i) => {
                const jws = c.jws ?? (slice[i] as string);
                return { jws, check: c.check.ok ? { ok: true, record: { ...c.check.record, jws } } : c.check };
              })
            : // The worker could not verify (crashed, or could not read the trust material): same work here.
              verifyInline(trust, slice, certificates, now, base),
        );
      }),
    );
    return parts.flat();
  }

  /** Stop the workers (tests, shutdown); the pool starts new ones on the next batch. */
  async close(): Promise<void> {
    const all = this.slots.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  private run(job: VerifyJob): Promise<VerifyAnswer> {
    const slot = this.slot();
    slot.busy++;
    if (slot.busy === 1) slot.worker.ref();
    return new Promise((resolve) => {
      this.pending.set(job.id, { resolve, slot });
      slot.worker.postMessage(job);
    });
  }

  private settle(a: VerifyAnswer): void {
    const p = this.pending.get(a.id);
    if (!p) return;
    this.pending.delete(a.id);
    p.slot.busy--;
    if (p.slot.busy === 0) p.slot.worker.unref();
    p.resolve(a);
  }

  /** The least busy worker, starting one while there are fewer than `size`. */
  private slot(): Slot {
    const idle = this.slots.find((s) => s.busy === 0);
    if (idle) return idle;
    if (this.slots.length < this.size) {
      const worker = new Worker(workerEntry());
      worker.unref();
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (a: VerifyAnswer) => this.settle(a));
      const fail = (why: string) => {
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
        for (const [id, p] of this.pending) if (p.slot === slot) this.settle({ id, error: why });
      };
      worker.on('error', (e) => fail(e.message));
      worker.on('exit', (code) => fail(`verification worker exited with ${code}`));
      this.slots.push(slot);
      return slot;
    }
    return this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
  }
}

let pool: VerifyPool | undefined;

/** The process's verification pool (created on first use). */
export function verifyPool(): VerifyPool {
  return (pool ??= new VerifyPool(configuredSize()));
}

export type { VerifyPool };
