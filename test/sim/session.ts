/**
 * One board's protocol endpoint: decodes request frames arriving on its link, applies the replay rule
 * (same requestId and opcode as the previous request -> re-send the cached response without executing),
 * runs the firmware (SimBoard), and sends the response through the fault injector and the UART pacer.
 * Malformed and CRC-bad frames are ignored, as the firmware does.
 */
import { cobsDecode, cobsEncode, FrameDecoder, MAX_FRAME } from '../../core/protocol/framing.js';
import {
  decodeRequest,
  encodeResponse,
  opForCode,
  type ErrorBody,
  type Op,
  type Responses,
} from '../../core/protocol/messages.js';
import type { Faults, SimOp, SimResponse } from './board.js';

/** What a session needs from a board's firmware (SimBoard, SimTpmBoard). */
export interface SimFirmware {
  readonly serialNumber: string;
  /** The current power cycle: work started in an earlier one never completes. */
  readonly epoch: number;
  readonly faults: Faults;
  latencyOf(op: SimOp): number;
  /** Execute one decoded request; never throws. */
  handle(op: SimOp, body: unknown): Promise<SimResponse>;
  /** After executing `op`: unplug now instead of answering (disconnect faults; each fires once). */
  takeDisconnect(op: SimOp): boolean;
}

/** Deterministic PRNG (mulberry32) so a seeded fault run is reproducible. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the session needs from its transport. */
export interface SessionIo {
  /** Write bytes to the station; resolves when handed to the OS. */
  write(data: Uint8Array): Promise<void>;
  /** Simulate pulling the cable (disconnectOn fault). */
  unplug(): void;
}

/**
 * One request's timeline on the board side (`--trace`; the bench's scaling breakdown). Times are ms of the machine's
 * monotonic clock (`process.hrtime`, CLOCK_MONOTONIC: the same clock in every process of the machine).
 */
export interface SessionTrace {
  readonly op: SimOp;
  readonly requestId: number;
  /** The request frame was decoded. */
  readonly rx: number;
  /** The simulated processing time was over: the firmware starts. */
  readonly run: number;
  /** The firmware answered and the response frame was encoded. */
  readonly done: number;
  /** The response's write to the pty starts (after any earlier frame of this board). */
  readonly sent: number;
}

/** Now, in ms of the monotonic clock shared by the processes of the machine. */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface SessionOptions {
  readonly baud?: number;
  readonly rng: () => number;
  readonly log?: (line: string) => void;
  /** Called once per answered request with its timeline (off by default). */
  readonly trace?: (t: SessionTrace) => void;
}

/** UART-ish chunk size: drop decisions and baud pacing work per chunk. */
const CHUNK = 64;

export class BoardSession {
  private readonly decoder = new FrameDecoder();
  private last: { requestId: number; opcode: number; frame: Uint8Array } | null = null;
  private inFlight: { requestId: number; opcode: number } | null = null;
  private closed = false;
  /** Serialises writes so frames never interleave. */
  private writing: Promise<void> = Promise.resolve();
  private readonly log: (line: string) => void;

  constructor(
    private readonly board: SimFirmware,
    private readonly io: SessionIo,
    private readonly opts: SessionOptions,
  ) {
    this.log = opts.log ?? (() => {});
  }

  /** Stop answering (the link is gone). A request being executed finishes but its answer is dropped, unless the board lost power (SimBoard.powerOff): then it is abandoned. */
  close(): void {
    this.closed = true;
  }

