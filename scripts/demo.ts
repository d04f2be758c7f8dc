/**
 * The demo line: starts the board simulator as a separate process (real ptys; `--tpm-boards N` adds TPM boards
 * backed by real swtpm processes), initialises a development station (a SoftHSM2 token, database, both simulated
 * vendor roots: the LS attestation root and the TPM vendor root) and provisions every board it detects,
 * with live progress. `--exit-when-done` exits once all boards are provisioned (exit code 0 on PASS).
 * It first runs a local headquarters registry under `<data-dir>/registry` (`registry init` with a development HQ
 * root, `serve` in its own process), takes a one-time enrolment code from it (`registry commission-station`) and
 * commissions the station online with it (`station init --registry ...`: the station's issuing CA certified by the
 * registry's HQ CA, the delegated revocation signer certified), then shows the records arriving.
 * `--ui` runs the operator/supervisor UI instead of the terminal watcher: it builds the renderer if needed,
 * and serves the UI on 127.0.0.1 (`station serve`), which writes the URL to open into a 0600 file and prints its
 * path. Two demo users (op-1, sup-1) are created either way; the terminal watcher signs in as op-1.
 */
import 'reflect-metadata';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { main as station } from '../station/cli/program.js';
import { restrictUmask } from '../native/data-dir.js';

// Private files from the first write, also for the simulator and registry processes started below (they inherit it).
restrictUmask();

const { values: a } = parseArgs({
  options: {
    boards: { type: 'string', default: '4' },
    'tpm-boards': { type: 'string', default: '0' },
    'data-dir': { type: 'string', default: '.data/demo' },
    'exit-when-done': { type: 'boolean', default: false },
    // default: WO-DEMO-1 (LS boards), WO-DEMO-TPM-1 (LS and TPM boards) with --tpm-boards
    'work-order': { type: 'string' },
    'latency-keygen': { type: 'string', default: '300' },
    'latency-flash': { type: 'string', default: '200' },
    ui: { type: 'boolean', default: false },
  },
});
const dataDir = resolve(a['data-dir']!);
const workOrder = a['work-order'] ?? (Number(a['tpm-boards']) > 0 ? 'WO-DEMO-TPM-1' : 'WO-DEMO-1');
const simDir = join(dataDir, 'sim');
mkdirSync(simDir, { recursive: true, mode: 0o700 });

console.log(`[demo] data dir ${dataDir}`);
const sim = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    'test/sim/main.ts',
    '--boards',
    a.boards!,
    '--tpm-boards',
    a['tpm-boards']!,
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

