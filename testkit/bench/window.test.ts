/**
 * The bench's timed window (window.ts): the main thread's CPU counts the main thread's work and not a worker's, and
 * LINE_STATION_BENCH_PROFILE=DIR writes one CPU profile of the window.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { startWindow } from './window.js';

/** Burn `ms` of this process's CPU on the calling thread (nothing else runs meanwhile). */
function burnMain(ms: number): void {
  const c0 = process.cpuUsage();
  let x = 0;
  while (true) {
    for (let i = 0; i < 100_000; i++) x = (x * 31 + i) % 1_000_003;
    const c = process.cpuUsage(c0);
    if ((c.user + c.system) / 1000 >= ms) break;
  }
  expect(x).toBeGreaterThanOrEqual(0);
}

/** A worker thread that burns `ticks` clock ticks of its own CPU (/proc/thread-self/stat), then exits. */
function burnWorker(ticks: number): Promise<void> {
  const src = `
    const { readFileSync } = require('node:fs');
    const own = () => { const s = readFileSync('/proc/thread-self/stat', 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return Number(f[11]) + Number(f[12]); };
    const t0 = own(); let x = 0;
    while (own() - t0 < ${ticks}) for (let i = 0; i < 100000; i++) x = (x * 31 + i) % 1000003;
  `;
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true });
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exit ${code}`))));
  });
}

const dirs: string[] = [];
afterEach(() => {
  delete process.env['LINE_STATION_BENCH_PROFILE'];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('startWindow', () => {
  it("counts the main thread's own CPU as main-thread CPU", async () => {
    const w = await startWindow('main');
    burnMain(300);
    const r = await w.stop();
    expect(r.mainMs).not.toBeNull();
    expect(r.processMs).toBeGreaterThanOrEqual(300);
    // Ticks of 10 ms; other threads (GC) may add a little to the process, never to the main thread.
    expect(r.mainMs!).toBeGreaterThanOrEqual(250);
    expect(r.mainMs!).toBeLessThanOrEqual(r.processMs + 20);
  });

  it("leaves a worker thread's CPU out of the main thread's", async () => {
    const w = await startWindow('worker');
    await burnWorker(30);
    const r = await w.stop();
    expect(r.processMs).toBeGreaterThanOrEqual(300);
    expect(r.processMs - r.mainMs!).toBeGreaterThanOrEqual(250);
  });

  it('writes one CPU profile of the window with LINE_STATION_BENCH_PROFILE=DIR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ls-window-'));
    dirs.push(dir);
    process.env['LINE_STATION_BENCH_PROFILE'] = join(dir, 'prof');
    const w = await startWindow('profiled');
    burnMain(50);
    await w.stop();
    const files = readdirSync(join(dir, 'prof'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^profiled-\d+\.cpuprofile$/);
    const profile = JSON.parse(readFileSync(join(dir, 'prof', files[0]!), 'utf8')) as { nodes: unknown[] };
    expect(profile.nodes.length).toBeGreaterThan(0);
  });
});