  /** Feed bytes received from the station. */
  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    for (const f of this.decoder.push(chunk)) {
      if (!f.ok) {
        this.log(`${this.board.serialNumber}: ignoring bad frame (${f.code}: ${f.message})`);
        continue;
      }
      if (f.header.kind !== 'request') continue;
      void this.onRequest(f.header.requestId, f.header.opcode, f.payload);
    }
  }

  private async onRequest(requestId: number, opcode: number, payload: Uint8Array): Promise<void> {
    const op = opForCode(opcode);
    if (!op) return;
    if (this.inFlight) {
      // A retry of the request being executed: its answer is on the way. Anything else: busy.
      if (this.inFlight.requestId === requestId && this.inFlight.opcode === opcode) return;
      this.send(encodeResponse(op, requestId, { error: { code: 'BUSY', message: 'board is busy' } }));
      return;
    }
    if (this.last && this.last.requestId === requestId && this.last.opcode === opcode) {
      this.log(`${this.board.serialNumber}: replay of ${op} #${requestId}, re-sending cached response`);
      this.send(this.last.frame);
      return;
    }
    const previous = this.last;
    this.inFlight = { requestId, opcode };
    const rx = this.opts.trace ? monotonicMs() : 0;
    let run = rx;
    let body: SimResponse;
    try {
      const req = decodeRequest({ header: { version: 1, kind: 'request', requestId, opcode }, payload });
      if (!req.ok) {
        body = { error: { code: 'BAD_REQUEST', message: req.error.message.slice(0, 500) } };
      } else {
        const epoch = this.board.epoch;
        const latency = this.board.latencyOf(op);
        if (latency > 0) await sleep(latency);
        // Unplugged (power lost) while processing: the request never completes, nothing is answered.
        if (this.board.epoch !== epoch) {
          this.log(`${this.board.serialNumber}: ${op} #${requestId} abandoned: power lost`);
          return;
        }
        if (this.opts.trace) run = monotonicMs();
        body = await this.board.handle(op, req.value.body);
      }
    } finally {
      this.inFlight = null;
    }
    const frame = this.encode(op, requestId, body);
    this.last = { requestId, opcode, frame };
    if (this.closed) return;
    const faults = this.board.faults;
    if (this.board.takeDisconnect(op)) {
      this.log(`${this.board.serialNumber}: fault: unplugging after ${op}, before answering #${requestId}`);
      this.closed = true;
      this.io.unplug();
      return;
    }
    if (faults.stale) {
      const stale = previous ? previous.frame : this.encode(op, (requestId + 0x8000) & 0xffff, body);
      this.log(`${this.board.serialNumber}: fault stale: sending a stale response before #${requestId}`);
      this.send(stale);
    }
    const code = 'error' in body ? (body as unknown as ErrorBody).error.code : 'ok';
    this.log(`${this.board.serialNumber}: ${op} #${requestId} -> ${code}`);
    const trace = this.opts.trace;
    if (!trace) return this.send(frame);
    const done = monotonicMs();
    this.send(frame, () => trace({ op, requestId, rx, run, done, sent: monotonicMs() }));
  }

  private encode(op: Op, requestId: number, body: SimResponse): Uint8Array {
    try {
      return encodeResponse(op, requestId, body as Responses[Op] | ErrorBody);
    } catch (e) {
      // Larger than MAX_FRAME: a firmware bug; answer INTERNAL instead.
      this.log(
        `${this.board.serialNumber}: response to ${op} does not fit in ${MAX_FRAME} bytes: ${(e as Error).message}`,
      );
      return encodeResponse(op, requestId, { error: { code: 'INTERNAL', message: 'response too large' } });
    }
  }

  /** Queue a frame for sending through the fault injector and the UART pacer; `onWrite` runs as its write starts. */
  private send(frame: Uint8Array, onWrite?: () => void): void {
    this.writing = this.writing
      .then(() => this.transmit(frame, onWrite))
      .catch((e: unknown) => {
        this.log(`${this.board.serialNumber}: write failed: ${(e as Error).message}`);
      });
  }

  private async transmit(frame: Uint8Array, onWrite?: () => void): Promise<void> {
    const { dropBytes = 0, corruptBytes = 0 }: Faults = this.board.faults;
    const rng = this.opts.rng;
    let out = frame;
    if (corruptBytes > 0) {
      // Flip bits inside the frame (header, payload, CRC), then re-apply COBS: the station sees a well-delimited
      // frame whose checksum fails, like a UART bit error that the framing survived.
      const raw = cobsDecode(frame.subarray(0, frame.length - 1));
      if (raw) {
        for (let i = 0; i < raw.length; i++) if (rng() < corruptBytes) raw[i] = raw[i]! ^ (1 << Math.floor(rng() * 8));
        const enc = cobsEncode(raw);
        out = new Uint8Array(enc.length + 1);
        out.set(enc);
      }
    }
    const baud = this.opts.baud ?? 0;
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < out.length; o += CHUNK) {
      const c = out.subarray(o, Math.min(out.length, o + CHUNK));
      if (dropBytes > 0 && rng() < dropBytes) continue;
      chunks.push(c);
    }
    if (baud <= 0) {
      if (chunks.length > 0 && !this.closed) {
        onWrite?.();
        await this.io.write(Buffer.concat(chunks));
      }
      return;
    }
    for (const [k, c] of chunks.entries()) {
      if (this.closed) return;
      await sleep(Math.ceil((c.length * 10 * 1000) / baud)); // 8N1: a chunk has arrived 10 bit times per byte later
      if (this.closed) return;
      if (k === 0) onWrite?.();
      await this.io.write(c);
    }
  }
}
