/**
 * Station-side client of the board wire protocol (docs/protocol.md): negotiates the version with `hello`, then
 * serves BoardClient calls one at a time per board, with per-request timeouts, retries that reuse the request id
 * (the board replays its cached answer), stale-answer filtering, and byte accounting.
 */
import type { AttestationEvidence, AttestKeyRole, Curve, BoardIdentity, Measurements } from '../model.js';
import type { AttestOptions, BoardClient, ByteLink, CallOptions, Clock, Logger } from '../ports.js';
import { systemClock } from '../ports.js';
import { fail, stationError, type StationError } from '../errors.js';
import { err, ok, type Result } from '../result.js';
import { toHex } from '../bytes.js';
import { encodeFrame, FrameDecoder, MAX_FRAME, PROTOCOL_VERSION, type DecodedFrame } from './framing.js';
import {
  decodeResponse,
  encodePayload,
  frameSize,
  OPCODES,
  PROTOCOL_V1,
  PROTOCOL_V2,
  PROTOCOL_V3,
  sanitizeBoardText,
  type Op,
  type Requests,
  type Responses,
} from './messages.js';
import { tpmBytesProblem } from './tpm-relay.js';

/**
 * Protocol versions this station speaks, most preferred last. Version 1 is offered so that a legacy board can be
 * identified and refused with ATTEST_LEGACY_REFUSED (or attested in legacy mode where its profile allows it).
 */
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_V1, PROTOCOL_V2, PROTOCOL_V3];
export const DEFAULT_TIMEOUT_MS = 3000;
export const DEFAULT_LONG_TIMEOUT_MS = 20_000;
export const DEFAULT_RETRIES = 2;
/** More stale (non-matching) frames than this during one call is PROTOCOL_UNEXPECTED. */
export const MAX_STALE_FRAMES = 8;
/** Requests that may take the board a while (key generation, unwrapping, flash writes, a TPM command). */
export const LONG_OPS: ReadonlySet<Op> = new Set<Op>(['keygen', 'injectKey', 'installCert', 'tpm']);

export interface ConnectOptions {
  logger?: Logger;
  clock?: Clock;
  /** Per-attempt timeout for ordinary requests (default 3000 ms). */
  timeoutMs?: number;
  /** Per-attempt timeout for keygen, injectKey, installCert and tpm (default 20000 ms). */
  longTimeoutMs?: number;
  /** Retries after a timeout or a corrupted/malformed answer (default 2). */
  retries?: number;
  /** Cancels the `hello` exchange. */
  signal?: AbortSignal;
  /** First request id (1..65535); random by default so a new session never matches a board's cached id. */
  firstRequestId?: number;
}

export interface BoardClientStats {
  bytesSent: number;
  bytesReceived: number;
  requests: number;
  retries: number;
}

export interface BoardClientWithStats extends BoardClient {
  /** Board name from `hello` (free text, sanitised). */
  readonly board: string;
  /** Maximum frame size the board accepts (from `hello`, capped at MAX_FRAME). */
  readonly maxFrame: number;
  stats(): BoardClientStats;
}

type WaitEvent = { type: 'frame'; frame: DecodedFrame } | { type: 'closed'; error?: Error };

type AttemptOutcome<T> = { final: Result<T> } | { retry: StationError };

const silentLogger: Logger = {
  log: () => undefined,
  child: () => silentLogger,
};

function cancelled(what: string): Result<never> {
  return fail('FLOW_CANCELLED', `${what} was cancelled`);
}

class Connection implements BoardClientWithStats {
  readonly path: string;
  protocolVersion = 0;
  board = '';
  maxFrame = MAX_FRAME;

  private readonly decoder = new FrameDecoder();
  private readonly unsubscribe: (() => void)[] = [];
  private waiter: ((ev: WaitEvent) => void) | null = null;
  private closed = false;
  private tail: Promise<void> = Promise.resolve();
  private nextId: number;
  private readonly counters: BoardClientStats = { bytesSent: 0, bytesReceived: 0, requests: 0, retries: 0 };

