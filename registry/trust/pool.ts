/**
 * The record verification pool: a batch's records are verified in worker threads (./verify.worker.ts), in jobs of
 * about 64 records the workers take from one queue, with the same function the main thread would run (records.ts
 * `verifyRecord`): every check stays, only the cores change. One pool per process, sized to the cores (`os.availableParallelism()`, or
 * LINE_STATION_VERIFY_WORKERS; 0 verifies on the calling thread). Workers start on first use, hold the event loop
 * only while they have work, and are rebuilt after a crash; a job whose worker fails is verified on the calling
 * thread instead (same result, slower). A worker gets its records as the JSON text of its slice, or, for a batch
 * body the main thread did not parse (`verifyText`), as that body's own bytes of its share, which it parses and
 * validates itself; it answers with the rebuilt JWS as UTF-8 in one transferred buffer (docs/architecture.md
 * "Registry ingest: what the main thread does"). Imports core and registry/trust.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { StationRow } from '../../core/hq/registry-db.js';
import type { PackedRecord } from '../../core/hq/pack.js';
import { BatchRecordSchema } from '../../core/hq/protocol.js';
import { acceptOrParse, compileAccept } from '../../core/zod-accept.js';
import { checkBatchRecord, type CheckedRecord, type SignerCache } from './records.js';
import type { StationKeyHistoryRow, StationTrust } from './verify.js';

/** A job: a slice of a batch (about CHUNK records) for one worker. */
export interface VerifyJob {
  readonly id: number;
  /** Identifies the trust material (station id, certificate, chain, key history) so the worker parses it once. */
  readonly trustKey: string;
  readonly row: StationRow;
  readonly history: readonly StationKeyHistoryRow[];
  /**
   * The slice's records: PackedRecord[] as JSON text (one string is copied to the worker at memory speed, where a
   * structured clone of the packed records' object graph cost more on the main thread than JSON.stringify does);
   * or a share of a request body the main thread did not parse (`verifyText`): the JSON array of `count` records
   * as UTF-8, transferred, which the worker parses and validates (`readShare`).
   */
  readonly records: string | Share;
  /** Identifies the certificate table of the job's batch or bundle (a number the pool gives each table it sends). */
  readonly tableId: number;
  /**
   * The certificate table the packed records refer to (format v2; empty for v1), or null when this worker was sent
   * table `tableId` already (a bundle's table holds every record's device certificate: one copy per worker, not
   * one per job).
   */
  readonly certificates: readonly string[] | null;
  /** Index of records[0] in the batch. */
  readonly base: number;
  /** The registry clock (ms since the epoch). */
  readonly now: number;
}

/** A share of a batch body's records for one worker: `[` records `]` as UTF-8, in a buffer of its own. */
export interface Share {
  readonly utf8: ArrayBuffer;
  /** How many records the main thread's scan found in it. */
  readonly count: number;
}

/** A batch's records as its body holds them (registry/ingest/batch-body.ts): record k is body[starts[k], ends[k]). */
export interface RecordsText {
  readonly body: Buffer;
  readonly starts: readonly number[];
  readonly ends: readonly number[];
}

const acceptBatchRecord = compileAccept(BatchRecordSchema);

/**
 * The records of a share, parsed and each valid for BatchRecordSchema (the check `strictJsonBody` would have made
 * on the whole body), or null when the share is not exactly `count` valid records (the caller then reads the body
 * whole, which words what is wrong).
 */
export function readShare(share: Share): PackedRecord[] | null {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(share.utf8).toString('utf8'));
  } catch {
    return null;
  }
  if (!Array.isArray(json) || json.length !== share.count) return null;
  const out: PackedRecord[] = [];
  for (const r of json) {
    const p = acceptOrParse(BatchRecordSchema, acceptBatchRecord, r);
    if (!p.success) return null;
    out.push(p.data);
  }
  return out;
}

/** Records a..b-1 of `text` as a Share (one copy into a buffer the job transfers). */
function shareOf(text: RecordsText, a: number, b: number): Share {
  const from = text.starts[a]!;
  const to = text.ends[b - 1]!;
  const out = Buffer.allocUnsafeSlow(to - from + 2); // its own ArrayBuffer, exactly this long: transferable
  out[0] = 0x5b; // [
  text.body.copy(out, 1, from, to);
  out[out.length - 1] = 0x5d; // ]
  return { utf8: out.buffer as ArrayBuffer, count: b - a };
}

/** Where a rebuilt JWS is in a VerifyAnswer's `utf8` buffer: [byte offset, byte length]. */
export type Utf8Span = readonly [number, number];

/**
 * A worker's answer: the checked records in order, or why it could not run. A record sent as a compact JWS in a
 * JSON-text slice comes back without it (`jws: null`, the caller has it); any other with the span of the JWS it was rebuilt to in
 * `utf8`: every rebuilt JWS of the slice as UTF-8, one after the other, in one buffer TRANSFERRED to the caller (no
 * copy of ~12 KB a record into and out of the message, no string for the caller to encode again to hash and store).
 * The accepted records' `jws` is '' (the caller sets it).
 */
