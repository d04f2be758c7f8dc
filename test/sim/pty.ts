/**
 * A board's "cable": a socat pseudo-terminal pair. The station opens `<dir>/board-<i>`, the simulator opens
 * `<dir>/board-<i>.sim` with serialport. Unplug kills socat (both links disappear); plug starts it again.
 * Every socat child is killed when the process exits (and, via setpriv --pdeathsig, even when it is killed),
 * so a failing test leaves no orphans.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { ByteLink } from '../../core/ports.js';
import { serialOpener } from '../../native/serial.js';

const HAVE_SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** Number of socat children this process currently runs (for tests). */
export function liveSocatCount(): number {
  return live.size;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function removeIfLink(p: string): void {
  try {
    if (lstatSync(p).isSymbolicLink()) unlinkSync(p);
  } catch {
    // absent
  }
}

export interface PtyCallbacks {
  onData(chunk: Uint8Array): void;
  /** The board side lost the link (unplugged, socat died). */
  onClose(): void;
}

/**
 * The simulator's end of a cable is opened like the station's: native/serial.ts (serialport, with direct non-blocking
 * reads and writes instead of a thread-pool round trip per read and write), so one simulator playing many boards
 * spends little per frame on its side of the wire.
 */
const opener = serialOpener();

/** One socat pty pair plus the simulator's open serial port on the `.sim` end. */
export class PtyCable {
  readonly stationPath: string;
  readonly simPath: string;
  private child: ChildProcess | null = null;
  private port: ByteLink | null = null;
  private cb: PtyCallbacks | null = null;

  constructor(
    dir: string,
    index: number,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.stationPath = `${dir}/board-${index}`;
    this.simPath = `${dir}/board-${index}.sim`;
  }

  get plugged(): boolean {
    return this.child !== null;
  }

  /** Start socat, wait for both links, open the `.sim` end. */
  async plug(cb: PtyCallbacks): Promise<void> {
    if (this.child) throw new Error(`${this.stationPath} is already plugged`);
    installExitHook();
    removeIfLink(this.stationPath);
    removeIfLink(this.simPath);
    const socatArgs = ['-d', '-d', `pty,raw,echo=0,link=${this.stationPath}`, `pty,raw,echo=0,link=${this.simPath}`];
    // Where util-linux setpriv exists, it sets PR_SET_PDEATHSIG and execs socat (same pid): socat then dies
    // with this process even on SIGKILL, when no exit hook can run.
    const child = HAVE_SETPRIV
      ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'socat', ...socatArgs], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('socat', socatArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    let exited = false;
    child.on('error', (e) => this.log(`socat for ${this.stationPath}: ${e.message}`));
    child.on('exit', () => {
      exited = true;
      live.delete(child);
      if (this.child === child) {
        // socat died on its own (or was killed by unplug): the cable is out.
        this.child = null;
        void this.closePort();
      }
    });
    const deadline = Date.now() + 5000;
    while (!(existsSync(this.stationPath) && existsSync(this.simPath))) {
      if (exited || Date.now() > deadline) {
        this.kill();
        throw new Error(`socat did not create ${this.stationPath}: ${stderr.trim()}`);
      }
      await sleep(10);
    }
    this.cb = cb;
    const opened = await opener.open(this.simPath);
    if (!opened.ok) {
      this.cb = null;
      await this.unplug();
      throw new Error(`cannot open ${this.simPath}: ${opened.error.message}`);
    }
    const port = opened.value;
    this.port = port;
    port.onData((d) => this.cb?.onData(d));
    port.onClose((e) => {
      if (e) this.log(`serial ${this.simPath}: ${e.message}`);
      if (this.port === port) {
        this.port = null;
        const c = this.cb;
        this.cb = null;
        c?.onClose();
      }
    });
  }

  /** Write to the station; resolves when handed to the pty. */
  async write(data: Uint8Array): Promise<void> {
    const port = this.port;
    if (!port) return;
    await port.write(data).catch((e: unknown) => this.log(`serial ${this.simPath}: write: ${(e as Error).message}`));
  }

  /** Pull the cable: kill socat (the links disappear) and close our end. */
  async unplug(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const gone = new Promise<void>((r) =>
      child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r()),
    );
    child.kill('SIGTERM');
    await Promise.race([gone, sleep(2000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await gone;
    }
    await this.closePort();
    removeIfLink(this.stationPath);
    removeIfLink(this.simPath);
  }

  private kill(): void {
    const child = this.child;
    this.child = null;
    child?.kill('SIGKILL');
  }

  private async closePort(): Promise<void> {
    const port = this.port;
    if (!port) return;
    this.port = null;
    const c = this.cb;
    this.cb = null;
    await port.close();
    c?.onClose();
  }
}
