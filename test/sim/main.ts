/**
 * Board simulator CLI: `npm run sim -- --boards 4 [--tpm-boards 2]`. Prints one JSON line
 * `{"ready":true,"ports":[...],"vendorRoot":"...","tpmVendorRoot":"..."|null,"tpmVendorIssuer":"..."|null,...}`, then human log lines. Reads simple commands on stdin
 * (see USAGE). Shuts down cleanly (no socat left behind) on SIGINT/SIGTERM or stdin `quit`.
 */
import 'reflect-metadata';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { boardSpecs, parseArgs, parseFault, USAGE, withReplugDefault } from './cli.js';
import { startSimulator, type SimulatorHandle } from './simulator.js';

const stamp = (): string => new Date().toISOString().slice(11, 23);
// Whoever reads our stdout may be gone before we are (a bench that exits after SIGTERM-ing us): the log lines of the
// shutdown then go nowhere instead of crashing the shutdown (EPIPE).
process.stdout.on('error', () => undefined);
/** Log lines are held back until the ready line is out (it must be the first line). */
let held: string[] | null = [];
const say = (line: string): void => {
  const out = `${stamp()} ${line}\n`;
  if (held) held.push(out);
  else process.stdout.write(out);
};

/** Run the simulator CLI until a signal or `quit`. */
async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const parsed = parseArgs(argv);
  if (!parsed.ok) {
    process.stderr.write(`sim: ${parsed.error}\n${USAGE}\n`);
    return 2;
  }
  const o = parsed.value;
  const dir = o.dir ?? join(tmpdir(), 'line-station-sim');
  let sim: SimulatorHandle;
  try {
    sim = await startSimulator({
      dir,
      boards: boardSpecs(o),
      baud: o.baud,
      ...(o.stateDir ? { stateDir: o.stateDir } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      log: say,
      // Trace lines bypass the hold-back: the first request comes after the ready line.
      ...(o.trace
        ? { trace: (board, t) => process.stdout.write(`${JSON.stringify({ trace: { board, ...t } })}\n`) }
        : {}),
    });
  } catch (e) {
    for (const l of held ?? []) process.stderr.write(l);
    process.stderr.write(`sim: could not start: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(
    `${JSON.stringify({ ready: true, ports: sim.ports, vendorRoot: sim.vendorRootPath, tpmVendorRoot: sim.tpmVendorRootPath, tpmVendorIssuer: sim.tpmVendorIssuerPath, stateDir: sim.stateDir, boards: sim.boards })}\n`,
  );
  for (const l of held ?? []) process.stdout.write(l);
  held = null;
  for (const [i, b] of sim.boards.entries())
    say(`board ${i}: ${b.model} serial ${b.serialNumber} chip ${b.chipId} at ${b.port}`);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (why: string): void => {
      if (stopping) return;
      stopping = true;
      say(`${why}: stopping`);
      void sim.stop().then(() => resolve(0));
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    const rl = createInterface({ input: process.stdin, terminal: false });
    rl.on('line', (line) => {
      const [cmd, idx, arg] = line.trim().split(/\s+/);
      if (!cmd) return;
      if (cmd === 'quit' || cmd === 'exit') return shutdown('quit');
      const i = Number(idx);
      if (!Number.isInteger(i) || i < 0 || i >= sim.boards.length)
        return say(`no board ${JSON.stringify(idx)}; ${cmd} i ...`);
      try {
        switch (cmd) {
          case 'fault': {
            const f = parseFault(arg ?? '');
            if (!f.ok) return say(f.error);
            const current = sim.faults(i);
            sim.setFaults(i, withReplugDefault({ ...current, ...f.value }));
            return say(`board ${i} faults: ${JSON.stringify(sim.faults(i))}`);
          }
          case 'clear':
            sim.setFaults(i, {});
            return say(`board ${i} faults cleared`);
          case 'unplug':
            return void sim.unplug(i);
          case 'plug':
            return void sim.plug(i).catch((e: unknown) => say(`plug failed: ${(e as Error).message}`));
          case 'state':
            return say(`board ${i}: ${JSON.stringify(sim.state(i))}`);
          default:
            return say(`unknown command ${JSON.stringify(cmd)}`);
        }
      } catch (e) {
        say(`error: ${(e as Error).message}`);
      }
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`sim: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
