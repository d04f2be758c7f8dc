/**
 * Device discovery: polls serial enumeration (serialport) and configured paths (e.g. pty links from
 * the simulator, which SerialPort.list() never shows), joins them with USB descriptors, and reports
 * attached/detached/problem events. USB hotplug events trigger an immediate re-poll. Every failure
 * becomes a `problem` event or a log line, never a crash.
 */
import { constants as fsc } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createPortTracker, mergePorts } from '../core/detect.js';
import type { DetectedPort, DeviceDiscovery, DiscoveryEvent, Logger, UsbDescriptor } from '../core/ports.js';
import { toDetectedPort } from './serial.js';
import type { UsbWatcher } from './usb.js';

export interface DiscoveryOptions {
  /** Extra ports: paths, or simple globs in the last path segment (`/tmp/x/board-*`), expanded by listing the directory. */
  readonly extraPorts?: readonly string[];
  /** Poll interval (default 1000 ms). */
  readonly pollMs?: number;
  readonly usb?: UsbWatcher;
  /** Serial enumeration (default: serialport's SerialPort.list()). */
  readonly listSerial?: () => Promise<DetectedPort[]>;
  readonly logger?: Logger;
  /** Also report enumerated serial ports without USB information (legacy /dev/ttyS*). Default false. */
  readonly includeNonUsbSerial?: boolean;
  /** Report USB devices without a serial port for which this returns true (source 'usb', path `usb:<bus>-<addr>`). */
  readonly includeUsbOnly?: (d: UsbDescriptor) => boolean;
  /** After a USB attach/detach, poll again after this delay too (the tty node may lag the USB event). Default 300 ms. */
  readonly settleMs?: number;
}

type Problem = Extract<DiscoveryEvent, { type: 'problem' }>;

/** Serial enumeration with serialport's SerialPort.list(); throws on failure (the caller keeps the last known ports). */
export async function listSerialPorts(): Promise<DetectedPort[]> {
  const { SerialPort } = await import('serialport');
  const ports = await SerialPort.list();
  return ports.map(toDetectedPort);
}

const GLOB = /[*?[]/;
/**
 * Names ending in `.sim` are the simulator's end of a pty pair (`link=board-0` for the station,
 * `link=board-0.sim` for the simulator): a glob never matches them. A literal path always counts.
 */
export const SIM_SUFFIX = '.sim';

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end > i + 1) {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      } else re += '\\[';
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Expand configured port specs into the paths present now that are character devices (or symlinks
 * to them). Globs (`*`, `?`, `[...]`) are allowed in the last path segment only and skip `*.sim`. Missing directories are not problems
 * (the simulator may not have started); unreadable ones are.
 */
export async function expandConfiguredPorts(
  specs: readonly string[],
): Promise<{ paths: string[]; problems: Problem[] }> {
  const paths = new Set<string>();
  const problems: Problem[] = [];
  for (const spec of specs) {
    let candidates: string[];
    const dir = dirname(spec);
    const base = basename(spec);
    if (GLOB.test(base) && !GLOB.test(dir)) {
      try {
        const re = globToRegExp(base);
        candidates = (await readdir(dir))
          .filter((n) => re.test(n) && !n.endsWith(SIM_SUFFIX))
          .sort()
          .map((n) => join(dir, n));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          problems.push({
            type: 'problem',
            path: spec,
            code: code === 'EACCES' || code === 'EPERM' ? 'ACCESS_DENIED' : 'ENUMERATION_FAILED',
            message: `cannot list ${dir} for configured ports ${spec}: ${(e as Error).message}`,
          });
        }
        continue;
      }
    } else {
      candidates = [spec];
    }
    for (const c of candidates) {
      try {
        if ((await stat(c)).isCharacterDevice()) paths.add(c);
      } catch {
        // absent or dangling link: not attached
      }
    }
  }
  return { paths: [...paths], problems };
}

const problemKey = (p: Problem): string => `${p.path}|${p.code}|${p.message}`;

