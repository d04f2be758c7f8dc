/**
 * Test support: a private CUPS scheduler. `startPrivateCupsd()` runs the real `cupsd` (Debian cups-daemon) in the
 * foreground in its own process group, with its own cupsd.conf and cups-files.conf, spool, cache, state and logs
 * under a temp dir, listening only on a socket file in that dir (no TCP port, no browsing, no web interface). The
 * CUPS client tools reach it with `CUPS_SERVER=<socket>` (`env`). Queues are made with the real `lpadmin`, e.g. a raw
 * queue whose device is `socket://127.0.0.1:PORT` (the CUPS socket backend, Debian package cups) to a loopback
 * printer of the test. `stop()` kills the process group and removes the dir. As root, cupsd runs jobs and backends
 * as user lp (cups-files.conf `User`), so the dir is made world-readable (0755). Not used in production.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The programs and backend a private CUPS needs (cups-daemon, cups-client, cups). */
const CUPSD = ['/usr/sbin/cupsd', '/usr/local/sbin/cupsd'];
const SOCKET_BACKEND = '/usr/lib/cups/backend/socket';

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((d) => d !== '' && isExecutable(join(d, cmd)));
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why a private CUPS cannot run here (a missing program, with its Debian package), or null when it can. */
export function cupsUnavailable(): string | null {
  if (!CUPSD.some(isExecutable)) return 'cupsd is not installed (Debian package cups-daemon; scripts/setup.sh)';
  for (const c of ['lp', 'lpstat', 'lpadmin', 'cupsdisable'])
    if (!onPath(c)) return `${c} is not installed (Debian package cups-client; scripts/setup.sh)`;
  if (!isExecutable(SOCKET_BACKEND))
    return `the CUPS socket backend ${SOCKET_BACKEND} is not installed (Debian package cups; scripts/setup.sh)`;
  return null;
}

export interface PrivateCupsd {
  /** The scheduler's socket file: the value of `CUPS_SERVER` (or `lp -h`). */
  readonly server: string;
  /** `{CUPS_SERVER}`: the environment the CUPS client tools (and a station that runs them) need. */
  readonly env: Readonly<Record<string, string>>;
  readonly pid: number;
  readonly dir: string;
  /** Run a CUPS client tool (lpadmin, cupsdisable, lpstat...) against this scheduler; its stdout. Throws on failure. */
  tool(cmd: string, args: readonly string[]): string;
  /** Create an enabled raw queue (`lpadmin -p NAME -E -v URI -m raw`): the tested production set-up. */
  addRawQueue(name: string, deviceUri: string): void;
  /** The scheduler's error_log (LogLevel debug). */
  errorLog(): string;
  /** Kill the process group, wait for cupsd to exit, remove the dir. */
  stop(): Promise<void>;
}

const cupsdConf = (sock: string) => `# private cupsd for a test (testkit/cups.ts)
LogLevel debug
Listen ${sock}
Browsing No
BrowseLocalProtocols none
WebInterface No
DefaultAuthType None
DefaultShared No
MaxLogSize 0
<Location />
  Order allow,deny
  Allow from all
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
`;

const filesConf = (dir: string) => `# private cupsd for a test (testkit/cups.ts)
ServerRoot ${join(dir, 'conf')}
RequestRoot ${join(dir, 'spool')}
TempDir ${join(dir, 'spool', 'tmp')}
CacheDir ${join(dir, 'cache')}
StateDir ${join(dir, 'state')}
ErrorLog ${join(dir, 'log', 'error_log')}
AccessLog ${join(dir, 'log', 'access_log')}
PageLog ${join(dir, 'log', 'page_log')}
`;

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

/** Start a private cupsd (see the header); resolves once `lpstat -r` says the scheduler is running. */
export async function startPrivateCupsd(o: { timeoutMs?: number } = {}): Promise<PrivateCupsd> {
  const why = cupsUnavailable();
  if (why) throw new Error(why);
  const dir = mkdtempSync(join(tmpdir(), 'ls-cups-'));
  chmodSync(dir, 0o755); // as root the backends run as user lp: they must reach the spool
  for (const d of ['conf', 'spool', 'cache', 'state', 'log']) mkdirSync(join(dir, d), { mode: 0o755 });
  mkdirSync(join(dir, 'spool', 'tmp'), { mode: 0o1777 });
  const server = join(dir, 'cups.sock');
  writeFileSync(join(dir, 'conf', 'cupsd.conf'), cupsdConf(server));
  writeFileSync(join(dir, 'conf', 'cups-files.conf'), filesConf(dir));
  const cupsd = CUPSD.find(isExecutable)!;
  const child = spawn(
    cupsd,
    ['-f', '-c', join(dir, 'conf', 'cupsd.conf'), '-s', join(dir, 'conf', 'cups-files.conf')],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const env = { CUPS_SERVER: server };
  const toolEnv = { ...process.env, ...env, LC_ALL: 'C', LANG: 'C' };
  const tool = (cmd: string, args: readonly string[]) =>
    execFileSync(cmd, [...args], {
      env: toolEnv,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    });
  const errorLog = () => {
    const f = join(dir, 'log', 'error_log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 3000);
      await exited(child);
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = errorLog();
      await stop();
      throw new Error(`cupsd exited (${child.exitCode ?? child.signalCode}): ${stderr}\n${log.slice(-3000)}`);
    }
    if (existsSync(server)) {
      try {
        if (tool('lpstat', ['-r']).includes('scheduler is running')) break;
      } catch {
        /* not yet */
      }
    }
    if (Date.now() > deadline) {
      const log = errorLog();
      await stop();
      throw new Error(`cupsd did not start within the timeout: ${stderr}\n${log.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    server,
    env,
    pid: child.pid!,
    dir,
    tool,
    addRawQueue: (name, deviceUri) => {
      // lpadmin warns on stderr that raw queues are deprecated (CUPS 2.4 still runs them; docs/operations.md).
      tool('lpadmin', ['-p', name, '-E', '-v', deviceUri, '-m', 'raw']);
    },
    errorLog,
    stop,
  };
}
