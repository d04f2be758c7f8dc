/**
 * Station side of exactly-once sync to the headquarters registry (docs/sync.md, docs/registry-api.md): the sync
 * service, its background loop and its state.
 *
 * Records reach the outbox in the transaction that commits them (a trigger, schema version 2). This service
 * sends them in batches (<= 500) over `POST /v1/batches`, each batch id written to the database BEFORE the
 * first attempt and reused on every retry (also after a restart), every attempt signed afresh with the
 * station key (`LS-Sig`). A record is acknowledged only by a receipt that verifies with the configured
 * registry certificate, names this station and this batch, and lists the record with the same SHA-256.
 * Offline: `exportBundle` writes a signed bundle, `importReceipt` applies the registry's receipt file.
 * Every batch and bundle also carries the station's signed audit head and the entries since the head the registry
 * last confirmed (docs/audit.md "Anchoring at the registry"); `anchoredHeads` fetches what the registry anchored.
 *
 * Parts: station/sync/batch.ts (one batch online), station/sync/bundle.ts (offline), station/sync/anchor.ts (audit
 * anchoring); every registry call goes through the registry client (station/hq/client.ts).
 * May import: core/, native/store/outbox.ts, station/hq/, station/sync/.
 */
import { fail, type StationError } from '../core/errors.js';
import { systemClock, type Clock, type Logger, type Signer } from '../core/ports.js';
import { err, ok, type Result } from '../core/result.js';
import type { SyncView } from '../core/api.js';
import type { Outbox } from '../native/store/outbox.js';
import type { AnchoredHeadsPayload } from '../core/hq/audit-head.js';
import { MAX_BATCH_RECORDS, type ReceiptPayload } from '../core/hq/protocol.js';
import { ROUTES } from '../core/hq/routes.js';
import { registryClientFor, routeLabel } from './hq/client.js';
import { checkRegistryUrl } from './hq/transport.js';
import { anchoredHeads, type SyncFailPoint } from './sync/anchor.js';
import { BATCH_RECORD_BYTES, sendBatch, type BatchContext } from './sync/batch.js';
import { exportBundle, importReceipt, type ExportedBundle, type ImportReceiptOutcome } from './sync/bundle.js';

/** The sync state as the UI shows it (same shape as `SyncViewSchema` in core/api.ts). */
export type SyncStatus = SyncView;

export interface SyncOptions {
  /** The sync outbox port of the station database (openStationDb); the caller owns and closes the connection. */
  readonly outbox: Outbox;
  readonly stationId: string;
  /** The station signing key (HSM): signs requests and bundles. */
  readonly signer: Signer;
  /** DER, leaf first: station certificate, issuing CA, root. */
  readonly chain: readonly Uint8Array[];
  /** Base URL of the registry (no trailing slash needed); null = offline only (bundles). */
  readonly registryUrl: string | null;
  /** The registry certificate (DER, from registry.pem): every receipt must verify with it. */
  readonly registryCertificate: Uint8Array | null;
  /** The pinned registry TLS certificate (DER): required for an https registry URL (`checkRegistryUrl`). */
  readonly registryTlsCertificate?: Uint8Array | null;
  /** False: the background loop does not send (manual `syncOnce`, export and import still work). */
  readonly enabled?: boolean;
  readonly clock?: Clock;
  readonly logger: Logger;
  /** Records per batch (1..500, default 500). */
  readonly batchSize?: number;
  /** Backoff after an error: full jitter, base (default 1 s) doubling up to cap (default 5 min). */
  readonly backoff?: { readonly baseMs?: number; readonly capMs?: number };
  /** How often the idle loop looks for new records (default 2 s). */
  readonly idleMs?: number;
  /** Timeout of every HTTP call (default 30 s; the health check uses min(this, 5 s)). */
  readonly timeoutMs?: number;
  /** Random source for the jitter (tests). */
  readonly random?: () => number;
  /** Test hook: called after a batch is marked sent, before it goes on the wire. */
  readonly beforeSend?: (batchId: string, count: number) => void | Promise<void>;
  /** Test hook: crash points (the crash tests kill the process there). */
  readonly failpoint?: (p: SyncFailPoint, detail: { batchId: string; seq: number }) => void | Promise<void>;
  /**
   * Scrap and failed-issuance events (station/lifecycle) that a bundle carries too, and how to apply the registry's
   * answers the receipt lists for them.
   */
  readonly revocationEvents?: {
    list(max: number): Promise<Result<readonly { requestId: string; jws: string }[]>>;
    apply(results: NonNullable<ReceiptPayload['revocations']>, requestIds: readonly string[]): number;
  };
  /**
   * Called when the registry refuses a batch with AUTH_STATION_REVOKED. That answer is unsigned, so the station
   * does not conclude anything from it: the engine asks for the signed station status (station/lifecycle).
   */
  readonly onStationRevokedAnswer?: () => void;
}