  constructor(
    private readonly link: ByteLink,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly longTimeoutMs: number,
    private readonly retries: number,
    firstRequestId: number,
  ) {
    this.path = link.path;
    this.nextId = firstRequestId;
    this.unsubscribe.push(link.onData((chunk) => this.onData(chunk)));
    this.unsubscribe.push(link.onClose((e) => this.onClose(e)));
  }

  // ------------------------------------------------------------ link events

  private onData(chunk: Uint8Array): void {
    this.counters.bytesReceived += chunk.length;
    for (const frame of this.decoder.push(chunk)) {
      if (this.waiter) this.waiter({ type: 'frame', frame });
      else if (frame.ok) {
        this.log.log('debug', 'unsolicited frame discarded', {
          requestId: frame.header.requestId,
          opcode: frame.header.opcode,
          kind: frame.header.kind,
        });
      } else {
        this.log.log('debug', 'framing error while idle', { code: frame.code, message: frame.message });
      }
    }
  }

  private onClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.log.log(error ? 'warn' : 'info', 'link closed', error ? { error: error.message } : undefined);
    this.waiter?.(error ? { type: 'closed', error } : { type: 'closed' });
  }

  /** Stop listening to the link without closing it. */
  detach(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }

  // ------------------------------------------------------------ request machinery

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffff ? 1 : id + 1; // 0 is never used: boards may use it as "no cached response"
    return id;
  }

  /** Wait for our turn in the per-board queue; false if aborted first. Always call the returned release. */
  private async acquire(signal: AbortSignal | undefined): Promise<{ acquired: boolean; release: () => void }> {
    const prev = this.tail;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.tail = prev.then(() => mine);
    if (!signal) {
      await prev;
      return { acquired: true, release };
    }
    if (signal.aborted) return { acquired: false, release };
    const acquired = await new Promise<boolean>((resolve) => {
      const onAbort = () => resolve(false);
      signal.addEventListener('abort', onAbort, { once: true });
      void prev.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
    return { acquired, release };
  }

  /** Send one request and wait for its validated response (with retries). */
  async call<O extends Op>(op: O, body: Requests[O], opts: CallOptions = {}): Promise<Result<Responses[O]>> {
    const { signal } = opts;
    if (signal?.aborted) return cancelled(op);
    if (this.closed) return fail('LINK_DISCONNECTED', `link ${this.path} is closed`, { op });
    const { acquired, release } = await this.acquire(signal);
    try {
      if (!acquired || signal?.aborted) return cancelled(op);
      if (this.closed) return fail('LINK_DISCONNECTED', `link ${this.path} is closed`, { op });
      const payload = encodePayload(body as object);
      const limit = Math.min(this.maxFrame, MAX_FRAME);
      if (frameSize(payload) > limit) {
        return fail('INPUT_INVALID', `${op} request of ${frameSize(payload)} bytes exceeds the board's frame limit`, {
          op,
          size: frameSize(payload),
          limit,
        });
      }
      const requestId = this.allocateId();
      const frame = encodeFrame(
        { version: PROTOCOL_VERSION, kind: 'request', requestId, opcode: OPCODES[op] },
        payload,
      );
      // A leading 0x00 flushes any partial garbage in the board's receive buffer (empty frames are ignored).
      const wire = new Uint8Array(frame.length + 1);
      wire.set(frame, 1);
      const timeoutMs = opts.timeoutMs ?? (LONG_OPS.has(op) ? this.longTimeoutMs : this.timeoutMs);
      const started = this.clock.monotonicMs();
      const stale = { count: 0 };
      this.counters.requests++;
      let lastError: StationError = stationError('PROTOCOL_TIMEOUT', `${op}: no answer`);
      let badAnswer: StationError | null = null;
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        if (attempt > 0) {
          this.counters.retries++;
          this.log.log('warn', 'retrying request', { op, requestId, attempt, reason: lastError.code });
        }
        const outcome = await this.attempt(op, requestId, wire, timeoutMs, signal, stale);
        if ('final' in outcome) {
          const elapsedMs = Math.round(this.clock.monotonicMs() - started);
          this.log.log('debug', 'request done', {
            op,
            requestId,
            ok: outcome.final.ok,
            ...(outcome.final.ok ? {} : { code: outcome.final.error.code }),
            attempts: attempt + 1,
            elapsedMs,
          });
          return outcome.final;
        }
        lastError = outcome.retry;
        if (lastError.code !== 'PROTOCOL_TIMEOUT') badAnswer = lastError;
      }
      // Garbage followed by silence (e.g. an endless run without delimiters) is reported as the garbage.
      if (lastError.code === 'PROTOCOL_TIMEOUT' && badAnswer) lastError = badAnswer;
      const total = this.retries + 1;
      return err({
        ...lastError,
        message: `${lastError.message} (after ${total} attempt${total === 1 ? '' : 's'})`,
        details: { ...lastError.details, op, requestId, attempts: total },
      });
    } finally {
      release();
    }
  }

  private attempt<O extends Op>(
    op: O,
    requestId: number,
    wire: Uint8Array,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    stale: { count: number },
  ): Promise<AttemptOutcome<Responses[O]>> {
    return new Promise<AttemptOutcome<Responses[O]>>((resolve) => {
      let settled = false;
      const finish = (o: AttemptOutcome<Responses[O]>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.waiter === onEvent) this.waiter = null;
        resolve(o);
      };
      const onAbort = () => finish({ final: cancelled(op) });
      const onEvent = (ev: WaitEvent) => {
        if (ev.type === 'closed') {
          finish({
            final: fail('LINK_DISCONNECTED', `link ${this.path} closed during ${op}`, {
              op,
              requestId,
              ...(ev.error ? { cause: ev.error.message } : {}),
            }),
          });
          return;
        }
        const f = ev.frame;
        if (!f.ok) {
          this.log.log('warn', 'bad frame from board', { op, requestId, code: f.code, message: f.message });
          finish({ retry: stationError(f.code, `${op}: ${f.message}`, { op, requestId }) });
          return;
        }
        if (f.header.kind !== 'response' || f.header.requestId !== requestId) {
          stale.count++;
          this.log.log('debug', 'stale frame discarded', {
            op,
            requestId,
            got: f.header.requestId,
            kind: f.header.kind,
            opcode: f.header.opcode,
          });
          if (stale.count > MAX_STALE_FRAMES) {
            finish({
              final: fail('PROTOCOL_UNEXPECTED', `${op}: too many out-of-order frames from the board`, {
                op,
                requestId,
                stale: stale.count,
              }),
            });
          }
          return;
        }
        const r = decodeResponse(op, f);
        if (!r.ok && r.error.code === 'PROTOCOL_MALFORMED') {
          this.log.log('warn', 'malformed response', { op, requestId, message: r.error.message });
          finish({ retry: r.error });
          return;
        }
        finish({ final: r });
      };
      const timer = setTimeout(
        () =>
          finish({
            retry: stationError('PROTOCOL_TIMEOUT', `${op}: no answer within ${timeoutMs} ms`, {
              op,
              requestId,
              timeoutMs,
            }),
          }),
        timeoutMs,
      );
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      if (this.closed) {
        finish({ final: fail('LINK_DISCONNECTED', `link ${this.path} is closed`, { op, requestId }) });
        return;
      }
      this.waiter = onEvent;
      this.counters.bytesSent += wire.length;
      this.link.write(wire).then(
        () => undefined,
        (e: unknown) =>
          finish({
            final: fail('LINK_DISCONNECTED', `write to ${this.path} failed during ${op}`, {
              op,
              requestId,
              cause: e instanceof Error ? e.message : String(e),
            }),
          }),
      );
    });
  }

  // ------------------------------------------------------------ BoardClient

  async hello(signal: AbortSignal | undefined): Promise<Result<void>> {
    const r = await this.call('hello', { versions: [...SUPPORTED_VERSIONS] }, signal ? { signal } : {});
    if (!r.ok) return r;
    if (!SUPPORTED_VERSIONS.includes(r.value.version)) {
      return fail(
        'PROTOCOL_VERSION',
        `board chose protocol version ${r.value.version}, station offered ${SUPPORTED_VERSIONS.join(',')}`,
        {
          offered: [...SUPPORTED_VERSIONS],
          chosen: r.value.version,
        },
      );
    }
    this.protocolVersion = r.value.version;
    this.maxFrame = Math.min(r.value.maxFrame, MAX_FRAME);
    this.board = sanitizeBoardText(r.value.board, 128);
    return ok(undefined);
  }

  async identify(opts?: CallOptions): Promise<Result<BoardIdentity>> {
    const r = await this.call('identify', {}, opts);
    if (!r.ok) return r;
    const v = r.value;
    const curves: Curve[] = [];
    for (const c of v.capabilities.curves) {
      if (c === 'P-256' || c === 'P-384') {
        if (!curves.includes(c)) curves.push(c);
      } else this.log.log('debug', 'board advertises an unknown curve; ignored', { curve: sanitizeBoardText(c, 32) });
    }
    return ok({
      protocolVersion: this.protocolVersion,
      chipId: v.chipId.toLowerCase(),
      serialNumber: v.serialNumber,
      model: v.model,
      hardwareRevision: v.hardwareRevision,
      firmwareVersion: v.firmwareVersion,
      capabilities: {
        onboardKeygen: v.capabilities.onboardKeygen,
        keyInjection: v.capabilities.keyInjection,
        curves,
      },
      state: {
        hasKey: v.state.hasKey,
        certificateSha256: v.state.certSha256 === null ? null : toHex(v.state.certSha256),
        locked: v.state.locked,
      },
    });
  }

  async attest(nonce: Uint8Array, opts?: AttestOptions): Promise<Result<AttestationEvidence>> {
    if (nonce.length !== 32) return fail('INPUT_INVALID', `attestation nonce must be 32 bytes, got ${nonce.length}`);
    const { key, ...call } = opts ?? {};
    if (this.protocolVersion < PROTOCOL_V2) {
      const r = await this.call('attest', { nonce }, call);
      if (!r.ok) return r;
      if ('statement' in r.value)
        return fail('PROTOCOL_MALFORMED', 'a protocol 1 board answered attest with a statement', { op: 'attest' });
      return ok({ protocol: 1, signature: r.value.signature, chain: r.value.chain });
    }
    const role: AttestKeyRole = key ?? 'device';
    const r = await this.call('attest', { nonce, key: role }, call);
    if (!r.ok) return r;
    // A v2 session answered without a statement: nothing is bound (a downgrade or a broken board).
    if (!('statement' in r.value))
      return fail('ATTEST_STATEMENT_INVALID', 'the board answered a protocol 2 attest without a statement');
    return ok({ protocol: 2, statement: r.value.statement, signature: r.value.signature, chain: r.value.chain });
  }

  async generateKey(params: { curve: Curve; subject: string }, opts?: CallOptions) {
    const r = await this.call('keygen', { curve: params.curve, subject: params.subject }, opts);
    if (!r.ok) return r;
    return ok({ publicKeySpki: r.value.publicKey, csr: r.value.csr });
  }

  async beginKeyInjection(params: { curve: Curve }, opts?: CallOptions) {
    const r = await this.call('injectBegin', { curve: params.curve }, opts);
    if (!r.ok) return r;
    return ok({ curve: params.curve, publicKeySpki: r.value.transportKey });
  }

  async injectWrappedKey(
    key: {
      curve: Curve;
      ephemeralPublicKeySpki: Uint8Array;
      wrappedKey: Uint8Array;
      publicKeySpki: Uint8Array;
      subject: string;
    },
    opts?: CallOptions,
  ) {
    const r = await this.call(
      'injectKey',
      {
        curve: key.curve,
        ephemeralKey: key.ephemeralPublicKeySpki,
        wrappedKey: key.wrappedKey,
        publicKey: key.publicKeySpki,
        subject: key.subject,
      },
      opts,
    );
    if (!r.ok) return r;
    return ok({ publicKeySpki: r.value.publicKey, csr: r.value.csr });
  }

  async installCertificate(chain: readonly Uint8Array[], opts?: CallOptions) {
    const r = await this.call('installCert', { chain: [...chain] }, opts);
    if (!r.ok) return r;
    return ok({ certificateSha256: toHex(r.value.certSha256) });
  }

  async readMeasurements(opts?: CallOptions): Promise<Result<Measurements>> {
    const r = await this.call('measure', {}, opts);
    if (!r.ok) return r;
    const v = r.value;
    return ok({
      firmware: v.firmware.map((f) => ({ name: f.name, version: f.version, sha256: toHex(f.sha256) })),
      secureBoot: v.secureBoot,
      debugLocked: v.debugLocked,
      fuseDigest: toHex(v.fuseDigest),
      configDigest: toHex(v.configDigest),
    });
  }

  async lock(opts?: CallOptions) {
    const r = await this.call('lock', {}, opts);
    if (!r.ok) return r;
    return ok({ locked: true as const });
  }

  async zeroize(chipId: string, opts?: CallOptions) {
    if (!/^(?:[0-9a-fA-F]{2}){4,32}$/.test(chipId)) return fail('INPUT_INVALID', 'chipId must be 8..64 hex characters');
    const r = await this.call('zeroize', { chipId }, opts);
    if (!r.ok) return r;
    return ok({ zeroized: true as const });
  }

  async tpmTransmit(command: Uint8Array, opts?: CallOptions): Promise<Result<Uint8Array>> {
    const problem = tpmBytesProblem(command);
    if (problem) return fail('INPUT_INVALID', `not one TPM 2.0 command: ${problem}`, { op: 'tpm' });
    // A board that did not choose protocol 3 has no relay message: nothing is sent (docs/protocol.md §3.3).
    if (this.protocolVersion < PROTOCOL_V3) {
      return fail(
        'BOARD_UNSUPPORTED',
        `board ${this.path} speaks protocol ${this.protocolVersion}: no TPM relay (protocol 3)`,
        { op: 'tpm', protocolVersion: this.protocolVersion },
      );
    }
    const r = await this.call('tpm', { command }, opts);
    if (!r.ok) return r;
    return ok(r.value.response);
  }

  stats(): BoardClientStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.waiter?.({ type: 'closed' });
    }
    this.detach();
    try {
      await this.link.close();
    } catch (e) {
      this.log.log('debug', 'error while closing link', { error: e instanceof Error ? e.message : String(e) });
    }
  }
}

