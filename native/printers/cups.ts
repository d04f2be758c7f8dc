/**
 * CUPS queue client for label printing: a raw job through the CUPS command-line client (cups-client: `lpstat`,
 * `lp`), argv only, no shell, every step inside one time budget. The station talks to whatever CUPS server the
 * client tools use: /etc/cups/client.conf, or `CUPS_SERVER` (host:port or a socket path) in the station's
 * environment, which the tools inherit. docs/operations.md "Label printer".
 *
 * 1. `lpstat -p QUEUE`: a stopped (disabled) queue holds jobs without printing them, and `lp` would still succeed;
 *    the station refuses to send to it (PRINTER_FAILED, with the queue's reason) instead of reporting "printed".
 * 2. `lp -d QUEUE -o raw` with the ZPL on stdin. Non-zero exit: PRINTER_FAILED with lp's message (unknown queue,
 *    a queue not accepting jobs) — unless `lpstat -r` says the scheduler is not running: PRINTER_UNREACHABLE.
 * A client program missing: PRINTER_LP_MISSING. The budget spent: PRINTER_UNREACHABLE (ETIMEDOUT).
 */
import { spawn } from 'node:child_process';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';

/** What a label send did: where it went and how many bytes. */
export interface PrintReceipt {
  /** `file:<path>`, `tcp:<host>:<port>` or `cups:<queue>`: for the log and the audit. */
  readonly target: string;
  readonly bytes: number;
}

/** The CUPS client programs (defaults: `lp` and `lpstat` on PATH). */
export interface CupsClient {
  readonly lp?: string;
  readonly lpstat?: string;
}

interface Ran {
  /** Exit code; null: killed (timeout) or not started. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The program could not be started (ENOENT: not installed). */
  readonly spawnError?: NodeJS.ErrnoException;
  readonly timedOut: boolean;
}

/** Run a client program (argv, no shell, C locale for parseable text), `input` on stdin, killed after `ms`. */
function run(cmd: string, args: readonly string[], input: Buffer | null, ms: number): Promise<Ran> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      shell: false,
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    const timer = setTimeout(
      () => {
        timedOut = true;
        child.kill('SIGKILL');
      },
      Math.max(1, ms),
    );
    child.on('error', (e: NodeJS.ErrnoException) => (spawnError = e));
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString('utf8')).slice(0, 2000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(0, 2000)));
    child.stdin.on('error', () => undefined); // exited early: its exit code says why
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, ...(spawnError ? { spawnError } : {}) });
    });
    child.stdin.end(input ?? undefined);
  });
}

const firstLine = (s: string): string => s.trim().split('\n')[0] ?? '';

/** A failed client run as a coded result (missing program, timeout, or the program's own failure). */
function notRun(r: Ran, cmd: string, what: string, target: string): Result<never> | null {
  if (r.spawnError?.code === 'ENOENT')
    return fail('PRINTER_LP_MISSING', `the CUPS client "${cmd}" is not installed (install cups-client)`, { target });
  if (r.spawnError)
    return fail('PRINTER_FAILED', `${cmd}: ${r.spawnError.code ?? ''} ${r.spawnError.message}`, { target });
  if (r.timedOut)
    return fail('PRINTER_UNREACHABLE', `${what}: no answer from CUPS in time`, { target, errno: 'ETIMEDOUT' });
  return null;
}

/**
 * The state line of `lpstat -p QUEUE` in the C locale: `printer Q disabled since <date> -` followed by the reason
 * on the next line when the queue is stopped; `printer Q is idle.  enabled since ...` (or `now printing`) otherwise.
 */
export function stoppedReason(lpstatP: string, queue: string): string | null {
  const lines = lpstatP.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`printer ${queue} disabled since `));
  if (i < 0) return null;
  return lines[i + 1]?.trim() || 'no reason given';
}

/** Send `bytes` to CUPS queue `queue` as a raw job within `timeoutMs` (see the header for the steps). */
export async function printToCups(
  queue: string,
  timeoutMs: number,
  bytes: Buffer,
  c: CupsClient = {},
): Promise<Result<PrintReceipt>> {
  const target = `cups:${queue}`;
  const lp = c.lp ?? 'lp';
  const lpstat = c.lpstat ?? 'lpstat';
  const deadline = Date.now() + timeoutMs;
  const left = () => deadline - Date.now();

  const state = await run(lpstat, ['-p', queue], null, left());
  const stateFailed = notRun(state, lpstat, `${lpstat} -p ${queue}`, target);
  if (stateFailed) return stateFailed;
  const stopped = state.code === 0 ? stoppedReason(state.stdout, queue) : null;
  if (stopped !== null)
    return fail(
      'PRINTER_FAILED',
      `the CUPS queue ${queue} is stopped (${stopped}): the label was not sent; resume it (cupsenable ${queue}), then reprint`,
      { target, queueState: 'stopped', reason: stopped },
    );
  // lpstat -p failed (unknown queue, or no scheduler): lp says which, in its own words.

  const sent = await run(lp, ['-d', queue, '-o', 'raw'], bytes, left());
  const sendFailed = notRun(sent, lp, `${lp} -d ${queue}`, target);
  if (sendFailed) return sendFailed;
  if (sent.code === 0) return ok({ target, bytes: bytes.length });

  // Without a scheduler lp only says "The printer or class does not exist": ask the scheduler itself.
  const sched = await run(lpstat, ['-r'], null, left());
  const message = `${lp} -d ${queue} exited with ${sent.code ?? 'a signal'}: ${firstLine(sent.stderr)}`;
  const details = { target, exitCode: sent.code, ...(sent.stdout ? { stdout: firstLine(sent.stdout) } : {}) };
  if (sched.code === 0 && sched.stdout.includes('scheduler is not running'))
    return fail('PRINTER_UNREACHABLE', `the CUPS scheduler is not running (${message})`, {
      ...details,
      errno: 'ECONNREFUSED',
    });
  return fail('PRINTER_FAILED', message, details);
}