export type { ImportReceiptOutcome, SyncFailPoint };

export interface SyncService {
  status(): SyncStatus;
  /** Check reachability and send everything pending (and re-send batches left `sent`), once. */
  syncOnce(signal?: AbortSignal): Promise<Result<SyncStatus>>;
  /** Start the background loop (idempotent). */
  start(): void;
  /** Stop the background loop; resolves when an attempt in flight has ended. */
  stop(): Promise<void>;
  /** Called on every change of the status; returns the unsubscribe function. */
  onChange(cb: (s: SyncStatus) => void): () => void;
  /** A signed bundle of the records not yet acknowledged (at most 5000, oldest first). */
  exportBundle(): Promise<Result<ExportedBundle>>;
  /** Verify a receipt file and mark the records it acknowledges. */
  importReceipt(content: string): Promise<Result<ImportReceiptOutcome>>;
  /** GET /v1/health: updates `reachable`. */
  checkHealth(signal?: AbortSignal): Promise<boolean>;
  /**
   * GET /v1/audit-heads: the heads of this station's audit chain the registry anchored, as the registry signed them
   * (verified with the registry certificate, fresh challenge echoed). For `station verify-log --against-registry`.
   */
  anchoredHeads(signal?: AbortSignal): Promise<Result<AnchoredHeadsPayload>>;
  /** The outbox (details per record, failures). */
  readonly outbox: Outbox;
  /** Stop the loop (the outbox's connection belongs to the caller). */
  close(): Promise<void>;
}

/** Full-jitter exponential backoff: a uniform delay in [0, min(cap, base * 2^(failures-1))]. */
export function backoffDelay(failures: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.floor(random() * ceiling);
}

/** Most failing batches the status lists (the oldest first; the counts cover the rest). */
const MAX_FAILING_SHOWN = 20;

const NO_URL = 'no registry URL is configured: run station enroll --registry URL';

