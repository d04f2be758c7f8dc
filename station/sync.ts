/**
 * Station side of exactly-once sync to the headquarters registry (docs/sync.md, docs/registry-api.md).
 *
 * Records reach the outbox in the transaction that commits them (a trigger, schema version 2). This service
 * sends them in batches (<= 500) over `POST /v1/batches`, each batch id written to the database BEFORE the
 * first attempt and reused on every retry (also after a restart), every attempt signed afresh with the
 * station key (`LS-Sig`). A record is acknowledged only by a receipt that verifies with the configured
 * registry certificate, names this station and this batch, and lists the record with the same SHA-256.
 * Offline: `exportBundle` writes a signed bundle, `importReceipt` applies the registry's receipt file.
 * Every batch and bundle also carries the station's signed audit head and the entries since the head the registry
 * last confirmed (docs/audit.md "Anchoring at the registry"); `anchoredHeads` fetches what the registry anchored.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { fail, stationError, type StationError } from '../core/errors.js';
import { fromPem, toPem } from '../core/pki/pem.js';
import { systemClock, type Clock, type Logger, type Signer } from '../core/ports.js';
import { err, ok, type Result } from '../core/result.js';
import type { SyncView } from '../core/api.js';
import { openOutbox, type ApplyOutcome, type Outbox } from '../native/store/outbox.js';
import { toBase64Url } from '../core/bytes.js';
import { verifyDocument } from '../core/hq/jws.js';
import {
  AnchoredHeadsPayloadSchema,
  AUDIT_HEADS_TYP,
  BATCH_PROOF_BYTES,
  BUNDLE_PROOF_BYTES,
  signAuditHead,
  type AnchoredHeadsPayload,
  type AuditAnchorOutcome,
  type AuditHeadSubmission,
} from '../core/hq/audit-head.js';
import {
  BatchResponseSchema,
  createBundle,
  ErrorBodySchema,
  HealthSchema,
  MAX_BATCH_BYTES,
  MAX_BATCH_RECORDS,
  MAX_BUNDLE_RECORDS,
  MAX_HEALTH_RESPONSE_BYTES,
  MAX_RESPONSE_BYTES,
  registryAudience,
  MAX_REVOCATION_EVENTS,
  signRequest,
  verifyReceipt,
  zodMessage,
  type ReceiptPayload,
} from '../core/hq/protocol.js';

/** The sync state as the UI shows it (same shape as `SyncViewSchema` in core/api.ts). */
export type SyncStatus = SyncView;

export interface SyncOptions {
  /** The station database (already migrated: open the Store first). */
  readonly dbFile: string;
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
  /** SQLite synchronous level of the outbox connection (NORMAL only for tests/benchmarks). */
  readonly synchronous?: 'FULL' | 'NORMAL';
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

/** `audit-head-signed`: the audit head of a batch is signed (HSM) and not yet sent. */
export type SyncFailPoint = 'audit-head-signed';

export interface ImportReceiptOutcome {
  readonly marked: number;
  readonly alreadySynced: number;
  readonly unknown: number;
  readonly message: string;
}

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
  exportBundle(): Promise<Result<{ fileName: string; content: string; count: number; revocationEvents: number }>>;
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
  /** Stop the loop and close the outbox connection. */
  close(): Promise<void>;
}

/** Read the registry certificate (PEM, first certificate) for `registryCertificate`. */
export function readRegistryCertificate(file: string): Result<Uint8Array> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail('CONFIG_INVALID', `cannot read the registry certificate ${file}: ${(e as Error).message}`);
  }
  const der = fromPem(text, 'CERTIFICATE');
  return der.ok ? der : fail('CONFIG_INVALID', `${file}: ${der.error.message}`);
}

/**
 * The pinned registry TLS certificate of a data dir (`registry.tlsCertificate` in config.json, written by
 * `station enroll --registry-tls-cert`), or null when none is configured (loopback http only).
 */
export function readRegistryTlsCertificate(cfg: {
  readonly config: { readonly registry?: { readonly tlsCertificate?: string | undefined } | undefined };
  path(rel: string): string;
}): Result<Uint8Array | null> {
  const rel = cfg.config.registry?.tlsCertificate;
  return rel ? readRegistryCertificate(cfg.path(rel)) : ok(null);
}

