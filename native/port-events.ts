/**
 * What tells discovery (native/discovery.ts) that the ports may have changed, so that it enumerates only then
 * instead of polling: it never enumerates itself.
 * - System serial ports: udev's events after rule processing (`udevadm monitor --udev --subsystem-match=tty`, ONE
 *   long-lived child) where udev runs (/run/udev/control exists), else inotify on /dev (tty nodes appearing and
 *   disappearing, Linux only); neither available (another platform, watch refused): null, and the caller polls.
 * - Configured ports (paths and globs, native/discovery.ts): inotify on each spec's directory (its nearest existing
 *   ancestor while it does not exist yet) and on the directory of each attached port's link target (/dev/pts for
 *   a socat link: a link whose pty vanished is seen although the link stays).
 * Like the poll timer they replace, running sources keep the process alive until they are closed.
 * Imports node:child_process, node:fs, node:path and core/ports.ts (types).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../core/ports.js';

/** How changes of the system's serial ports are noticed. */
export type SerialChangeMode = 'udev' | 'inotify';

/** A running change source; `close` stops it (idempotent). */
export interface ChangeSource {
  readonly mode: SerialChangeMode;
  close(): void;
}

/** Options of watchSerialChanges (defaults are the real system; tests pass their own). */
export interface SerialChangeOptions {
  /** Called on every change (the caller coalesces). */
  readonly onChange: () => void;
  /** Called once when a running source fails (udevadm exits): the caller falls back to polling. */
  readonly onFail: (why: string) => void;
  readonly logger?: Logger;
  /** udev's control socket: udev runs when it exists (default /run/udev/control). */
  readonly udevControl?: string;
  /** The udevadm executable (default `udevadm` from PATH). */
  readonly udevadm?: string;
  /** The device directory watched without udev (default /dev). */
  readonly devDir?: string;
}

/** Names in /dev that are serial ports (tty*, rfcomm*); other /dev entries do not wake discovery. */
const SERIAL_NODE = /^(tty|rfcomm)/;
/** A line of `udevadm monitor --udev`: `UDEV  [1234.5678] add      /devices/.../ttyACM0 (tty)`. */
const UDEV_EVENT = /^UDEV\s+\[/;

/** Watch for serial port changes: udev where it runs, else inotify on /dev; null when neither is available. */
export function watchSerialChanges(o: SerialChangeOptions): ChangeSource | null {
  if (existsSync(o.udevControl ?? '/run/udev/control')) {
    const u = udevMonitor(o);
    if (u) return u;
  }
  const devDir = o.devDir ?? '/dev';
  // inotify on /dev is a Linux fact (devtmpfs); elsewhere (Windows COM ports, macOS devfs) the caller polls.
  if (o.devDir === undefined && process.platform !== 'linux') return null;
  let w: FSWatcher;
  try {
    w = watch(devDir, (_type, name) => {
      if (name === null || SERIAL_NODE.test(String(name))) o.onChange();
    });
  } catch (e) {
    o.logger?.log('info', `no change events for serial ports (cannot watch ${devDir}: ${(e as Error).message})`);
    return null;
  }
  let closed = false;
  w.on('error', (e) => {
    if (closed) return;
    closed = true;
    w.close();
    o.onFail(`watching ${devDir} failed: ${e.message}`);
  });
  return {
    mode: 'inotify',
    close() {
      closed = true;
      w.close();
    },
  };
}

/** `udevadm monitor --udev --subsystem-match=tty` as one child; null when it cannot be started. */
function udevMonitor(o: SerialChangeOptions): ChangeSource | null {
  let child: ChildProcess;
  try {
    child = spawn(o.udevadm ?? 'udevadm', ['monitor', '--udev', '--subsystem-match=tty'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch (e) {
    o.logger?.log('info', `udevadm monitor not started: ${(e as Error).message}`);
    return null;
  }
  let closed = false;
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    let changed = false;
    while ((nl = buf.indexOf('\n')) >= 0) {
      if (UDEV_EVENT.test(buf.slice(0, nl))) changed = true;
      buf = buf.slice(nl + 1);
    }
    if (changed) o.onChange();
  });
  const failed = (why: string) => {
    if (closed) return;
    closed = true;
    o.onFail(why);
  };
  child.once('error', (e) => failed(`udevadm monitor: ${e.message}`));
  child.once('exit', (code, signal) => failed(`udevadm monitor exited (${signal ?? code})`));
  return {
    mode: 'udev',
    close() {
      if (closed) return;
      closed = true;
      child.kill('SIGTERM');
    },
  };
}

/** The nearest existing directory at or above `dir`. */
function nearestExisting(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** Directory watches that follow a changing set of directories (configured ports and their link targets). */
export interface DirWatches {
  /**
   * Watch exactly these directories from now on (a missing one through its nearest existing ancestor). Returns
   * `failed` when one could not be watched (the caller then polls), `added` when a directory is watched that was not
   * before (what changed in it before its watch began is unseen: look once more), else `same`.
   */
  set(dirs: Iterable<string>): 'failed' | 'added' | 'same';
  close(): void;
}

/** Watch directories for any entry change; `onChange` on every event (the caller coalesces). */
export function watchDirs(onChange: () => void, logger?: Logger): DirWatches {
  const watchers = new Map<string, FSWatcher>();
  const refused = new Set<string>(); // logged once each
  const drop = (d: string) => {
    watchers.get(d)?.close();
    watchers.delete(d);
  };
  return {
    set(dirs) {
      const want = new Set([...dirs].map(nearestExisting));
      for (const d of [...watchers.keys()]) if (!want.has(d)) drop(d);
      let result: 'failed' | 'added' | 'same' = 'same';
      for (const d of want) {
        if (watchers.has(d)) continue;
        try {
          const w = watch(d, () => onChange());
          // The directory went away (or the watch broke): forget it; the next set() watches its nearest ancestor.
          w.on('error', () => {
            drop(d);
            onChange();
          });
          watchers.set(d, w);
          if (result === 'same') result = 'added';
        } catch (e) {
          if (!refused.has(d)) logger?.log('info', `cannot watch ${d} for port changes: ${(e as Error).message}`);
          refused.add(d);
          result = 'failed';
        }
      }
      return result;
    },
    close() {
      for (const d of [...watchers.keys()]) drop(d);
    },
  };
}
