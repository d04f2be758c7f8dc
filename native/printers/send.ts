/**
 * Label printers: send a ZPL document to the configured target (core/labels/config.ts PrinterTarget) — a file or
 * device node, a raw TCP socket (port 9100) with timeouts, or a CUPS queue (cups.ts: `lp -d QUEUE -o raw`, argv, no
 * shell, a stopped queue refused). Every failure is a coded result (PRINTER_UNREACHABLE, PRINTER_FAILED,
 * PRINTER_LP_MISSING); nothing throws.
 * docs/operations.md "Label printer".
 */
import { statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fail } from '../../core/errors.js';
import type { PrinterTarget } from '../../core/labels/config.js';
import { ok, type Result } from '../../core/result.js';
import { printToCups, type PrintReceipt } from './cups.js';

export type { PrintReceipt } from './cups.js';

export interface SendOptions {
  /** Resolve a configured file path (relative to the data dir). */
  readonly resolvePath?: (p: string) => string;
  /** Names the file written into a directory target. */
  readonly recordId?: string;
  /** The CUPS client programs (default `lp` and `lpstat` on PATH). */
  readonly lpCommand?: string;
  readonly lpstatCommand?: string;
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
      return printToCups(t.queue, t.timeoutMs, bytes, {
        ...(o.lpCommand ? { lp: o.lpCommand } : {}),
        ...(o.lpstatCommand ? { lpstat: o.lpstatCommand } : {}),
      });
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