/** Open the sync service on the station database. */
export function openSync(o: SyncOptions): Result<SyncService> {
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const outbox = o.outbox;
  const batchSize = Math.max(1, Math.min(MAX_BATCH_RECORDS, o.batchSize ?? MAX_BATCH_RECORDS));
  const baseMs = o.backoff?.baseMs ?? 1000;
  const capMs = o.backoff?.capMs ?? 5 * 60_000;
  const idleMs = o.idleMs ?? 2000;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const random = o.random ?? Math.random;
  const client = registryClientFor(o, clock, timeoutMs);
  const baseUrl = client?.url ?? null;
  const enabled = o.enabled !== false;

  let reachable: boolean | null = null;
  let lastError: string | null = null;
  let nextAttemptAt: string | null = null;
  let failures = 0;
  const listeners = new Set<(s: SyncStatus) => void>();
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  let loopAbort: AbortController | null = null;
  /** Serialises sending (the loop and syncOnce never send at the same time). */
  let lock: Promise<unknown> = Promise.resolve();
  let current: Promise<unknown> = Promise.resolve();
  let closed = false;

  const status = (): SyncStatus => {
    const c = outbox.counts();
    const last = outbox.lastReceipt();
    return {
      registryUrl: baseUrl,
      reachable,
      pending: c.pending,
      sent: c.sent,
      acknowledged: c.acknowledged,
      failed: c.failed,
      lastReceipt: last ? { receiptId: last.receiptId, at: last.receivedAt, count: last.marked } : null,
      lastError,
      nextAttemptAt,
      failingBatches: outbox.failingBatches(MAX_FAILING_SHOWN).map((b) => ({
        batchId: b.batchId,
        records: b.records,
        attempts: b.attempts,
        code: b.lastError.code,
        message: b.lastError.message,
        at: b.lastError.at,
      })),
    };
  };
  const emit = () => {
    if (!listeners.size || closed) return;
    const s = status();
    for (const l of listeners) {
      try {
        l(s);
      } catch (e) {
        log.log('warn', 'sync onChange listener threw', { message: (e as Error).message });
      }
    }
  };

  const parts = {
    outbox,
    stationId: o.stationId,
    signer: o.signer,
    chain: o.chain,
    clock,
    log,
    failpoint: o.failpoint,
    registryCertificate: o.registryCertificate,
    revocationEvents: o.revocationEvents,
  };
  const batchContext = (c: NonNullable<typeof client>): BatchContext => ({
    ...parts,
    client: c,
    reached: (answered) => {
      reachable = answered;
    },
    onStationRevokedAnswer: o.onStationRevokedAnswer,
  });

  const registryCert = (): Result<Uint8Array> =>
    o.registryCertificate
      ? ok(o.registryCertificate)
      : fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');

  async function checkHealth(signal?: AbortSignal): Promise<boolean> {
    if (!client) return false;
    const r = await client.health(signal);
    if (r !== reachable) {
      reachable = r;
      emit();
    }
    return r;
  }

  /** Re-send batches left `sent`, then claim and send new ones until nothing is pending. */
  async function drain(c: BatchContext, signal: AbortSignal | undefined): Promise<Result<number>> {
    let total = 0;
    for (;;) {
      if (signal?.aborted) return fail('SYNC_UNREACHABLE', 'sync stopped');
      let batchId = outbox.sentBatchIds()[0];
      if (batchId !== undefined) outbox.noteBatchResend(batchId);
      else {
        const claimed = outbox.claimBatch(globalThis.crypto.randomUUID(), batchSize, BATCH_RECORD_BYTES);
        if (!claimed) return ok(total);
        batchId = claimed.batchId;
        emit();
        await o.beforeSend?.(batchId, claimed.items.length);
      }
      const r = await sendBatch(c, batchId, signal);
      if (!r.ok) {
        // The batch stays `sent` under its id (retried with backoff); its rows say why it did not go through.
        const at = clock.now().toISOString();
        outbox.noteBatchFailure(batchId, { code: r.error.code, message: r.error.message, at });
        return r;
      }
      total += r.value.marked;
      failures = 0;
      lastError = null;
      nextAttemptAt = null;
      emit();
    }
  }

  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = lock.then(fn, fn);
    lock = run.catch(() => undefined);
    return run;
  }

  async function attempt(signal: AbortSignal | undefined): Promise<Result<number>> {
    if (!client) return fail('CONFIG_INVALID', NO_URL);
    if (!o.registryCertificate) return registryCert() as Result<never>;
    const policy = checkRegistryUrl(client.url, o.registryTlsCertificate);
    if (!policy.ok) return policy;
    if (!(await checkHealth(signal))) {
      return fail('SYNC_UNREACHABLE', `the registry at ${client.url} is not reachable (${routeLabel(ROUTES.health)})`);
    }
    try {
      return await drain(batchContext(client), signal);
    } catch (e) {
      log.log('error', `bug in sync: ${(e as Error).stack ?? String(e)}`);
      return fail('INTERNAL', `sync failed: ${(e as Error).message}`);
    }
  }

  const schedule = (ms: number) => {
    if (!running) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      current = tick();
    }, ms);
    timer.unref?.();
  };

  async function tick(): Promise<void> {
    if (!running) return;
    const c = outbox.counts();
    if (!enabled || c.pending + c.sent === 0) {
      schedule(idleMs);
      return;
    }
    loopAbort = new AbortController();
    const r = await exclusive(() => attempt(loopAbort!.signal));
    if (!running) return;
    if (r.ok) {
      failures = 0;
      lastError = null;
      nextAttemptAt = null;
      emit();
      schedule(idleMs);
    } else {
      failures++;
      lastError = `${r.error.code}: ${r.error.message}`;
      const delay = backoffDelay(failures, baseMs, capMs, random);
      nextAttemptAt = new Date(clock.now().getTime() + delay).toISOString();
      log.log('warn', 'sync attempt failed; backing off', {
        code: r.error.code,
        message: r.error.message,
        failures,
        delayMs: delay,
      });
      emit();
      schedule(delay);
    }
  }

  const service: SyncService = {
    outbox,
    status,
    checkHealth,

    async anchoredHeads(signal) {
      if (!client) return fail('CONFIG_INVALID', NO_URL);
      const cert = registryCert();
      if (!cert.ok) return cert;
      return anchoredHeads(client, cert.value, o.stationId, signal);
    },

    async syncOnce(signal) {
      const r = await exclusive(() => attempt(signal));
      if (r.ok) {
        lastError = null;
        failures = 0;
        nextAttemptAt = null;
      } else lastError = `${r.error.code}: ${r.error.message}`;
      emit();
      return r.ok ? ok(status()) : err<StationError>(r.error);
    },

    start() {
      if (running || closed) return;
      running = true;
      log.log('info', 'background sync started', { registryUrl: baseUrl, enabled });
      schedule(0);
    },

    async stop() {
      if (!running) return;
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      loopAbort?.abort();
      await current.catch(() => undefined);
      nextAttemptAt = null;
      log.log('info', 'background sync stopped');
      emit();
    },

    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },

    async exportBundle() {
      const r = await exportBundle(parts);
      if (r.ok) emit();
      return r;
    },

    async importReceipt(content) {
      const r = await importReceipt(parts, content);
      if (r.ok) emit();
      return r;
    },

    async close() {
      await service.stop();
      await lock.catch(() => undefined);
      closed = true;
      listeners.clear();
    },
  };
  return ok(service);
}
