/**
 * `npm run bench`: provisioning throughput measured in one run, with real parts (simulator process on
 * ptys with its latencies at zero, SoftHSM2, SQLite synchronous=FULL).
 *
 * Prints: cycle time per board p50/p95 (one board at a time), the station's own share of a cycle
 * (cycle minus time spent waiting on the board), the station process's CPU per board (user+sys), bytes on the
 * wire per board (and what that costs on a 115200-baud UART), boards/minute at 1, 4 and 16 concurrent boards, the
 * raw HSM signing rate of the same token and the ratio of provisioning throughput to what the HSM alone allows.
 * Then the scaling figures of issue 12 against a second simulator process with board-like latencies (keygen
 * 300 ms, flash 200 ms, other 5 ms): a single-board cycle, 16 boards at once (makespan and each board's time),
 * throughput ÷ (16 × single-board throughput), the station process's CPU per extra board (16 at once vs 1), the
 * simulator's CPU per board, and where a board's cycle goes (testkit/bench/timeline.ts: the bench's calls joined with
 * the simulator's `--trace` of the same requests), one board alone and 16 at once, in total and per request.
 * Then headquarters (scripts/bench/ingest.ts): ingest with full verification for SQLite and PostgreSQL (if
 * LINE_STATION_TEST_PG_URL is set, e.g. `export LINE_STATION_TEST_PG_URL=$(bash scripts/pg-test.sh)`) with 1 and 8
 * stations and its ratio to the raw verify rate, bundle size and rates, queries at a million records.
 * `--station-only` skips the headquarters part; `--no-startup` skips the cold-start part; `--scaling-sims N` plays the
 * 16 scaling boards on N simulator processes; `--sim-prof DIR` runs the scaling simulators with `--cpu-prof` into DIR.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { BoardClient } from '../core/ports.js';
import type { BoardClientWithStats } from '../core/protocol/client.js';
import { measureSignRate } from '../testkit/bench/hsm.js';
import {
  meanParts,
  PARTS,
  splitCycle,
  WIRE_OP,
  type BoardBreakdown,
  type BoardRun,
  type CallSpan,
  type Part,
  type RequestTrace,
} from '../testkit/bench/timeline.js';
import { openEngine, type Engine } from '../station/engine.js';
import { initStation } from '../station/commission/init.js';
import { createLogger } from '../native/logger.js';

const LEVELS = [1, 4, 16] as const;
const SEQUENTIAL_BOARDS = 16;
const HSM_SIGNATURES_PER_BOARD = 3; // device certificate, baseline manifest, provisioning record
const UART_BYTES_PER_S = 11_250; // 115200 baud, 8N1, measured figure for a real UART

/** Simulator latencies of the scaling figure (issue 12): board-like, so the station should scale with boards. */
const SCALING_LATENCY = { keygen: 300, flash: 200, other: 5 } as const;
const SCALING_BOARDS = 16;
/**
 * Boards provisioned one at a time for the single-board reference: even, so both simulated models (they alternate by
 * port: on-board key generation and HSM key injection, whose cycles differ by ~0.1 s) count equally, as in the 16.
 */
const SCALING_SINGLE = 6;

/**
 * Simulator processes that play the scaling boards (`--scaling-sims N`, default 1): the 16 boards are dealt over
 * them; the single-board reference runs on the first. One by default: on this 2-core machine 4 processes doubled the
 * simulator's CPU per board (each process runs its firmware code a quarter as often, and less of it optimised) and
 * did not raise the ratio (docs/benchmarks.md "Scaling and station CPU").
 */
const SCALING_SIMS = ((i) => (i >= 0 ? Number(process.argv[i + 1]) : 1))(process.argv.indexOf('--scaling-sims'));
if (!Number.isInteger(SCALING_SIMS) || SCALING_SIMS < 1 || SCALING_SIMS > SCALING_BOARDS)
  throw new Error(`--scaling-sims must be 1..${SCALING_BOARDS}`);

const dir = mkdtempSync(join(tmpdir(), 'ls-bench-'));
const totalBoards = SEQUENTIAL_BOARDS + 16 + 16;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const fmt = (x: number, d = 1) => x.toFixed(d);
/** CPU time (user + system, ms) of this process since `from`: the station's, the simulators run elsewhere. */
const cpuMs = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

