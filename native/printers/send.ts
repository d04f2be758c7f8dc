/**
 * Label printers: send a ZPL document to the configured target (core/labels/config.ts PrinterTarget) — a file or
 * device node, a raw TCP socket (port 9100) with timeouts, or a CUPS queue through `lp -d QUEUE -o raw` (argv, no
 * shell). Every failure is a coded result (PRINTER_UNREACHABLE, PRINTER_FAILED, PRINTER_LP_MISSING); nothing throws.
 * docs/operations.md "Label printer".
 */
import { spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fail } from '../../core/errors.js';
import type { PrinterTarget } from '../../core/labels/config.js';
import { ok, type Result } from '../../core/result.js';

/** What a label send did: where it went and how many bytes. */
export interface PrintReceipt {
  /** `file:<path>`, `tcp:<host>:<port>` or `cups:<queue>`: for the log and the audit. */
  readonly target: string;
  readonly bytes: number;
}

export interface SendOptions {
  /** Resolve a configured file path (relative to the data dir). */
  readonly resolvePath?: (p: string) => string;
  /** Names the file written into a directory target. */
  readonly recordId?: string;
  /** The `lp` program (default `lp` on PATH). */
  readonly lpCommand?: string;
  readonly now?: () => Date;
}

/** A printer target as text (no secrets: host, port, queue or path). */
export function describeTarget(t: PrinterTarget): string {
  switch (t.kind) {
    case 'file':
      return `file:${t.path}`;
    case 'tcp':
      return `tcp:${t.host}:${t.port}`;
    case 'cups':
      return `cups:${t.queue}`;
  }
}

/** Send one ZPL document to a printer target. */
export async function sendZpl(t: PrinterTarget, zpl: string, o: SendOptions = {}): Promise<Result<PrintReceipt>> {
  const bytes = Buffer.from(zpl, 'utf8');
  switch (t.kind) {
    case 'file':
      return toFile(o.resolvePath ? o.resolvePath(t.path) : t.path, bytes, o);
    case 'tcp':
      return toTcp(t.host, t.port, t.timeoutMs, bytes);
    case 'cups':
      return toCups(t.queue, t.timeoutMs, bytes, o.lpCommand ?? 'lp');
  }
}

function toFile(path: string, bytes: Buffer, o: SendOptions): Result<PrintReceipt> {
  let file = path;
  try {
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      const ts = (o.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
      file = join(path, `${ts}-${(o.recordId ?? 'label').replace(/[^A-Za-z0-9-]/g, '_')}.zpl`);
    }
    writeFileSync(file, bytes);
    return ok({ target: `file:${file}`, bytes: bytes.length });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    return fail('PRINTER_FAILED', `label printer file ${file}: ${code} ${(e as Error).message}`, {
      target: `file:${file}`,
      errno: code,
    });
  }
}

/**
 * Raw TCP ("port 9100"): connect within the timeout, write the document, half-close and wait (same timeout) for
 * the printer to close or for the data to leave this host. Refused, unreachable, reset or timed out:
 * PRINTER_UNREACHABLE (the label may not have printed).
 */
function toTcp(host: string, port: number, timeoutMs: number, bytes: Buffer): Promise<Result<PrintReceipt>> {
  const target = `tcp:${host}:${port}`;
  return new Promise((resolve) => {
    let done = false;
    let flushed = false;
    const finish = (r: Result<PrintReceipt>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const unreachable = (why: string, errno?: string) =>
      finish(fail('PRINTER_UNREACHABLE', `label printer ${target}: ${why}`, { target, ...(errno ? { errno } : {}) }));
    const sock = connect({ host, port });
    let timer = setTimeout(() => unreachable(`no connection within ${timeoutMs} ms`, 'ETIMEDOUT'), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => unreachable(`${e.code ?? 'error'} ${e.message}`, e.code));
    sock.on('connect', () => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          flushed
            ? finish(ok({ target, bytes: bytes.length })) // sent; the printer just keeps its side open
            : unreachable(`the printer did not take the label within ${timeoutMs} ms`, 'ETIMEDOUT'),
        timeoutMs,
      );
      sock.end(bytes, () => {
        flushed = true;
      });
    });
    sock.on('data', () => undefined); // a printer's status bytes, if any: read and ignore
    sock.on('close', (hadError) => {
      if (!hadError && flushed) finish(ok({ target, bytes: bytes.length }));
      else if (!hadError) unreachable('the printer closed the connection before it took the label', 'ECONNRESET');
    });
  });
}

/** `lp -d QUEUE -o raw` with the document on stdin; ENOENT: PRINTER_LP_MISSING; non-zero exit: PRINTER_FAILED. */
function toCups(queue: string, timeoutMs: number, bytes: Buffer, lp: string): Promise<Result<PrintReceipt>> {
  const target = `cups:${queue}`;
  return new Promise((resolve) => {
    let done = false;
    let stderr = '';
    let stdout = '';
    const finish = (r: Result<PrintReceipt>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const child = spawn(lp, ['-d', queue, '-o', 'raw'], { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(
        fail('PRINTER_UNREACHABLE', `${lp} -d ${queue}: no answer within ${timeoutMs} ms`, {
          target,
          errno: 'ETIMEDOUT',
        }),
      );
    }, timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) =>
      finish(
        e.code === 'ENOENT'
          ? fail('PRINTER_LP_MISSING', `the CUPS client "${lp}" is not installed (install cups-client)`, { target })
          : fail('PRINTER_FAILED', `${lp}: ${e.code ?? ''} ${e.message}`, { target }),
      ),
    );
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString('utf8')).slice(0, 2000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(0, 2000)));
    child.stdin.on('error', () => undefined); // lp exited early: its exit code says why
    child.on('close', (code) => {
      if (code === 0) finish(ok({ target, bytes: bytes.length }));
      else
        finish(
          fail(
            'PRINTER_FAILED',
            `${lp} -d ${queue} exited with ${code ?? 'a signal'}: ${stderr.trim().split('\n')[0] ?? ''}`,
            {
              target,
              exitCode: code,
              ...(stdout ? { stdout: stdout.trim() } : {}),
            },
          ),
        );
    });
    child.stdin.end(bytes);
  });
}
