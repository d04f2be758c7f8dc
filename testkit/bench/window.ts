/**
 * The timed window of a registry bench: process CPU, the main thread's own CPU (Linux: /proc/self/task/<pid>/stat,
 * the thread that runs the registry's event loop and the bench's client; the verification workers are other
 * threads), and, with LINE_STATION_BENCH_PROFILE=DIR, a CPU profile of the main thread for exactly that window
 * (node:inspector; the workers are profiled with `node --cpu-prof`). Test support only.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

/** CPU of the main thread (user + system, ms) or null where /proc is absent. Clock ticks of 10 ms. */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the command name.
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** What one timed window used. */
export interface WindowCpu {
  readonly seconds: number;
  /** Whole process, every thread (ms). */
  readonly processMs: number;
  /** The main thread alone (ms), or null without /proc. */
  readonly mainMs: number | null;
}

/** Start a timed window; `stop` answers its wall time and CPU (and writes the profile when asked for). */
export async function startWindow(label: string): Promise<{ stop: () => Promise<WindowCpu> }> {
  const dir = process.env['LINE_STATION_BENCH_PROFILE'];
  let session: Session | null = null;
  if (dir) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
    await session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuMs();
  const t0 = performance.now();
  return {
    async stop() {
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const main1 = mainThreadCpuMs();
      if (session && dir) {
        const { profile } = await session.post('Profiler.stop');
        session.disconnect();
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `${label}-${Date.now()}.cpuprofile`), JSON.stringify(profile));
      }
      return {
        seconds,
        processMs: (cpu.user + cpu.system) / 1000,
        mainMs: main0 === null || main1 === null ? null : main1 - main0,
      };
    },
  };
}