interface SimReady {
  ready?: boolean;
  ports: string[];
  vendorRoot: string;
  /** The TPM vendor root and its EK-issuing CA, when the simulator runs TPM boards. */
  tpmVendorRoot: string | null;
  tpmVendorIssuer: string | null;
}
const ready = await new Promise<SimReady>((res, rej) => {
  const rl = createInterface({ input: sim.stdout! });
  rl.on('line', (line) => {
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as SimReady;
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

// ---- the local headquarters registry first (its own process, its own SoftHSM2 token and development HQ root)
const regDir = join(dataDir, 'registry');
const registryCli = (...args: string[]): string => {
  const r = spawnSync(process.execPath, ['bin/registry.mjs', ...args, '--data-dir', regDir], { encoding: 'utf8' });
  if (r.status !== 0) {
    for (const l of `${r.stdout}${r.stderr}`.split('\n').filter(Boolean)) console.log(`[registry] ${l}`);
    stopSim();
    process.exit(r.status ?? 70);
  }
  return r.stdout;
};
const show = (text: string) => {
  for (const l of text.split('\n').filter(Boolean)) console.log(`[registry] ${l}`);
};
show(registryCli('init', '--registry-id', 'demo-hq'));
const registry = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--port', '0', '--data-dir', regDir], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const stopRegistry = () => {
  if (registry.exitCode === null) registry.kill('SIGTERM');
};
process.on('exit', stopRegistry);
const registryUrl = await new Promise<string>((res, rej) => {
  const rl = createInterface({ input: registry.stdout! });
  rl.on('line', (line) => {
    console.log(`[registry] ${line}`);
    const m = /listening on (http:\/\/\S+)/.exec(line);
    if (m) res(m[1]!);
  });
  registry.once('exit', (c) => rej(new Error(`registry exited with ${c}`)));
});
// A one-time enrolment code for the station (printed once; headquarters keeps only its hash).
const { code: enrolmentCode } = JSON.parse(registryCli('commission-station', '--id', 'demo-station-1', '--json')) as {
  code: string;
};
console.log('[demo] enrolment code for demo-station-1 issued by the registry (registry commission-station)');

// ---- the station: a development SoftHSM2 token, commissioned online by the registry (its issuing CA certified by
// the registry's HQ CA), and the delegated revocation signer, so the registry publishes a CRL and answers OCSP for the
// demo's devices (docs/lifecycle.md "Delegated revocation signer").
process.env['LINE_STATION_ENROLMENT_CODE'] = enrolmentCode;
let code = await station([
  'init',
  '--data-dir',
  dataDir,
  '--attestation-root',
  ready.vendorRoot,
  ...[ready.tpmVendorRoot, ready.tpmVendorIssuer].flatMap((f) => (f ? ['--attestation-root', f] : [])),
  '--station-id',
  'demo-station-1',
  '--port',
  join(simDir, 'ports', 'board-*'),
  '--registry',
  registryUrl,
  '--registry-cert',
  join(regDir, 'registry.pem'),
]);
delete process.env['LINE_STATION_ENROLMENT_CODE'];
if (code !== 0) process.exit(code);

// Demo users only: real stations enrol operators with their own PINs (station operator add; supervisors 6+ digits).
const users = [
  ['op-1', 'Olga Operator', 'operator', '1234'],
  ['sup-1', 'Sam Supervisor', 'supervisor', '987654'],
] as const;
for (const [id, name, role, pin] of users) {
  process.env['LINE_STATION_NEW_PIN'] = pin;
  code = await station(['operator', 'add', '--data-dir', dataDir, '--id', id, '--name', name, '--role', role]);
  if (code !== 0) process.exit(code);
}
delete process.env['LINE_STATION_NEW_PIN'];

if (a.ui) {
  if (spawnSync('test', ['-f', 'renderer/dist/index.html']).status !== 0) {
    console.log('[demo] building the UI (npm run renderer:build)');
    const b = spawnSync('npm', ['run', '--silent', 'renderer:build'], { stdio: 'inherit' });
    if (b.status !== 0) process.exit(b.status ?? 70);
  }
  console.log('[demo] sign in as operator op-1 (PIN 1234); supervisor sup-1 (PIN 987654). Ctrl-C to stop.');
  console.log('[demo] the UI address (with its access token) is in the 0600 file station serve names below.');
  code = await station(['serve', '--data-dir', dataDir]);
  stopRegistry();
  stopSim();
  process.exit(code);
}

const watch = [
  'watch',
  '--data-dir',
  dataDir,
  '--work-order',
  workOrder,
  '--operator',
  'op-1',
  '--port',
  join(simDir, 'ports', 'board-*'),
];
if (a['exit-when-done']) watch.push('--exit-when-done');
// The operator signs in to `station watch` with the PIN from the environment (never on the command line).
process.env['LINE_STATION_PIN'] = '1234';
code = await station(watch);
delete process.env['LINE_STATION_PIN'];
if (code === 0) {
  await station(['records', '--data-dir', dataDir]);
  code = await station(['verify-log', '--data-dir', dataDir]);
}
// Records went to the registry in the background while the boards were provisioned; send what is left, then show
// both sides. Afterwards: `station sync --status --data-dir DIR`, `registry stats --data-dir DIR/registry`.
const synced = await station(['sync', '--data-dir', dataDir]);
if (code === 0) code = synced;
// The registry's signed policy and quotas as the station holds them; the CRL of the demo's devices.
await station(['policy', '--data-dir', dataDir]);
console.log(
  `[demo] CRL of the station's devices: ${registryUrl}/v1/crl/demo-station-1.crl (OCSP: ${registryUrl}/v1/ocsp)`,
);
show(registryCli('stats'));
stopRegistry();
stopSim();
process.exit(code);
