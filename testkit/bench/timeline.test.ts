import { describe, expect, it } from 'vitest';
import { meanParts, PARTS, splitCycle, type BoardRun, type RequestTrace } from './timeline.js';

const latencyOf = (op: string): number => (op === 'keygen' ? 300 : 5);

/** A board: start 1000, two calls; the simulator decodes 1 ms after each call starts. */
const run: BoardRun = {
  start: 1000,
  end: 1400,
  calls: [
    { op: 'identify', start: 1010, end: 1030 },
    { op: 'keygen', start: 1040, end: 1380 },
  ],
};
const traces: RequestTrace[] = [
  { op: 'hello', rx: 1001, run: 1001, done: 1002, sent: 1002 },
  { op: 'identify', rx: 1011, run: 1018, done: 1019, sent: 1020 },
  { op: 'keygen', rx: 1041, run: 1350, done: 1360, sent: 1361 },
];

describe('splitCycle', () => {
  it('splits a cycle into parts that add up to it, per op and in total', () => {
    const b = splitCycle(run, traces, latencyOf);
    if (typeof b === 'string') throw new Error(b);
    expect(b.cycle).toBe(400);
    expect(PARTS.reduce((s, p) => s + b.total[p], 0)).toBeCloseTo(400, 9);
    expect(b.total.start).toBe(10);
    // identify: 1 ms to the board, 5 latency + 2 queue, 1 firmware, 1 write, 10 back, 10 station before keygen
    expect(b.byOp.get('identify')).toEqual({
      start: 0,
      toBoard: 1,
      latency: 5,
      simQueue: 2,
      firmware: 1,
      simWrite: 1,
      toStation: 10,
      station: 10,
    });
    // keygen: 300 latency + 9 queue, 10 firmware, 19 back, 20 station after the last call
    expect(b.byOp.get('keygen')).toMatchObject({ latency: 300, simQueue: 9, firmware: 10, toStation: 19, station: 20 });
  });

  it('says so when the two sides do not match (a retry, a missing trace)', () => {
    expect(splitCycle(run, traces.slice(0, 2), latencyOf)).toMatch(/2 calls but 1 simulator traces/);
    const swapped = [traces[0]!, { ...traces[2]! }, { ...traces[1]! }];
    expect(splitCycle(run, swapped, latencyOf)).toMatch(/call 0 is identify but the simulator traced keygen/);
  });

  it('meanParts averages each part', () => {
    const b = splitCycle(run, traces, latencyOf);
    if (typeof b === 'string') throw new Error(b);
    const m = meanParts([b.total, { ...b.total, station: b.total.station + 10 }]);
    expect(m.station).toBe(b.total.station + 5);
    expect(m.latency).toBe(305);
  });
});
