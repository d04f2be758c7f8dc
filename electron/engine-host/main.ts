/**
 * Engine host entry: `--data-dir <dir>`. Runs as an Electron utilityProcess (messages over
 * `process.parentPort`) or as a Node child process (`child_process.fork`, messages over
 * `process.send`), so it is tested in plain Node. Exits when main asks it to stop or goes away.
 */
import 'reflect-metadata';
import { restrictUmask } from '../../native/data-dir.js';
import { createHost } from './host.js';
import { detectTransport } from './transport.js';

// Private files from the first write (docs/architecture.md "Data directory permissions").
restrictUmask();

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const transport = detectTransport();
const dataDir = argValue('--data-dir');
if (!transport || !dataDir) {
  process.stderr.write('engine host: start me from Line Station main (needs an IPC channel and --data-dir)\n');
  process.exit(2);
}
const level = process.env.LINE_STATION_LOG_LEVEL;
const host = createHost({
  dataDir,
  send: (m) => transport.send(m),
  ...(level === 'debug' || level === 'info' || level === 'warn' || level === 'error' ? { level } : {}),
});
let exiting = false;
transport.onMessage((raw) => {
  void host.handle(raw).then(() => {
    if ((raw as { type?: unknown } | null)?.type === 'stop' && !exiting) {
      exiting = true;
      setTimeout(() => process.exit(0), 20);
    }
  });
});
transport.onParentGone(() => {
  if (exiting) return;
  exiting = true;
  void host.close().finally(() => process.exit(0));
});
transport.send({ type: 'ready', pid: process.pid });