/** Full-jitter exponential backoff: a uniform delay in [0, min(cap, base * 2^(failures-1))]. */
export function backoffDelay(failures: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.floor(random() * ceiling);
}

class SyncFailure extends Error {
  constructor(readonly error: StationError) {
    super(error.message);
  }
}

/** Loopback IP literals: the only hosts the station talks to over plain http. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === '::1' || /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(h);
}

/**
 * The registry URL policy (docs/sync.md "Transport"), checked at `station enroll`, when the engine opens, and by
 * `httpExchange` before every call: http only to a loopback IP literal (127.0.0.0/8, [::1]); anything else must
 * be https with a pinned TLS certificate (`station enroll --registry-tls-cert`); no credentials in the URL.
 * SYNC_INSECURE_URL otherwise.
 */
export function checkRegistryUrl(url: string, tlsCertificate: Uint8Array | null | undefined): Result<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail('SYNC_INSECURE_URL', `${url} is not a URL`);
  }
  if (u.username || u.password) return fail('SYNC_INSECURE_URL', 'the registry URL must not carry credentials');
  if (u.protocol === 'http:') {
    if (isLoopbackHost(u.hostname)) return ok(u);
    return fail(
      'SYNC_INSECURE_URL',
      `http://${u.host} is not loopback: the registry must be reached over https (with --registry-tls-cert)`,
      { host: u.host },
    );
  }
  if (u.protocol !== 'https:') return fail('SYNC_INSECURE_URL', `unsupported registry URL scheme ${u.protocol}`);
  if (!tlsCertificate)
    return fail(
      'SYNC_INSECURE_URL',
      `https://${u.host}: no pinned TLS certificate (station enroll --registry-tls-cert)`,
      {
        host: u.host,
      },
    );
  return ok(u);
}

/** Thrown by `httpExchange` when the transport is refused before anything is sent (URL policy, TLS pin). */
export class RegistryRefusal extends Error {
  constructor(readonly error: StationError) {
    super(error.message);
  }
}

/** Node's codes for a server certificate OpenSSL could not verify (X509_V_ERR_* names, and the host name check). */
const TLS_VERIFY_CODE = /^(ERR_TLS_CERT_ALTNAME_INVALID|[A-Z_]*(CERT|SELF_SIGNED|ISSUER|SIGNATURE|UNABLE_TO)[A-Z_]*)$/;

/**
 * TLS to the registry trusts exactly the pinned certificate: it is the only trust anchor, and the server's chain
 * must contain it (the server certificate itself, or the CA that issued it). Host names are not checked: the pin
 * is the identity.
 */
function pinnedTls(pin: Uint8Array): {
  ca: string;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  return {
    ca: toPem(pin, 'CERTIFICATE'),
    checkServerIdentity: (_host, cert) => {
      const seen = new Set<PeerCertificate>();
      for (
        let c: PeerCertificate | undefined = cert;
        c && !seen.has(c);
        c = (c as DetailedPeerCertificate).issuerCertificate
      ) {
        seen.add(c);
        if (c.raw && Buffer.from(pin).equals(c.raw)) return undefined;
      }
      return new RegistryRefusal(
        stationError(
          'SYNC_REGISTRY_UNTRUSTED',
          'the registry TLS certificate is not the pinned one (registry TLS pin)',
        ),
      );
    },
  };
}

/** An answer larger than the exchange's cap: the station stopped reading it (SYNC_RESPONSE_TOO_LARGE). */
export class ResponseTooLarge extends Error {
  readonly code = 'SYNC_RESPONSE_TOO_LARGE';
  constructor(
    readonly limit: number,
    readonly declared: number | null,
  ) {
    super(
      `the registry's answer is larger than ${limit} bytes${declared === null ? '' : ` (Content-Length ${declared})`}: not read`,
    );
  }
}