/** Busy and total CPU time of the whole machine (/proc/stat, clock ticks), or null where there is no /proc. */
function machineTicks(): { busy: number; total: number } | null {
  if (!existsSync('/proc/stat')) return null;
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Stops every simulator started (they are separate processes). */
const sims: Array<() => void> = [];

interface SimReady {
  ports: string[];
  vendorRoot: string;
  /** The simulator's process id (node itself: spawned without a wrapper). */
  pid: number;
  /** With `--trace`: each board's requests as the simulator handled them so far, by station-side port path. */
  traces: () => Map<string, RequestTrace[]>;
}

/** Now, in ms of the machine's monotonic clock (the simulator's `--trace` uses the same clock). */
const mono = (): number => Number(process.hrtime.bigint()) / 1e6;

/** `--sim-prof DIR`: run the scaling simulators with `--cpu-prof` into DIR (each profile covers the whole bench). */
const simProfDir = ((i) => (i >= 0 ? process.argv[i + 1] : undefined))(process.argv.indexOf('--sim-prof'));

/**
 * CPU time (ms) of process `pid` so far, all its threads: the scheduler's run time (/proc/<pid>/task/<tid>/schedstat,
 * nanoseconds; a board's few ms are below /proc/<pid>/stat's 10 ms ticks), or /proc/<pid>/stat's tick counts where
 * schedstat is missing; null where there is no /proc.
 */
function processCpuMs(pid: number): number | null {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return ns / 1e6;
  } catch {
    // no schedstat (kernel without CONFIG_SCHEDSTATS)
  }
  try {
    // Fields after the command name (which may hold spaces: it ends at the last ')'): utime is the 12th, stime the 13th.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** CPU time (ms) of all of `pids` so far (null where there is no /proc). */
function processesCpuMs(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const ms = processCpuMs(pid);
    if (ms === null) return null;
    sum += ms;
  }
  return sum;
}

/** Start a simulator process on its own ptys and wait for its ready line. */
async function startSim(
  name: string,
  boards: number,
  extra: readonly string[] = [],
  nodeArgs: readonly string[] = [],
): Promise<SimReady> {
  const sim = spawn(
    process.execPath,
    [
      ...nodeArgs,
      '--import',
      'tsx',
      'test/sim/main.ts',
      '--boards',
      String(boards),
      '--dir',
      join(dir, `${name}-ports`),
      '--state-dir',
      join(dir, `${name}-state`),
      ...extra,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const kill = () => sim.kill('SIGTERM');
  sims.push(kill);
  process.on('exit', kill);
  // Trace lines are kept as they come and parsed when asked for: this process is the station, and parsing them
  // while the boards run would add to the station's event loop what the bench measures.
  const lines: string[] = [];
  const parsed = new Map<string, RequestTrace[]>();
  let ports: string[] = [];
  const traces = (): Map<string, RequestTrace[]> => {
    for (const line of lines.splice(0)) {
      const t = (JSON.parse(line) as { trace: RequestTrace & { board: number } }).trace;
      const port = ports[t.board]!;
      parsed.set(port, [...(parsed.get(port) ?? []), t]);
    }
    return parsed;
  };
  return new Promise<SimReady>((res, rej) => {
    createInterface({ input: sim.stdout! }).on('line', (line) => {
      if (line.startsWith('{"trace"')) lines.push(line);
      else if (line.startsWith('{"ready"')) {
        const r = JSON.parse(line) as Omit<SimReady, 'pid' | 'traces'>;
        ports = r.ports;
        res({ ...r, pid: sim.pid!, traces });
      }
    });
    sim.once('exit', (c) => rej(new Error(`simulator ${name} exited ${c}`)));
  });
}

/** Times every board call, to split a cycle into board time and station time (and logs each call in `calls`). */
function timed(b: BoardClientWithStats, acc: { boardMs: number; calls: CallSpan[] }): BoardClient {
  return new Proxy(b, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if (typeof v !== 'function' || prop === 'close' || prop === 'stats')
        return typeof v === 'function' ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const t = mono();
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          const end = mono();
          acc.boardMs += end - t;
          acc.calls.push({ op: WIRE_OP[String(prop)] ?? String(prop), start: t, end });
        }
      };
    },
  });
}

/** Latency of an op at the scaling latencies (test/sim/board.ts `latencyOf`). */
function scalingLatencyOf(op: string): number {
  if (op === 'keygen') return SCALING_LATENCY.keygen;
  if (op === 'installCert' || op === 'injectKey' || op === 'lock') return SCALING_LATENCY.flash;
  return SCALING_LATENCY.other;
}

