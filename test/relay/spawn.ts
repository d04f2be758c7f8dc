/**
 * Start the relay (test/relay/main.ts) as its own child process between the station and a simulated board, and
 * collect its events. Test support only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export type RelayMode = 'pass' | 'transport-key' | 'keygen-p256' | 'keygen-p384' | 'replay-attest';

export interface RelayEvent {
  readonly event: string;
  readonly op?: string;
  readonly requestId?: number;
  readonly fields?: string[];
  readonly substituted?: boolean;
  readonly [k: string]: unknown;
}

export interface Relay {
  /** The link the station opens (the relay's end of the first pty pair is the other side). */
  readonly port: string;
  readonly pid: number;
  readonly events: RelayEvent[];
  /** Station requests the relay saw, by op. */
  requests(op?: string): RelayEvent[];
  stop(): Promise<void>;
}

const ROOT = join(import.meta.dirname, '..', '..');

/** Spawn the relay for `boardLink` (the simulator's station-side link) in `dir`; resolves once it is ready. */
export async function startRelay(opts: { boardLink: string; dir: string; mode: RelayMode }): Promise<Relay> {
  mkdirSync(opts.dir, { recursive: true });
  // `node --import tsx` so that the process we kill IS the relay (not a wrapper forwarding signals).
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'test', 'relay', 'main.ts'),
      '--board-link',
      opts.boardLink,
      '--dir',
      opts.dir,
      '--mode',
      opts.mode,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const events: RelayEvent[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${stderr}`)), 90_000);
    child.once('exit', (code) => reject(new Error(`relay exited (${String(code)}): ${stderr}`)));
    lines.on('line', (line) => {
      let e: RelayEvent;
      try {
        e = JSON.parse(line) as RelayEvent;
      } catch {
        return;
      }
      events.push(e);
      if (e.event === 'ready') {
        clearTimeout(timer);
        resolve(String(e['port']));
      }
    });
  });
  const port = await ready;
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  return {
    port,
    pid: child.pid!,
    events,
    requests: (op) => events.filter((e) => e.event === 'request' && (op === undefined || e.op === op)),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