/** Create a DeviceDiscovery over serial enumeration, configured paths and (optionally) USB hotplug. */
export function createDiscovery(opts: DiscoveryOptions = {}): DeviceDiscovery {
  const log = opts.logger;
  const listSerial = opts.listSerial ?? listSerialPorts;
  const pollMs = Math.max(20, opts.pollMs ?? 1000);
  const settleMs = Math.max(0, opts.settleMs ?? 300);
  const extra = opts.extraPorts ?? [];
  let lastSerial: DetectedPort[] = [];

  async function snapshot(): Promise<{ ports: DetectedPort[]; problems: Problem[] }> {
    const problems: Problem[] = [];
    let serial = lastSerial;
    try {
      const listed = await listSerial();
      serial = listed.filter((p) => opts.includeNonUsbSerial || p.usb !== undefined);
      lastSerial = serial;
    } catch (e) {
      // keep the last known serial ports: a failed enumeration is not an unplug
      problems.push({
        type: 'problem',
        path: 'serial',
        code: 'ENUMERATION_FAILED',
        message: `serial port enumeration failed: ${(e as Error).message}`,
      });
    }
    const configured = await expandConfiguredPorts(extra);
    problems.push(...configured.problems);
    let usbList: UsbDescriptor[] = [];
    if (opts.usb?.available) {
      try {
        usbList = opts.usb.list();
      } catch (e) {
        problems.push({
          type: 'problem',
          path: 'usb',
          code: 'ENUMERATION_FAILED',
          message: `USB enumeration failed: ${(e as Error).message}`,
        });
      }
    }
    const ports = mergePorts(
      serial,
      usbList,
      configured.paths.map((path) => ({ path, source: 'configured' as const })),
      opts.includeUsbOnly ? { includeUsbOnly: opts.includeUsbOnly } : {},
    );
    return { ports, problems };
  }

  return {
    async list() {
      const s = await snapshot();
      for (const p of s.problems) log?.log('warn', p.message, { path: p.path, code: p.code });
      return s.ports;
    },

    watch(cb) {
      const tracker = createPortTracker();
      const active = new Set<string>(); // outstanding problems (reported once until they clear)
      const timers = new Set<ReturnType<typeof setTimeout>>();
      let stopped = false;
      let running = false;
      let again = false;

      const emit = (ev: DiscoveryEvent) => {
        if (stopped) return;
        try {
          cb(ev);
        } catch (e) {
          log?.log('error', `discovery subscriber threw: ${(e as Error).message}`);
        }
      };
      const problem = (p: Problem, transient: boolean) => {
        const k = problemKey(p);
        if (active.has(k)) return;
        if (!transient) active.add(k);
        log?.log('warn', p.message, { path: p.path, code: p.code });
        emit(p);
      };

      const checkAccess = async (port: DetectedPort) => {
        if (!port.path.startsWith('/')) return;
        try {
          await access(port.path, fsc.R_OK | fsc.W_OK);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EACCES' || code === 'EPERM') {
            problem(
              {
                type: 'problem',
                path: port.path,
                code: 'ACCESS_DENIED',
                message: `no permission to open ${port.path}: install resources/udev/70-line-station.rules and add the operator to group plugdev`,
              },
              false,
            );
          }
        }
      };

      const tick = async (): Promise<void> => {
        if (stopped) return;
        if (running) {
          again = true;
          return;
        }
        running = true;
        try {
          do {
            again = false;
            const s = await snapshot();
            if (stopped) return;
            const seen = new Set(s.problems.map(problemKey));
            for (const k of [...active]) if (k.startsWith('usb:') === false && !seen.has(k)) active.delete(k);
            for (const p of s.problems) problem(p, false);
            for (const ev of tracker.update(s.ports)) {
              if (ev.type === 'detached') {
                for (const k of [...active]) if (k.startsWith(`${ev.port.path}|`)) active.delete(k);
              }
              emit(ev);
              if (ev.type === 'attached') await checkAccess(ev.port);
            }
          } while (again && !stopped);
        } catch (e) {
          problem(
            { type: 'problem', path: 'discovery', code: 'ENUMERATION_FAILED', message: (e as Error).message },
            true,
          );
        } finally {
          running = false;
        }
      };

      const later = (ms: number) => {
        const t = setTimeout(() => {
          timers.delete(t);
          void tick();
        }, ms);
        timers.add(t);
      };
      const onUsbEvent = () => {
        void tick();
        if (settleMs > 0) later(settleMs);
      };

      const unsubs: Array<() => void> = [];
      if (opts.usb?.available) {
        try {
          unsubs.push(opts.usb.onAttach(onUsbEvent));
          unsubs.push(opts.usb.onDetach(onUsbEvent));
          unsubs.push(
            opts.usb.onProblem((p) =>
              problem({ type: 'problem', path: p.path, code: p.code, message: p.message }, false),
            ),
          );
        } catch (e) {
          log?.log('info', `USB hotplug not available to discovery: ${(e as Error).message}`);
        }
      }
      const interval = setInterval(() => void tick(), pollMs);
      void tick();

      return () => {
        stopped = true;
        clearInterval(interval);
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const u of unsubs) {
          try {
            u();
          } catch {
            // ignore
          }
        }
      };
    },
  };
}