/** Join the bench's calls with the simulator's traces, per port (waits up to 2 s for the last trace lines). */
async function breakdowns(
  tracesOf: (port: string) => RequestTrace[],
  runs: ReadonlyArray<{ run: BoardRun; port: string }>,
): Promise<Map<string, BoardBreakdown | string>> {
  const complete = () => runs.every((r) => tracesOf(r.port).length > r.run.calls.length);
  for (let waited = 0; !complete() && waited < 2000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  return new Map(runs.map((r) => [r.port, splitCycle(r.run, tracesOf(r.port), scalingLatencyOf)]));
}

const PART_LABEL: Record<Part, string> = {
  start: 'start (link, hello, run)',
  station: 'station between calls',
  toBoard: 'station → simulator',
  latency: 'board latency',
  simQueue: 'simulator queue',
  firmware: 'simulator firmware',
  simWrite: 'simulator write',
  toStation: 'simulator → station',
};

/** Print where a cycle goes: one board alone, 16 at once (mean and the last to finish), and per op for the 16. */
function printBreakdown(
  splits: Map<string, BoardBreakdown | string>,
  singlePorts: readonly string[],
  burstPorts: readonly string[],
  window: { start: number; end: number },
): void {
  const good = (ports: readonly string[]) =>
    ports.flatMap((p) => {
      const b = splits.get(p);
      if (typeof b === 'string' || b === undefined) {
        console.log(`| breakdown of ${p} | not available: ${b ?? 'no run'} |`);
        return [];
      }
      return [b];
    });
  const singles = good(singlePorts);
  const boards = good(burstPorts);
  if (singles.length === 0 || boards.length === 0) return;
  const last = boards.reduce((a, b) => (b.cycle > a.cycle ? b : a));
  const one = meanParts(singles.map((b) => b.total));
  const all = meanParts(boards.map((b) => b.total));
  console.log('');
  console.log(
    `| where a board's cycle goes (ms; mean per board) | 1 at a time | ${SCALING_BOARDS} at once | last of the ${SCALING_BOARDS} | ${SCALING_BOARDS} at once − 1 at a time |`,
  );
  console.log('| --- | --- | --- | --- | --- |');
  for (const part of PARTS)
    console.log(
      `| ${PART_LABEL[part]} | ${fmt(one[part])} | ${fmt(all[part])} | ${fmt(last.total[part])} | ${fmt(all[part] - one[part])} |`,
    );
  const cyc = (xs: BoardBreakdown[]) => xs.reduce((a, b) => a + b.cycle, 0) / xs.length;
  console.log(
    `| cycle | ${fmt(cyc(singles))} | ${fmt(cyc(boards))} | ${fmt(last.cycle)} | ${fmt(cyc(boards) - cyc(singles))} |`,
  );
  const ops = [...boards[0]!.byOp.keys()];
  const cols: Part[] = ['toBoard', 'simQueue', 'firmware', 'toStation', 'station'];
  console.log('');
  console.log(
    `| ${SCALING_BOARDS} at once, per request (ms; mean per board − 1 at a time) | ${cols.map((c) => PART_LABEL[c]).join(' | ')} |`,
  );
  console.log(`| --- |${cols.map(() => ' --- |').join('')}`);
  for (const op of ops) {
    const m = meanParts(boards.flatMap((b) => (b.byOp.get(op) ? [b.byOp.get(op)!] : [])));
    const s = meanParts(singles.flatMap((b) => (b.byOp.get(op) ? [b.byOp.get(op)!] : [])));
    console.log(`| ${op} | ${cols.map((c) => `${fmt(m[c])} (${fmt(m[c] - s[c], 1)})`).join(' | ')} |`);
  }
  console.log(`(burst window, monotonic ms: ${fmt(window.start, 1)} – ${fmt(window.end, 1)})`);
}

async function main(): Promise<void> {
  console.log(`# Line Station benchmark (${new Date().toISOString()}, ${process.version}, data in ${dir})`);
  // Simulator processes: one at latency 0 (the station's own cost), and SCALING_SIMS at board-like latencies (the
  // scaling figure), which get the first one's vendor PKI (same root: the station trusts one root per subject name).
  const ready = await startSim('sim', totalBoards);
  // The scaling simulators: board k of the 16 on simulator k % SCALING_SIMS; each also has a warm-up board (its
  // first connection and first run of each op, not counted) and the first has the single-board reference's boards.
  const slowLatency = Object.entries(SCALING_LATENCY).flatMap(([op, ms]) => [`--latency-${op}`, String(ms)]);
  const slow = await Promise.all(
    Array.from({ length: SCALING_SIMS }, async (_, k) => {
      const name = `slow${k}`;
      mkdirSync(join(dir, `${name}-state`));
      for (const f of ['vendor-root.pem', 'vendor-root-key.pem'])
        copyFileSync(join(dir, 'sim-state', f), join(dir, `${name}-state`, f));
      const share = Math.floor(SCALING_BOARDS / SCALING_SIMS) + (k < SCALING_BOARDS % SCALING_SIMS ? 1 : 0);
      return startSim(
        name,
        1 + share + (k === 0 ? SCALING_SINGLE : 0),
        [...slowLatency, '--trace'],
        simProfDir ? ['--cpu-prof', '--cpu-prof-dir', simProfDir] : [],
      );
    }),
  );
  const slowPids = slow.map((x) => x.pid);
  /** A scaling board's requests as its simulator traced them (they keep arriving while the boards run). */
  const tracesOf = (port: string): RequestTrace[] =>
    slow.map((x) => x.traces().get(port)).find((t) => t !== undefined) ?? [];
  const logger = createLogger({ file: join(dir, 'station.log'), level: 'warn' });
  const init = await initStation({
    dataDir: join(dir, 'station'),
    attestationRoots: [ready.vendorRoot],
    stationId: 'bench',
    logger,
  });
  if (!init.ok) throw new Error(init.error.message);
  const eng = await openEngine({ dataDir: join(dir, 'station'), logger });
  if (!eng.ok) throw new Error(eng.error.message);
  const engine: Engine = eng.value;

  const ports = [...ready.ports];
  const take = (n: number) => ports.splice(0, n);
  const one = async (port: string) => {
    const acc = { boardMs: 0, calls: [] as CallSpan[] };
    let bytes = 0;
    let requests = 0;
    const t = mono();
    const r = await engine.provision({
      port,
      workOrder: 'WO-DEMO-1',
      operator: 'bench',
      instrumentBoard: (b) => {
        const w = timed(b, acc);
        const origClose = b.close.bind(b);
        (w as { close: () => Promise<void> }).close = async () => {
          const s = b.stats();
          bytes = s.bytesSent + s.bytesReceived;
          requests = s.requests;
          await origClose();
        };
        return w;
      },
    });
    if (!r.ok || r.value.status !== 'provisioned')
      throw new Error(`bench board failed: ${r.ok ? r.value.status : r.error.message}`);
    const end = mono();
    const run: BoardRun = { start: t, end, calls: acc.calls };
    return { ms: end - t, boardMs: acc.boardMs, bytes, requests, run, port, model: r.value.identity.model };
  };

  // Warm-up (JIT, HSM handles), not counted.
  await one(take(1)[0]!);

  // 1 board at a time: cycle time distribution, the station's share and its CPU per board.
  const seq: Array<{ ms: number; boardMs: number; bytes: number; requests: number }> = [];
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  for (const p of take(SEQUENTIAL_BOARDS - 1)) seq.push(await one(p));
  const cpuPerBoardSeq = cpuMs(c1) / seq.length;
  const perMin1 = (seq.length / (performance.now() - t1)) * 60_000;
  const cycles = seq.map((s) => s.ms);
  const overhead = seq.map((s) => s.ms - s.boardMs);
  const bytes = seq.map((s) => s.bytes);
  const requests = seq.map((s) => s.requests);

  const rates: Record<number, number> = { 1: perMin1 };
  for (const c of [4, 16] as const) {
    const batch = take(16);
    const t = performance.now();
    const lanes = Array.from({ length: c }, (_, i) => batch.filter((_, j) => j % c === i));
    await Promise.all(
      lanes.map(async (lane) => {
        for (const p of lane) await one(p);
      }),
    );
    rates[c] = (batch.length / (performance.now() - t)) * 60_000;
  }

  // Scaling at board-like latencies: one board at a time (reference cycle and CPU), then 16 at once.
  const slowPorts = slow.map((x) => [...x.ports]);
  for (const ports of slowPorts) await one(ports.shift()!); // warm-up: first connection to each simulator
  const single: Array<{ ms: number; cpu: number; simCpu: number | null; run: BoardRun; port: string; model: string }> =
    [];
  for (const p of slowPorts[0]!.splice(0, SCALING_SINGLE)) {
    const c = process.cpuUsage();
    const s0 = processesCpuMs(slowPids);
    const r = await one(p);
    const s1 = processesCpuMs(slowPids);
    single.push({
      ms: r.ms,
      cpu: cpuMs(c),
      simCpu: s0 !== null && s1 !== null ? s1 - s0 : null,
      run: r.run,
      port: p,
      model: r.model,
    });
  }
  // Board k of the 16 from simulator k % SCALING_SIMS.
  const burstPorts = Array.from({ length: SCALING_BOARDS }, (_, k) => slowPorts[k % SCALING_SIMS]!.shift()!);
  // Throughput one at a time is boards ÷ the sum of their cycles: the mean cycle (a median of the two models' cycles
  // would pick one model's).
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const singleCycle = mean(single.map((x) => x.ms));
  const singleCpu = mean(single.map((x) => x.cpu));
  const cAll = process.cpuUsage();
  const mAll = machineTicks();
  const simAll = processesCpuMs(slowPids);
  // The station's garbage collections during the burst (its CPU per extra board swings between runs).
  const gcs: Array<{ kind: number; ms: number }> = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gcs.push({ kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0, ms: e.duration });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const tAll = mono();
  const burst = await Promise.all(burstPorts.map((p) => one(p)));
  const tEnd = mono();
  await new Promise((r) => setImmediate(r)); // the observer's last entries
  gcObserver.disconnect();
  const gcMajor = gcs.filter((g) => g.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR);
  const gcMinor = gcs.filter((g) => g.kind !== perfConstants.NODE_PERFORMANCE_GC_MAJOR);
  const gcSum = (xs: ReadonlyArray<{ ms: number }>) => xs.reduce((a, g) => a + g.ms, 0);
  const makespan = tEnd - tAll;
  const each = burst.map((b) => b.ms);
  const allCpu = cpuMs(cAll);
  const mEnd = machineTicks();
  const simEnd = processesCpuMs(slowPids);
  const simCores = simAll !== null && simEnd !== null ? (simEnd - simAll) / makespan : null;
  const simCpuPerBoard = simAll !== null && simEnd !== null ? (simEnd - simAll) / SCALING_BOARDS : null;
  const singleSimCpus = single.flatMap((x) => (x.simCpu === null ? [] : [x.simCpu]));
  const singleSimCpu = singleSimCpus.length > 0 ? pct(singleSimCpus, 50) : null;
  // The traces of the last requests reach the bench just after the station got their answers.
  const splits = await breakdowns(tracesOf, [...single, ...burst]);
  const cores = availableParallelism();
  // Share of all cores busy during the 16 boards (station, simulators, socat and everything else on the machine).
  const machineBusy = mAll && mEnd ? (mEnd.busy - mAll.busy) / Math.max(1, mEnd.total - mAll.total) : null;
  const scalingRatio = SCALING_BOARDS / makespan / (SCALING_BOARDS * (1 / singleCycle));
  // The same ratio for each board model alone: its single cycle ÷ the slowest of its boards in the burst (they all
  // start together). With two models the burst's makespan is the slower model's, so the mixed ratio above is at most
  // mean single cycle ÷ slower single cycle even for a station that adds nothing.
  const perModel = [...new Set(single.map((x) => x.model))].sort().map((model) => {
    const own = mean(single.filter((x) => x.model === model).map((x) => x.ms));
    const slowest = Math.max(...burst.filter((x) => x.model === model).map((x) => x.ms));
    return { model, ratio: own / slowest, own, slowest };
  });
  const ceilingMixed = singleCycle / Math.max(...perModel.map((m) => m.own));
  const cpuPerExtraBoard = (allCpu - singleCpu) / (SCALING_BOARDS - 1);

  const signRate = await measureSignRate(engine.hsm, 'issuing-ca', 2);
  const hsmBound = (signRate * 60) / HSM_SIGNATURES_PER_BOARD;
  const best = Math.max(...LEVELS.map((l) => rates[l]!));

  console.log('');
  console.log('| figure | value |');
  console.log('| --- | --- |');
  console.log(
    `| cycle time per board, p50 / p95 (1 board at a time, simulator latency 0) | ${fmt(pct(cycles, 50))} / ${fmt(pct(cycles, 95))} ms |`,
  );
  console.log(
    `| station's own time per board, p50 / p95 (cycle minus waiting on the board) | ${fmt(pct(overhead, 50))} / ${fmt(pct(overhead, 95))} ms |`,
  );
  console.log(
    `| bytes on the wire per board (both directions), p50 | ${pct(bytes, 50)} B (${fmt((pct(bytes, 50) / UART_BYTES_PER_S) * 1000, 0)} ms at 115200 baud), ${pct(requests, 50)} requests (one write each) |`,
  );
  console.log(
    `| station process CPU per board (user+sys, 1 board at a time, simulator latency 0) | ${fmt(cpuPerBoardSeq)} ms |`,
  );
  for (const l of LEVELS) console.log(`| boards per minute, ${l} concurrent | ${fmt(rates[l]!, 0)} |`);
  console.log(`| raw HSM signing rate (ECDSA P-256, SoftHSM2, 8 callers) | ${fmt(signRate, 0)} signatures/s |`);
  console.log(
    `| HSM-bound ceiling (${HSM_SIGNATURES_PER_BOARD} signatures per board) | ${fmt(hsmBound, 0)} boards/min |`,
  );
  console.log(`| best provisioning throughput / HSM-bound ceiling | ${fmt((best / hsmBound) * 100, 2)} % |`);
  const lat = `keygen ${SCALING_LATENCY.keygen} / flash ${SCALING_LATENCY.flash} / other ${SCALING_LATENCY.other} ms`;
  console.log('');
  console.log(`| scaling, simulator latencies ${lat} | value |`);
  console.log('| --- | --- |');
  console.log(
    `| single-board cycle (mean of ${SCALING_SINGLE} one at a time, both board models equally) | ${fmt(singleCycle / 1000, 2)} s (${single.map((x) => fmt(x.ms / 1000, 2)).join(', ')}) |`,
  );
  console.log(`| ${SCALING_BOARDS} boards at once: makespan | ${fmt(makespan / 1000, 2)} s |`);
  console.log(
    `| ${SCALING_BOARDS} boards at once: each board's cycle | ${each.map((ms) => fmt(ms / 1000, 2)).join(', ')} s (p50 ${fmt(pct(each, 50) / 1000, 2)}, max ${fmt(Math.max(...each) / 1000, 2)}) |`,
  );
  console.log(
    `| throughput ÷ (${SCALING_BOARDS} × single-board throughput) = single cycle ÷ makespan | ${fmt(scalingRatio, 2)} |`,
  );
  console.log(
    `| the same for each board model alone: its single cycle ÷ its slowest board of the ${SCALING_BOARDS} (mixed ratio for a station adding nothing: mean single ÷ slower model's single = ${fmt(ceilingMixed, 2)}) | ${perModel.map((m) => `${m.model} ${fmt(m.ratio, 2)} (${fmt(m.own / 1000, 2)} ÷ ${fmt(m.slowest / 1000, 2)} s)`).join('; ')} |`,
  );
  console.log(
    `| during the ${SCALING_BOARDS} boards: station process CPU ÷ makespan; simulator processes' CPU ÷ makespan; whole machine busy (${cores} cores) | ${fmt(allCpu / makespan, 2)} cores; ${simCores === null ? 'n/a' : `${fmt(simCores, 2)} cores`}; ${machineBusy === null ? 'n/a' : `${fmt(machineBusy * 100, 0)} %`} |`,
  );
  console.log(
    `| station process CPU per extra board (user+sys; ${SCALING_BOARDS} at once ${fmt(allCpu, 0)} ms vs 1 at a time ${fmt(singleCpu, 0)} ms) | ${fmt(cpuPerExtraBoard)} ms |`,
  );
  console.log(
    `| station garbage collection during the ${SCALING_BOARDS} boards: major (mark-compact); minor and other (pause ms) | ${gcMajor.length} (${fmt(gcSum(gcMajor), 1)} ms); ${gcMinor.length} (${fmt(gcSum(gcMinor), 1)} ms) |`,
  );
  console.log(
    `| simulator CPU per board (all ${SCALING_SIMS} scaling simulator processes; ${SCALING_BOARDS} at once ÷ ${SCALING_BOARDS}; 1 at a time, median) | ${simCpuPerBoard === null ? 'n/a' : `${fmt(simCpuPerBoard)} ms`}; ${singleSimCpu === null ? 'n/a' : `${fmt(singleSimCpu)} ms`} |`,
  );
  printBreakdown(
    splits,
    single.map((x) => x.port),
    burst.map((x) => x.port),
    { start: tAll, end: tEnd },
  );

  await engine.close();
  for (const kill of sims) kill();
  if (!process.argv.includes('--station-only')) await (await import('./bench/ingest.js')).benchHeadquarters();
  if (!process.argv.includes('--no-startup'))
    await (await import('./bench/startup.js')).benchStartup(join(dir, 'station'));
  rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