export type VerifyAnswer =
  | {
      readonly id: number;
      readonly checked: Array<{ jws: Utf8Span | null; check: CheckedRecord['check'] }>;
      readonly utf8: ArrayBuffer;
    }
  | { readonly id: number; readonly error: string }
  /** The share of a body (`Share`) is not `count` valid records. */
  | { readonly id: number; readonly malformed: true };

/**
 * A checked record from the pool: its `jws` (and its accepted record's) are decoded from `jwsUtf8` when first read;
 * `jwsUtf8` (not enumerable: the record compares equal to one verified inline) is what ingest hashes and stores.
 */
export type PooledCheckedRecord = CheckedRecord & { readonly jwsUtf8?: Uint8Array };

/** Give `o` a `jws` read from `utf8` on first use, and `utf8` as its non-enumerable `jwsUtf8`. */
function jwsFromUtf8<T extends object>(o: T, utf8: Buffer): T {
  let text: string | undefined;
  Object.defineProperty(o, 'jws', {
    enumerable: true,
    configurable: true,
    get: () => (text ??= utf8.toString('utf8')),
  });
  Object.defineProperty(o, 'jwsUtf8', { enumerable: false, value: utf8 });
  return o;
}

/**
 * SHA-256 (hex) over the concatenation of the checked records' JWS in UTF-8: records.ts `recordsDigestSync` of
 * their `jws`, hashed from the bytes the workers sent where there are some.
 */
export function checkedDigest(checked: readonly PooledCheckedRecord[]): string {
  const h = createHash('sha256');
  for (const c of checked) {
    if (c.jwsUtf8) h.update(c.jwsUtf8);
    else h.update(c.jws, 'utf8');
  }
  return h.digest('hex');
}

/** Below this many records a batch is verified on the calling thread (a message round trip costs more). */
const MIN_PARALLEL = 16;

/** About this many records a job (a 500-record batch: 8 jobs over the workers). */
const CHUNK = 64;

/** Jobs a worker holds at once: the one it runs and the next (no idle gap waiting for a message). */
const DEPTH = 2;

/** Certificate tables a worker is known to hold: the last this many sent to it (the worker keeps more). */
const TABLES_SENT = 4;

interface Slot {
  worker: Worker;
  busy: number;
  /** The ids of the last TABLES_SENT certificate tables sent to this worker, oldest first. */
  tables: number[];
}

/**
 * What a worker's parsed trust material is made of (the station's enrolled chain and its replaced keys): it parses
 * them once per key. Not the rest of the row (its last sync time changes with every batch): the worker takes the
 * row of each job as it is.
 */
