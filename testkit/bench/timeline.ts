/**
 * Where a provisioning cycle's time goes, from both ends of the wire (scripts/bench.ts, scaling part): the station's
 * calls to the board as the bench sees them (start and end of each call) joined with the simulator's own timeline
 * of the same requests (`--trace`, test/sim/session.ts `SessionTrace`: decoded, processing time over, answered,
 * written). Both sides stamp the machine's monotonic clock, so the two timelines line up exactly.
 *
 * A cycle splits into (the parts add up to the cycle):
 * - `start`: from the provision call to the first call on the board (open the link, hello, create the run);
 * - `station`: between the end of one call and the start of the next, and after the last (the station's own work
 *   and its event loop's queue);
 * - `toBoard`: from the start of a call until the simulator decoded the request (the station's encoding and write,
 *   the pty, the simulator reading it);
 * - `latency`: the simulated processing time as configured (what a real board would take);
 * - `simQueue`: the rest of the time until the firmware started (the simulator's event loop busy with other boards);
 * - `firmware`: the simulated firmware's work (its CPU, and anything it blocks on, e.g. writing its state file);
 * - `simWrite`: handing the response to the pty;
 * - `toStation`: from the simulator's write until the call returned (the pty, the station reading, decoding and its
 *   event loop's queue).
 */

/** The wire op of each BoardClient method (core/ports.ts), as the simulator names it. */
export const WIRE_OP: Readonly<Record<string, string>> = {
  identify: 'identify',
  attest: 'attest',
  generateKey: 'keygen',
  beginKeyInjection: 'injectBegin',
  injectWrappedKey: 'injectKey',
  installCertificate: 'installCert',
  readMeasurements: 'measure',
  lock: 'lock',
  zeroize: 'zeroize',
  tpmTransmit: 'tpm',
};

/** One call on the board as the station made it (ms, monotonic clock). */
export interface CallSpan {
  readonly op: string;
  readonly start: number;
  readonly end: number;
}

/** One board's provisioning as the bench saw it. */
export interface BoardRun {
  readonly start: number;
  readonly end: number;
  readonly calls: readonly CallSpan[];
}

/** One request as the simulator handled it (test/sim/session.ts `SessionTrace`). */
export interface RequestTrace {
  readonly op: string;
  readonly rx: number;
  readonly run: number;
  readonly done: number;
  readonly sent: number;
}

export const PARTS = [
  'start',
  'station',
  'toBoard',
  'latency',
  'simQueue',
  'firmware',
  'simWrite',
  'toStation',
] as const;
export type Part = (typeof PARTS)[number];
export type Parts = Record<Part, number>;

const zero = (): Parts => ({
  start: 0,
  station: 0,
  toBoard: 0,
  latency: 0,
  simQueue: 0,
  firmware: 0,
  simWrite: 0,
  toStation: 0,
});

/** A board's cycle split into parts, in total and per op (the op's own request and the station's time after it). */
export interface BoardBreakdown {
  readonly cycle: number;
  readonly total: Parts;
  readonly byOp: ReadonlyMap<string, Parts>;
}

/**
 * Split one board's cycle. `traces` are the simulator's traces of this board's requests in order (its `hello`, sent
 * before the calls the bench sees, is skipped); `latencyOf` is the configured processing time of an op. Returns an
 * error text when the two sides do not match (a retried request, a missing trace).
 */
export function splitCycle(
  run: BoardRun,
  traces: readonly RequestTrace[],
  latencyOf: (op: string) => number,
): BoardBreakdown | string {
  const reqs = traces.filter((t) => t.op !== 'hello');
  if (reqs.length !== run.calls.length)
    return `${run.calls.length} calls but ${reqs.length} simulator traces (${reqs.map((r) => r.op).join(',')})`;
  const total = zero();
  const byOp = new Map<string, Parts>();
  total.start = (run.calls[0]?.start ?? run.end) - run.start;
  for (const [k, c] of run.calls.entries()) {
    const t = reqs[k]!;
    if (t.op !== c.op) return `call ${k} is ${c.op} but the simulator traced ${t.op}`;
    const lat = latencyOf(c.op);
    const p = zero();
    p.toBoard = t.rx - c.start;
    p.latency = lat;
    p.simQueue = t.run - t.rx - lat;
    p.firmware = t.done - t.run;
    p.simWrite = t.sent - t.done;
    p.toStation = c.end - t.sent;
    p.station = (run.calls[k + 1]?.start ?? run.end) - c.end;
    const acc = byOp.get(c.op) ?? zero();
    for (const part of PARTS) {
      acc[part] += p[part];
      total[part] += p[part];
    }
    byOp.set(c.op, acc);
  }
  return { cycle: run.end - run.start, total, byOp };
}

/** The mean of each part over boards (ms per board). */
export function meanParts(xs: readonly Parts[]): Parts {
  const m = zero();
  for (const x of xs) for (const part of PARTS) m[part] += x[part] / xs.length;
  return m;
}
