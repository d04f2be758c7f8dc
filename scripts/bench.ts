/**
 * `npm run bench`: provisioning throughput measured in one run, with real parts (simulator process on
 * ptys with its latencies at zero, SoftHSM2, SQLite synchronous=FULL).
 *
 * Prints: cycle time per board p50/p95 (one board at a time), the station's own share of a cycle
 * (cycle minus time spent waiting on the board), bytes on the wire per board (and what that costs on
 * a 115200-baud UART), boards/minute at 1, 4 and 16 concurrent boards, the raw HSM signing rate of
 * the same token and the ratio of provisioning throughput to what the HSM alone allows.
 * Then headquarters (scripts/bench/ingest.ts): ingest with full verification for SQLite and PostgreSQL (if
 * LINE_STATION_TEST_PG_URL is set, e.g. `export LINE_STATION_TEST_PG_URL=$(bash scripts/pg-test.sh)`) with 1 and 8
 * stations and its ratio to the raw verify rate, bundle size and rates, queries at a million records.
 * `--station-only` skips the headquarters part.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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

const dir = mkdtempSync(join(tmpdir(), 'ls-bench-'));
const totalBoards = SEQUENTIAL_BOARDS + 16 + 16;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const fmt = (x: number, d = 1) => x.toFixed(d);

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
  const sim = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/sim/main.ts',
      '--boards',
      String(totalBoards),
      '--dir',
      join(dir, 'ports'),
      '--state-dir',
      join(dir, 'sim'),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  process.on('exit', () => sim.kill('SIGTERM'));
  const ready = await new Promise<{ ports: string[]; vendorRoot: string }>((res, rej) => {
    createInterface({ input: sim.stdout! }).on('line', (line) => {
      if (line.startsWith('{"ready"')) res(JSON.parse(line) as { ports: string[]; vendorRoot: string });
    });
    sim.once('exit', (c) => rej(new Error(`simulator exited ${c}`)));
  });
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
          await origClose();
        };
        return w;
      },
    });
    if (!r.ok || r.value.status !== 'provisioned')
      throw new Error(`bench board failed: ${r.ok ? r.value.status : r.error.message}`);
    return { ms: performance.now() - t, boardMs: acc.boardMs, bytes };
  };

  // Warm-up (JIT, HSM handles), not counted.
  await one(take(1)[0]!);

  // 1 board at a time: cycle time distribution and the station's share.
  const seq: Array<{ ms: number; boardMs: number; bytes: number }> = [];
  const t1 = performance.now();
  for (const p of take(SEQUENTIAL_BOARDS - 1)) seq.push(await one(p));
  const perMin1 = (seq.length / (performance.now() - t1)) * 60_000;
  const cycles = seq.map((s) => s.ms);
  const overhead = seq.map((s) => s.ms - s.boardMs);
  const bytes = seq.map((s) => s.bytes);

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
    `| bytes on the wire per board (both directions), p50 | ${pct(bytes, 50)} B (${fmt((pct(bytes, 50) / UART_BYTES_PER_S) * 1000, 0)} ms at 115200 baud) |`,
  );
  for (const l of LEVELS) console.log(`| boards per minute, ${l} concurrent | ${fmt(rates[l]!, 0)} |`);
  console.log(`| raw HSM signing rate (ECDSA P-256, SoftHSM2, 8 callers) | ${fmt(signRate, 0)} signatures/s |`);
  console.log(
    `| HSM-bound ceiling (${HSM_SIGNATURES_PER_BOARD} signatures per board) | ${fmt(hsmBound, 0)} boards/min |`,
  );
  console.log(`| best provisioning throughput / HSM-bound ceiling | ${fmt((best / hsmBound) * 100, 2)} % |`);

  await engine.close();
  sim.kill('SIGTERM');
  if (!process.argv.includes('--station-only')) await (await import('./bench/ingest.js')).benchHeadquarters();
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