function randomRequestId(): number {
  const b = new Uint16Array(1);
  globalThis.crypto.getRandomValues(b);
  return (b[0]! % 0xffff) + 1;
}

/**
 * Connect to a board over `link`: negotiate the protocol version with `hello`, then return a BoardClient
 * (with byte/request statistics). On failure the client stops listening but leaves the link open (the caller owns it).
 */
export async function connectBoard(link: ByteLink, opts: ConnectOptions = {}): Promise<Result<BoardClientWithStats>> {
  const logger = (opts.logger ?? silentLogger).child(`board ${link.path}`);
  const first = opts.firstRequestId ?? randomRequestId();
  if (!Number.isInteger(first) || first < 1 || first > 0xffff) throw new RangeError('firstRequestId must be 1..65535');
  const conn = new Connection(
    link,
    logger,
    opts.clock ?? systemClock,
    opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    opts.longTimeoutMs ?? DEFAULT_LONG_TIMEOUT_MS,
    opts.retries ?? DEFAULT_RETRIES,
    first,
  );
  const r = await conn.hello(opts.signal);
  if (!r.ok) {
    conn.detach();
    logger.log('warn', 'hello failed', { code: r.error.code, message: r.error.message });
    return r;
  }
  logger.log('info', 'board connected', {
    protocolVersion: conn.protocolVersion,
    board: conn.board,
    maxFrame: conn.maxFrame,
  });
  return ok(conn);
}