/**
 * One HTTP exchange on a fresh connection (no keep-alive: a connection broken mid-batch is never reused),
 * aborted by `signal` (timeouts included). The registry URL policy (`checkRegistryUrl`) is applied first, and
 * https trusts only `tls` (the pinned registry TLS certificate): a refusal rejects with `RegistryRefusal` and
 * nothing is sent. Rejects on any network failure or an incomplete answer, and with ResponseTooLarge (the
 * connection closed at once) when the answer declares or reaches more than `maxResponseBytes` (default
 * MAX_RESPONSE_BYTES): a hostile server cannot make the station buffer more.
 */
export function httpExchange(
  url: string,
  o: {
    method: 'GET' | 'POST';
    headers?: Record<string, string>;
    body?: string;
    signal: AbortSignal;
    tls?: Uint8Array | null;
    maxResponseBytes?: number;
  },
): Promise<{ status: number; text: string }> {
  const cap = o.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  return new Promise((resolve, reject) => {
    const checked = checkRegistryUrl(url, o.tls);
    if (!checked.ok) {
      reject(new RegistryRefusal(checked.error));
      return;
    }
    const u = checked.value;
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string | number> = { ...o.headers, connection: 'close' };
    if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
    const tls = u.protocol === 'https:' && o.tls ? pinnedTls(o.tls) : {};
    const req = send(u, { method: o.method, headers, agent: false, signal: o.signal, ...tls }, (res) => {
      const tooLarge = (declared: number | null) => {
        reject(new ResponseTooLarge(cap, declared));
        res.destroy();
        req.destroy();
      };
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > cap) return tooLarge(declared);
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > cap) tooLarge(null);
        else chunks.push(c);
      });
      res.on('end', () =>
        res.complete
          ? resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })
          : reject(new Error('the answer was cut off')),
      );
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the answer was cut off')));
    });
    // A TLS pin mismatch arrives here before the request is written: as the RegistryRefusal checkServerIdentity
    // returned, or as OpenSSL's verification error (a certificate that does not chain to the pin).
    req.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (u.protocol === 'https:' && !(e instanceof RegistryRefusal) && TLS_VERIFY_CODE.test(code))
        reject(
          new RegistryRefusal(
            stationError('SYNC_REGISTRY_UNTRUSTED', `the registry TLS certificate is not the pinned one (${code})`),
          ),
        );
      else reject(o.signal.aborted ? (o.signal.reason ?? e) : e);
    });
    req.end(o.body);
  });
}

/**
 * The station error of a failed `httpExchange` (`what`: e.g. "POST /v1/batches"): a transport refusal's own error
 * (RegistryRefusal: URL policy, TLS pin), SYNC_RESPONSE_TOO_LARGE for an oversized answer, else SYNC_UNREACHABLE
 * (network failure, timeout after `timeoutMs`, answer cut off).
 */
export function exchangeError(
  e: unknown,
  what: string,
  timeoutMs?: number,
  details?: Record<string, unknown>,
): StationError {
  if (e instanceof RegistryRefusal) return e.error;
  if (e instanceof ResponseTooLarge)
    return stationError('SYNC_RESPONSE_TOO_LARGE', `${what}: ${e.message}`, { ...details, limit: e.limit });
  const why =
    (e as Error).name === 'TimeoutError' && timeoutMs !== undefined
      ? `no answer within ${timeoutMs} ms`
      : (e as Error).message;
  return stationError('SYNC_UNREACHABLE', `${what}: ${why}`, details);
}

/** The audience of this station's signed requests: the pinned registry certificate's (`registryAudience`). */
export function pinnedAudience(registryCertificate: Uint8Array | null): Promise<Result<string>> {
  return registryCertificate
    ? registryAudience(registryCertificate).then(ok)
    : Promise.resolve(
        fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE'),
      );
}

/**
 * The registry's `{error: {code, message}}` of a failed answer; when the body is not one, `HTTP <status>` and the
 * first `maxRaw` characters of the body.
 */
export function registryErrorOf(
  res: { status: number; text: string },
  maxRaw = 200,
): { readonly code: string; readonly message: string } {
  try {
    const e = ErrorBodySchema.parse(JSON.parse(res.text));
    return { code: e.error.code, message: e.error.message };
  } catch {
    return { code: `HTTP ${res.status}`, message: res.text.slice(0, maxRaw) };
  }
}

