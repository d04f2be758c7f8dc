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
 * throughput ÷ (16 × single-board throughput), and the station process's CPU per extra board (16 at once vs 1).
 * Then headquarters (scripts/bench/ingest.ts): ingest with full verification for SQLite and PostgreSQL (if
 * LINE_STATION_TEST_PG_URL is set, e.g. `export LINE_STATION_TEST_PG_URL=$(bash scripts/pg-test.sh)`) with 1 and 8
 * stations and its ratio to the raw verify rate, bundle size and rates, queries at a million records.
 * `--station-only` skips the headquarters part; `--no-startup` skips the cold-start part.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { BoardClient } from '../core/ports.js';
import type { BoardClientWithStats } from '../core/protocol/client.js';
import { measureSignRate } from '../testkit/bench/hsm.js';
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
/** Single-board cycles at those latencies (the median is the reference), after one warm-up board. */
const SCALING_SINGLE = 5;

const dir = mkdtempSync(join(tmpdir(), 'ls-bench-'));
const totalBoards = SEQUENTIAL_BOARDS + 16 + 16;
const scalingBoards = 1 + SCALING_SINGLE + SCALING_BOARDS;

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
}

/** CPU time (user + system, ms) of process `pid` so far, from /proc (null where there is none). */
function processCpuMs(pid: number): number | null {
  try {
    // Fields after the command name (which may hold spaces: it ends at the last ')'): utime is the 12th, stime the 13th.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** Start a simulator process on its own ptys and wait for its ready line. */
async function startSim(name: string, boards: number, extra: readonly string[] = []): Promise<SimReady> {
  const sim = spawn(
    process.execPath,
    [
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
  return new Promise<SimReady>((res, rej) => {
    createInterface({ input: sim.stdout! }).on('line', (line) => {
      if (line.startsWith('{"ready"')) res({ ...(JSON.parse(line) as Omit<SimReady, 'pid'>), pid: sim.pid! });
    });
    sim.once('exit', (c) => rej(new Error(`simulator ${name} exited ${c}`)));
  });
}

/** Times every board call, to split a cycle into board time and station time. */
function timed(b: BoardClientWithStats, acc: { boardMs: number }): BoardClient {
  return new Proxy(b, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if (typeof v !== 'function' || prop === 'close' || prop === 'stats')
        return typeof v === 'function' ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const t = performance.now();
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          acc.boardMs += performance.now() - t;
        }
      };
    },
  });
}

async function main(): Promise<void> {
  console.log(`# Line Station benchmark (${new Date().toISOString()}, ${process.version}, data in ${dir})`);
  // Two simulator processes: latency 0 (the station's own cost) and board-like latencies (the scaling figure). The
  // second gets the first one's vendor PKI (same root: the station trusts one root per subject name).
  const ready = await startSim('sim', totalBoards);
  mkdirSync(join(dir, 'slow-state'));
  for (const f of ['vendor-root.pem', 'vendor-root-key.pem'])
    copyFileSync(join(dir, 'sim-state', f), join(dir, 'slow-state', f));
  const slow = await startSim(
    'slow',
    scalingBoards,
    Object.entries(SCALING_LATENCY).flatMap(([op, ms]) => [`--latency-${op}`, String(ms)]),
  );
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
    const acc = { boardMs: 0 };
    let bytes = 0;
    let requests = 0;
    const t = performance.now();
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
    return { ms: performance.now() - t, boardMs: acc.boardMs, bytes, requests };
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
  const slowPorts = [...slow.ports];
  await one(slowPorts.shift()!); // warm-up: first connection to this simulator
  const single: Array<{ ms: number; cpu: number }> = [];
  for (const p of slowPorts.splice(0, SCALING_SINGLE)) {
    const c = process.cpuUsage();
    const r = await one(p);
    single.push({ ms: r.ms, cpu: cpuMs(c) });
  }
  const singleCycle = pct(
    single.map((x) => x.ms),
    50,
  );
  const singleCpu = pct(
    single.map((x) => x.cpu),
    50,
  );
  const cAll = process.cpuUsage();
  const mAll = machineTicks();
  const simAll = processCpuMs(slow.pid);
  const tAll = performance.now();
  const each = await Promise.all(slowPorts.splice(0, SCALING_BOARDS).map(async (p) => (await one(p)).ms));
  const makespan = performance.now() - tAll;
  const allCpu = cpuMs(cAll);
  const mEnd = machineTicks();
  const simEnd = processCpuMs(slow.pid);
  const simCores = simAll !== null && simEnd !== null ? (simEnd - simAll) / makespan : null;
  const cores = availableParallelism();
  // Share of all cores busy during the 16 boards (station, simulators, socat and everything else on the machine).
  const machineBusy = mAll && mEnd ? (mEnd.busy - mAll.busy) / Math.max(1, mEnd.total - mAll.total) : null;
  const scalingRatio = SCALING_BOARDS / makespan / (SCALING_BOARDS * (1 / singleCycle));
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
    `| single-board cycle (median of ${SCALING_SINGLE}, one at a time) | ${fmt(singleCycle / 1000, 2)} s (${single.map((x) => fmt(x.ms / 1000, 2)).join(', ')}) |`,
  );
  console.log(`| ${SCALING_BOARDS} boards at once: makespan | ${fmt(makespan / 1000, 2)} s |`);
  console.log(
    `| ${SCALING_BOARDS} boards at once: each board's cycle | ${each.map((ms) => fmt(ms / 1000, 2)).join(', ')} s (p50 ${fmt(pct(each, 50) / 1000, 2)}, max ${fmt(Math.max(...each) / 1000, 2)}) |`,
  );
  console.log(
    `| throughput ÷ (${SCALING_BOARDS} × single-board throughput) = single cycle ÷ makespan | ${fmt(scalingRatio, 2)} |`,
  );
  console.log(
    `| during the ${SCALING_BOARDS} boards: station process CPU ÷ makespan; simulator process CPU ÷ makespan; whole machine busy (${cores} cores) | ${fmt(allCpu / makespan, 2)} cores; ${simCores === null ? 'n/a' : `${fmt(simCores, 2)} cores`}; ${machineBusy === null ? 'n/a' : `${fmt(machineBusy * 100, 0)} %`} |`,
  );
  console.log(
    `| station process CPU per extra board (user+sys; ${SCALING_BOARDS} at once ${fmt(allCpu, 0)} ms vs 1 at a time ${fmt(singleCpu, 0)} ms) | ${fmt(cpuPerExtraBoard)} ms |`,
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