function trustKeyOf(trust: StationTrust): string {
  const r = trust.row;
  return createHash('sha256')
    .update(JSON.stringify([r.stationId, r.certificateSha256, r.chainPem, trust.history]))
    .digest('hex');
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

/** The checked records of a worker's answer, each JWS a view of the answer's buffer (or the text the caller sent). */
function fromAnswer(
  checked: Extract<VerifyAnswer, { checked: unknown }>['checked'],
  utf8: Buffer,
  slice: readonly PackedRecord[] | null,
): PooledCheckedRecord[] {
  return checked.map((c, i) => {
    if (c.jws === null) {
      const jws = slice?.[i] as string; // a compact JWS of the caller's slice (a share's come back as bytes)
      return { jws, check: c.check.ok ? { ok: true, record: { ...c.check.record, jws } } : c.check };
    }
    const bytes = utf8.subarray(c.jws[0], c.jws[0] + c.jws[1]);
    if (c.check.ok) jwsFromUtf8(c.check.record, bytes);
    return jwsFromUtf8({ jws: '', check: c.check }, bytes);
  });
}

class VerifyPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (a: VerifyAnswer) => void; slot: Slot }>();
  private readonly queue: Array<{ job: VerifyJob; resolve: (a: VerifyAnswer) => void }> = [];
  /** The id of each certificate table (the array the caller passes: one per batch or bundle). */
  private readonly tableIds = new WeakMap<readonly string[], number>();
  private nextTable = 1;
  private nextId = 1;

  constructor(readonly size: number) {}

  /** Rebuild and verify every record of a batch or bundle; one answer per record, in order. */
  async verify(
    trust: StationTrust,
    records: readonly PackedRecord[],
    certificates: readonly string[],
    now: Date,
  ): Promise<PooledCheckedRecord[]> {
    if (!this.parallel(records.length)) return verifyInline(trust, records, certificates, now);
    const parts = await this.spread(trust, records.length, certificates, now, (base, end) => {
      const slice = records.slice(base, end);
      return { records: JSON.stringify(slice), slice, inline: () => slice };
    });
    // A slice of JSON text made here is never 'malformed' (a worker that says so is wrong: the work is done here).
    return parts.some((p) => p === 'malformed')
      ? verifyInline(trust, records, certificates, now)
      : (parts as PooledCheckedRecord[][]).flat();
  }

  /**
   * `verify` for records the caller has not parsed (a batch body: registry/ingest/batch-body.ts): each worker
   * parses and validates its share, then verifies it. 'malformed' when a share is not the records the scan found
   * (the caller reads the body whole, which says what is wrong). Only for `parallel(count)`.
   */
  async verifyText(
    trust: StationTrust,
    text: RecordsText,
    certificates: readonly string[],
    now: Date,
  ): Promise<PooledCheckedRecord[] | 'malformed'> {
    const parts = await this.spread(trust, text.starts.length, certificates, now, (base, end) => {
      const share = shareOf(text, base, end);
      // Parsed here only when the worker could not run (shareOf's buffer is gone to it then: a new one).
      return { records: share, slice: null, inline: () => readShare(shareOf(text, base, end)) };
    });
    return parts.some((p) => p === 'malformed') ? 'malformed' : (parts as PooledCheckedRecord[][]).flat();
  }

  /** Whether a batch of `count` records goes to the workers (else: verifyInline on the calling thread). */
  parallel(count: number): boolean {
    return this.size > 0 && count >= MIN_PARALLEL;
  }

  /**
   * Split `count` records into jobs of about CHUNK records, queued (`job(base, end)`: its records, the parsed slice
   * when the caller has it, and how to get the records to verify inline should the worker fail) and gather the
   * answers in order.
   */
  private spread(
    trust: StationTrust,
    count: number,
    certificates: readonly string[],
    now: Date,
    job: (
      base: number,
      end: number,
    ) => {
      records: VerifyJob['records'];
      slice: readonly PackedRecord[] | null;
      inline: () => readonly PackedRecord[] | null;
    },
  ): Promise<Array<PooledCheckedRecord[] | 'malformed'>> {
    const trustKey = trustKeyOf(trust);
    let tableId = this.tableIds.get(certificates);
    if (tableId === undefined) this.tableIds.set(certificates, (tableId = this.nextTable++));
    // Jobs of about CHUNK records, queued: a worker takes the next as it finishes one, so a worker slowed by a GC
    // or by another thread on its core does not hold the batch back with half of it. A smaller batch still gets one
    // job per worker (at least MIN_PARALLEL records each), so every core works on it.
    const n = Math.max(Math.min(this.size, Math.ceil(count / MIN_PARALLEL)), Math.round(count / CHUNK));
    const per = Math.ceil(count / n);
    return Promise.all(
      Array.from({ length: n }, (_, k) => {
        const base = k * per;
        const end = Math.min(count, base + per);
        const j = job(base, end);
        return this.run({
          id: this.nextId++,
          trustKey,
          row: trust.row,
          history: trust.history,
          records: j.records,
          tableId,
          certificates,
          base,
          now: now.getTime(),
        }).then((a): PooledCheckedRecord[] | 'malformed' => {
          if ('malformed' in a) return 'malformed';
          if ('checked' in a && a.checked.length === end - base)
            return fromAnswer(a.checked, Buffer.from(a.utf8), j.slice);
          // The worker could not verify (crashed, or could not read the trust material): same work here.
          const records = j.inline();
          return records ? verifyInline(trust, records, certificates, now, base) : 'malformed';
        });
      }),
    );
  }

  /** Stop the workers (tests, shutdown); the pool starts new ones on the next batch. */
  async close(): Promise<void> {
    const all = this.slots.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  /** Queue a job; it goes to a worker as one has room (`dispatch`). */
  private run(job: VerifyJob): Promise<VerifyAnswer> {
    return new Promise((resolve) => {
      this.queue.push({ job, resolve });
      this.dispatch();
    });
  }

  /** Send queued jobs, oldest first, to the least busy workers holding fewer than DEPTH jobs. */
  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.slot();
      if (slot.busy >= DEPTH) return;
      const { job, resolve } = this.queue.shift()!;
      slot.busy++;
      if (slot.busy === 1) slot.worker.ref();
      this.pending.set(job.id, { resolve, slot });
      // A certificate table goes to a worker once: later jobs of its batch name it by id.
      let sent = job;
      if (slot.tables.includes(job.tableId)) sent = { ...job, certificates: null };
      else if (slot.tables.push(job.tableId) > TABLES_SENT) slot.tables.shift();
      // A share's buffer is the job's own (shareOf): transferred, not copied.
      slot.worker.postMessage(sent, typeof job.records === 'string' ? [] : [job.records.utf8]);
    }
  }

  private settle(a: VerifyAnswer): void {
    const p = this.pending.get(a.id);
    if (!p) return;
    this.pending.delete(a.id);
    p.slot.busy--;
    if (p.slot.busy === 0) p.slot.worker.unref();
    p.resolve(a);
    this.dispatch();
  }

  /** The least busy worker, starting one while there are fewer than `size`. */
  private slot(): Slot {
    const idle = this.slots.find((s) => s.busy === 0);
    if (idle) return idle;
    if (this.slots.length < this.size) {
      const worker = new Worker(workerEntry());
      worker.unref();
      const slot: Slot = { worker, busy: 0, tables: [] };
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