/** Bytes of a batch body besides the record JWS and the proof entries (ids, signed head, JSON framing). */
const RESERVED_BYTES = 64 * 1024;
/**
 * Room always left for the audit proof when records are claimed: a batch of 500 typical records (~13 KiB) still
 * fits, and the proof takes what the records leave, up to BATCH_PROOF_BYTES (docs/audit.md).
 */
const MIN_PROOF_BYTES = 512 * 1024;

const abortable = (signal: AbortSignal | undefined, ms: number): AbortSignal =>
  signal ? AbortSignal.any([signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);

/** Open the sync service on the station database. */
export function openSync(o: SyncOptions): Result<SyncService> {
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const ob = openOutbox(o.dbFile, { clock, ...(o.synchronous ? { synchronous: o.synchronous } : {}) });
  if (!ob.ok) return ob;
  const outbox = ob.value;
  const batchSize = Math.max(1, Math.min(MAX_BATCH_RECORDS, o.batchSize ?? MAX_BATCH_RECORDS));
  const baseMs = o.backoff?.baseMs ?? 1000;
  const capMs = o.backoff?.capMs ?? 5 * 60_000;
  const idleMs = o.idleMs ?? 2000;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const random = o.random ?? Math.random;
  const baseUrl = o.registryUrl ? o.registryUrl.replace(/\/+$/, '') : null;
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

  const registryCert = (): Result<Uint8Array> =>
    o.registryCertificate
      ? ok(o.registryCertificate)
      : fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');

  async function checkHealth(signal?: AbortSignal): Promise<boolean> {
    if (!baseUrl) return false;
    let r = false;
    try {
      const res = await httpExchange(`${baseUrl}/v1/health`, {
        method: 'GET',
        tls: o.registryTlsCertificate ?? null,
        signal: abortable(signal, Math.min(timeoutMs, 5000)),
        maxResponseBytes: MAX_HEALTH_RESPONSE_BYTES,
      });
      r = res.status === 200 && HealthSchema.safeParse(JSON.parse(res.text)).success;
    } catch {
      r = false;
    }
    if (r !== reachable) {
      reachable = r;
      emit();
    }
    return r;
  }

  /**
   * The signed audit head and its consistency proof (entries since the head the registry last confirmed), at most
   * `budget` bytes of entry JSON; null for an empty chain. Throws SyncFailure when the HSM cannot sign.
   */
  async function signedAuditHead(budget: number, batchId: string): Promise<AuditHeadSubmission | null> {
    const p = outbox.auditProof(Math.max(0, budget));
    if (p.head.seq === 0) return null;
    if (p.anchoredHash && p.anchoredHash !== p.fromHash)
      log.log('error', 'the local audit chain no longer holds the head the registry anchored', {
        seq: p.fromSeq,
        anchored: p.anchoredHash,
        local: p.fromHash,
      });
    const head = await signAuditHead({
      signer: o.signer,
      chain: o.chain,
      stationId: o.stationId,
      seq: p.head.seq,
      hash: p.head.hash,
      clock,
    });
    if (!head.ok) throw new SyncFailure(head.error);
    await o.failpoint?.('audit-head-signed', { batchId, seq: p.head.seq });
    return { head: head.value, fromSeq: p.fromSeq, fromHash: p.fromHash, entries: [...p.entries] };
  }

  /** Log the registry's verdict on an audit head (a refusal is a security finding: an error). */
  function noteAnchor(v: AuditAnchorOutcome | undefined, applied: ApplyOutcome, what: string): void {
    if (!v) return;
    const ctx = { what, status: v.status, seq: v.seq, anchored: v.anchored?.seq ?? null };
    if (v.status === 'refused' || applied.anchor?.mismatch)
      log.log('error', 'the registry did not anchor this station audit chain: it does not extend the anchored one', {
        ...ctx,
        finding: v.finding,
        message: v.message,
        localMismatch: applied.anchor?.mismatch ?? false,
      });
    else if (v.status === 'invalid')
      log.log('warn', 'the registry could not check the audit head', { ...ctx, message: v.message });
    else log.log('debug', 'audit head anchored', ctx);
  }

  /** POST one batch (fresh signature), verify the receipt, apply it. Throws SyncFailure. */
  async function sendBatch(batchId: string, signal: AbortSignal | undefined): Promise<ApplyOutcome> {
    const batch = outbox.batch(batchId);
    if (!batch) throw new SyncFailure(stationError('INTERNAL', `batch ${batchId} has no records`));
    const records = batch.items.map((i) => i.jws);
    const recordBytes = records.reduce((n, r) => n + r.length + 3, 0); // JWS: ASCII
    const auditHead = await signedAuditHead(
      Math.min(BATCH_PROOF_BYTES, MAX_BATCH_BYTES - RESERVED_BYTES - recordBytes),
      batchId,
    );
    const body = JSON.stringify({ batchId, records, ...(auditHead ? { auditHead } : {}) });
    const audience = await pinnedAudience(o.registryCertificate);
    if (!audience.ok) throw new SyncFailure(audience.error);
    const auth = await signRequest(o.signer, o.stationId, 'POST', '/v1/batches', body, clock, audience.value);
    if (!auth.ok) throw new SyncFailure(auth.error);
    let res: { status: number; text: string };
    try {
      res = await httpExchange(`${baseUrl}/v1/batches`, {
        method: 'POST',
        tls: o.registryTlsCertificate ?? null,
        headers: { 'content-type': 'application/json', authorization: auth.value },
        body,
        signal: abortable(signal, timeoutMs),
      });
    } catch (e) {
      if (e instanceof RegistryRefusal) throw new SyncFailure(e.error);
      reachable = false;
      throw new SyncFailure(exchangeError(e, `batch ${batchId}`, timeoutMs, { batchId }));
    }
    reachable = true;
    const text = res.text;
    if (res.status !== 200) {
      const { code, message } = registryErrorOf(res);
      if (code === 'AUTH_STATION_REVOKED') o.onStationRevokedAnswer?.();
      if (code === 'BATCH_CONFLICT') {
        // The registry stored nothing for this id: send the records again under a new batch id.
        const n = outbox.releaseBatch(batchId);
        log.log('warn', 'registry refused a batch id as used with other records; re-queued', { batchId, n });
      }
      const transient = res.status >= 500 || res.status === 429;
      throw new SyncFailure(
        stationError(
          transient ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
          `batch ${batchId}: registry answered ${res.status} ${code}: ${message}`,
          { batchId, status: res.status, code },
        ),
      );
    }
    let receipt: ReceiptPayload;
    let receiptJws: string;
    try {
      const parsed = BatchResponseSchema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(zodMessage(parsed.error));
      receiptJws = parsed.data.receipt;
      const cert = registryCert();
      if (!cert.ok) throw new SyncFailure(cert.error);
      const v = await verifyReceipt(receiptJws, cert.value, { stationId: o.stationId, batchId });
      if (!v.ok) throw new SyncFailure(stationError('SYNC_RECEIPT_INVALID', `batch ${batchId}: ${v.error.message}`));
      receipt = v.value;
    } catch (e) {
      if (e instanceof SyncFailure) throw e;
      throw new SyncFailure(
        stationError('SYNC_RECEIPT_INVALID', `batch ${batchId}: the answer is not a batch response: ${String(e)}`),
      );
    }
    const order = batch.items.map((i) => i.recordId);
    const applied = outbox.applyReceipt(
      {
        receiptId: receipt.receiptId,
        batchId,
        issuedAt: receipt.issuedAt,
        jws: receiptJws,
        accepted: receipt.accepted,
        rejected: receipt.rejected,
        ...(receipt.auditHead ? { auditHead: receipt.auditHead } : {}),
      },
      'online',
      order,
    );
    noteAnchor(receipt.auditHead, applied, `batch ${batchId}`);
    const named = new Set([
      ...receipt.accepted.map((a) => a.recordId),
      ...receipt.rejected.map((r) => r.recordId ?? order[r.index] ?? ''),
    ]);
    const missing = batch.items.filter((i) => i.state === 'sent' && !named.has(i.recordId)).map((i) => i.recordId);
    if (missing.length) outbox.failUnmentioned(batchId, receipt.receiptId, missing);
    if (applied.failed > 0)
      log.log('warn', 'registry rejected records', {
        batchId,
        failed: applied.failed,
        reasons: [...new Set(receipt.rejected.map((r) => r.reason))],
      });
    log.log('info', 'batch acknowledged', { batchId, receiptId: receipt.receiptId, marked: applied.marked });
    return applied;
  }

  /** Re-send batches left `sent`, then claim and send new ones until nothing is pending. Throws SyncFailure. */
  async function drain(signal: AbortSignal | undefined): Promise<number> {
    let total = 0;
    for (;;) {
      if (signal?.aborted) throw new SyncFailure(stationError('SYNC_UNREACHABLE', 'sync stopped'));
      let batchId = outbox.sentBatchIds()[0];
      if (batchId === undefined) {
        const claimed = outbox.claimBatch(
          globalThis.crypto.randomUUID(),
          batchSize,
          MAX_BATCH_BYTES - RESERVED_BYTES - MIN_PROOF_BYTES,
        );
        if (!claimed) return total;
        batchId = claimed.batchId;
        emit();
        await o.beforeSend?.(batchId, claimed.items.length);
      }
      const r = await sendBatch(batchId, signal);
      total += r.marked;
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
    if (!baseUrl) return fail('CONFIG_INVALID', 'no registry URL is configured: run station enroll --registry URL');
    if (!o.registryCertificate) return registryCert() as Result<never>;
    const policy = checkRegistryUrl(baseUrl, o.registryTlsCertificate);
    if (!policy.ok) return policy;
    if (!(await checkHealth(signal))) {
      return fail('SYNC_UNREACHABLE', `the registry at ${baseUrl} is not reachable (GET /v1/health)`);
    }
    try {
      return ok(await drain(signal));
    } catch (e) {
      if (e instanceof SyncFailure) return { ok: false, error: e.error };
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

  async function anchoredHeads(signal?: AbortSignal): Promise<Result<AnchoredHeadsPayload>> {
    if (!baseUrl) return fail('CONFIG_INVALID', 'no registry URL is configured: run station enroll --registry URL');
    const cert = registryCert();
    if (!cert.ok) return cert;
    const challenge = toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16)));
    const path = `/v1/audit-heads?challenge=${challenge}`;
    const audience = await pinnedAudience(cert.value);
    if (!audience.ok) return audience;
    const auth = await signRequest(o.signer, o.stationId, 'GET', path, '', clock, audience.value);
    if (!auth.ok) return auth;
    let res: { status: number; text: string };
    try {
      res = await httpExchange(`${baseUrl}${path}`, {
        method: 'GET',
        tls: o.registryTlsCertificate ?? null,
        headers: { authorization: auth.value },
        signal: abortable(signal, timeoutMs),
      });
    } catch (e) {
      return err(exchangeError(e, 'GET /v1/audit-heads'));
    }
    if (res.status !== 200) {
      const { code, message } = registryErrorOf(res);
      return fail(
        res.status >= 500 ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
        `GET /v1/audit-heads: registry answered ${res.status} ${code}: ${message}`,
      );
    }
    let jws: unknown;
    try {
      jws = (JSON.parse(res.text) as { jws?: unknown }).jws;
    } catch {
      jws = undefined;
    }
    if (typeof jws !== 'string') return fail('SYNC_RECEIPT_INVALID', 'GET /v1/audit-heads: the answer is not {jws}');
    const v = await verifyDocument('anchored heads', jws, AUDIT_HEADS_TYP, AnchoredHeadsPayloadSchema, cert.value);
    if (!v.ok) return fail('SYNC_RECEIPT_INVALID', v.error.message);
    const p = v.value.payload;
    if (p.stationId !== o.stationId)
      return fail('SYNC_RECEIPT_INVALID', `anchored heads: issued for station ${p.stationId}, not ${o.stationId}`);
    if (p.challenge !== challenge)
      return fail('SYNC_RECEIPT_INVALID', 'anchored heads: the answer does not echo this request (replayed or stale)');
    return ok(p);
  }

  const service: SyncService = {
    outbox,
    status,
    checkHealth,
    anchoredHeads,

    async syncOnce(signal) {
      const r = await exclusive(() => attempt(signal));
      if (r.ok) {
        lastError = null;
        failures = 0;
        nextAttemptAt = null;
      } else lastError = `${r.error.code}: ${r.error.message}`;
      emit();
      return r.ok ? ok(status()) : r;
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
      const items = outbox.unacknowledged(MAX_BUNDLE_RECORDS);
      const evs = o.revocationEvents ? await o.revocationEvents.list(MAX_REVOCATION_EVENTS) : ok([]);
      if (!evs.ok) return evs;
      if (!items.length && !evs.value.length)
        return fail('INPUT_INVALID', 'nothing to export: every record is acknowledged or failed');
      let auditHead: AuditHeadSubmission | null;
      try {
        auditHead = await signedAuditHead(BUNDLE_PROOF_BYTES, 'bundle');
      } catch (e) {
        if (e instanceof SyncFailure) return { ok: false, error: e.error };
        throw e;
      }
      const b = await createBundle({
        signer: o.signer,
        chain: o.chain,
        stationId: o.stationId,
        records: items.map((i) => i.jws),
        revocations: evs.value.map((e) => e.jws),
        clock,
        ...(auditHead ? { auditHead } : {}),
      });
      if (!b.ok) return b;
      outbox.noteExport(
        b.value.bundleId,
        items.map((i) => i.recordId),
      );
      const stamp = clock
        .now()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      const fileName = `${o.stationId}-${stamp}-${items.length}.bundle.jws`;
      log.log('info', 'bundle exported', {
        bundleId: b.value.bundleId,
        count: items.length,
        revocationEvents: evs.value.length,
      });
      emit();
      return ok({ fileName, content: b.value.jws + '\n', count: items.length, revocationEvents: evs.value.length });
    },

    async importReceipt(content) {
      const cert = registryCert();
      if (!cert.ok) return cert;
      if (content.length > 16 * 1024 * 1024) return fail('SYNC_RECEIPT_INVALID', 'the receipt file is too large');
      const v = await verifyReceipt(content.trim(), cert.value, { stationId: o.stationId });
      if (!v.ok)
        return fail(
          'SYNC_RECEIPT_INVALID',
          `the receipt was not accepted, nothing was marked as synced: ${v.error.message}`,
        );
      const r = v.value;
      const applied = outbox.applyReceipt(
        {
          receiptId: r.receiptId,
          batchId: r.batchId,
          issuedAt: r.issuedAt,
          jws: content.trim(),
          accepted: r.accepted,
          rejected: r.rejected,
          ...(r.auditHead ? { auditHead: r.auditHead } : {}),
        },
        'import',
      );
      noteAnchor(r.auditHead, applied, `receipt ${r.receiptId}`);
      const parts = [`${applied.marked} record(s) marked as synced`];
      if (applied.alreadySynced) parts.push(`${applied.alreadySynced} were already synced`);
      if (applied.unknown)
        parts.push(`${applied.unknown} are not records of this station (or differ from them) and were ignored`);
      if (applied.failed) parts.push(`${applied.failed} were rejected by the registry (see sync status)`);
      if (applied.duplicateReceipt) parts.push('this receipt had been imported before');
      if (r.revocations?.length && o.revocationEvents) {
        const ids = r.revocations.flatMap((x) => (x.requestId ? [x.requestId] : []));
        const done = o.revocationEvents.apply(r.revocations, ids);
        parts.push(`${done} of ${ids.length} revocation event(s) acknowledged`);
      }
      const message = `receipt ${r.receiptId} (batch ${r.batchId}): ${parts.join('; ')}`;
      log.log('info', 'receipt imported', { receiptId: r.receiptId, ...applied });
      emit();
      return ok({ marked: applied.marked, alreadySynced: applied.alreadySynced, unknown: applied.unknown, message });
    },

    async close() {
      await service.stop();
      await lock.catch(() => undefined);
      closed = true;
      listeners.clear();
      outbox.close();
    },
  };
  return ok(service);
}
