/**
 * The demo line: starts the board simulator as a separate process (real ptys), initialises a
 * development station (SoftHSM2 tokens, CA chain, database) and provisions every board it detects,
 * with live progress. `--exit-when-done` exits once all boards are provisioned (exit code 0 on PASS).
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { main as station } from '../station/cli.js';

const { values: a } = parseArgs({
  options: {
    boards: { type: 'string', default: '4' },
    'data-dir': { type: 'string', default: '.data/demo' },
    'exit-when-done': { type: 'boolean', default: false },
    'work-order': { type: 'string', default: 'WO-DEMO-1' },
    'latency-keygen': { type: 'string', default: '300' },
    'latency-flash': { type: 'string', default: '200' },
  },
});
const dataDir = resolve(a['data-dir']!);
const simDir = join(dataDir, 'sim');
mkdirSync(simDir, { recursive: true });

console.log(`[demo] data dir ${dataDir}`);
const sim = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    'test/sim/main.ts',
    '--boards',
    a.boards!,
    '--dir',
    join(simDir, 'ports'),
    '--state-dir',
    join(simDir, 'state'),
    '--latency-keygen',
    a['latency-keygen']!,
    '--latency-flash',
    a['latency-flash']!,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const stopSim = () => {
  if (sim.exitCode === null) sim.kill('SIGTERM');
};
process.on('exit', stopSim);

const ready = await new Promise<{ ports: string[]; vendorRoot: string }>((res, rej) => {
  const rl = createInterface({ input: sim.stdout! });
  rl.on('line', (line) => {
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as { ready?: boolean; ports: string[]; vendorRoot: string };
        if (j.ready) return res(j);
      } catch {
        /* a log line */
      }
    }
    console.log(`[sim] ${line}`);
  });
  sim.once('exit', (c) => rej(new Error(`simulator exited with ${c}`)));
});
console.log(`[demo] simulator ready: ${ready.ports.length} boards on ${ready.ports.join(', ')}`);

let code = await station([
  'init',
  '--data-dir',
  dataDir,
  '--attestation-root',
  ready.vendorRoot,
  '--station-id',
  'demo-station-1',
]);
if (code !== 0) process.exit(code);
const watch = [
  'watch',
  '--data-dir',
  dataDir,
  '--work-order',
  a['work-order']!,
  '--operator',
  'demo-operator',
  '--port',
  join(simDir, 'ports', 'board-*'),
];
if (a['exit-when-done']) watch.push('--exit-when-done');
code = await station(watch);
if (code === 0) {
  await station(['records', '--data-dir', dataDir]);
  code = await station(['verify-log', '--data-dir', dataDir]);
}
stopSim();
process.exit(code);
