/**
 * Device discovery: enumerates serial ports (serialport) and configured paths (e.g. pty links from the simulator,
 * which SerialPort.list() never shows), joins them with USB descriptors, and reports attached/detached/problem
 * events. It enumerates when something changed, not on a timer: udev events or inotify on /dev for the serial
 * ports, inotify on the configured ports' directories, USB hotplug (native/port-events.ts); it polls only where
 * those events are unavailable (docs/detection.md "Change events"). Every failure becomes a `problem` event or a
 * log line, never a crash.
 */
import { constants as fsc } from 'node:fs';
import { access, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createPortTracker, mergePorts } from '../core/detect.js';
import type { DetectedPort, DeviceDiscovery, DiscoveryEvent, Logger, UsbDescriptor } from '../core/ports.js';
import { watchDirs, watchSerialChanges, type ChangeSource, type SerialChangeOptions } from './port-events.js';
import { toDetectedPort } from './serial.js';
import type { UsbWatcher } from './usb.js';

export interface DiscoveryOptions {
  /** Extra ports: paths, or simple globs in the last path segment (`/tmp/x/board-*`), expanded by listing the directory. */
  readonly extraPorts?: readonly string[];
  /**
   * Poll interval where change events are unavailable (default 1000 ms): always with a custom `listSerial` (it has
   * no events), with `events: false`, or when neither udev nor inotify works here.
   */
  readonly pollMs?: number;
  /** Enumerate on change events (default true); false: poll every `pollMs`. */
  readonly events?: boolean;
  /**
   * Where the serial change events come from (default: this system's udev or /dev). Given, they are used even with
   * a custom `listSerial` (tests: a stand-in udevadm).
   */
  readonly serialEvents?: Pick<SerialChangeOptions, 'udevControl' | 'udevadm' | 'devDir'>;
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

  let serialProblem: Problem | null = null;

  /** The ports now; the serial ports enumerated again only when `serial` (else the last enumeration's). */
  async function snapshot(serial = true): Promise<{ ports: DetectedPort[]; problems: Problem[] }> {
    const problems: Problem[] = [];
    if (serial) {
      serialProblem = null;
      try {
        const listed = await listSerial();
        lastSerial = listed.filter((p) => opts.includeNonUsbSerial || p.usb !== undefined);
      } catch (e) {
        // keep the last known serial ports: a failed enumeration is not an unplug
        serialProblem = {
          type: 'problem',
          path: 'serial',
          code: 'ENUMERATION_FAILED',
          message: `serial port enumeration failed: ${(e as Error).message}`,
        };
      }
    }
    // A failed enumeration stays a problem until one succeeds.
    if (serialProblem) problems.push(serialProblem);
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
      lastSerial,
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

      // What to look at on the next pass: the serial ports only after a serial change (enumerating them spawns
      // `udevadm info -e` on Linux), the configured ports every pass (a directory read, no process).
      let serialDue = true;
      let dirWatches: ReturnType<typeof watchDirs> | null = null;
      let poll: ReturnType<typeof setInterval> | null = null;
      const startPolling = (why: string) => {
        if (poll || stopped) return;
        log?.log('info', `port discovery polls every ${pollMs} ms: ${why}`);
        poll = setInterval(() => {
          serialDue = true;
          void tick();
        }, pollMs);
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
            const serial = serialDue;
            serialDue = false;
            const s = await snapshot(serial);
            if (stopped) return;
            if (dirWatches) {
              // Watched: each configured spec's directory, and the directory of each attached link's target.
              const targets: string[] = [];
              for (const p of s.ports) {
                if (p.source !== 'configured') continue;
                const t = await realpath(p.path).catch(() => null);
                if (t && t !== p.path) targets.push(t);
              }
              const r = dirWatches.set([...extra.map((spec) => dirname(spec)), ...targets.map((t) => dirname(t))]);
              if (r === 'failed') startPolling('a configured port directory cannot be watched');
              // A directory watched only from now on may have changed before: look once more.
              if (r === 'added') again = true;
            }
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
          } while ((again || serialDue) && !stopped);
        } catch (e) {
          problem(
            { type: 'problem', path: 'discovery', code: 'ENUMERATION_FAILED', message: (e as Error).message },
            true,
          );
        } finally {
          running = false;
        }
      };
      const serialChanged = () => {
        serialDue = true;
        void tick();
      };

      const later = (ms: number) => {
        const t = setTimeout(() => {
          timers.delete(t);
          serialChanged();
        }, ms);
        timers.add(t);
      };
      const onUsbEvent = () => {
        serialChanged();
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
      // Change events (docs/detection.md "Change events"); polling where they are unavailable.
      let serialSource: ChangeSource | null = null;
      if (opts.events === false) startPolling('change events switched off');
      else if (opts.listSerial && !opts.serialEvents) startPolling('a custom serial enumeration has no change events');
      else {
        serialSource = watchSerialChanges({
          onChange: () => {
            serialChanged();
            // udev may still be creating the node's links and properties: look once more after settling.
            if (settleMs > 0) later(settleMs);
          },
          onFail: (why) => startPolling(why),
          ...(log ? { logger: log } : {}),
          ...opts.serialEvents,
        });
        if (!serialSource) startPolling('neither udev nor inotify on /dev is available');
        else
          log?.log(
            'info',
            `port discovery follows ${serialSource.mode === 'udev' ? 'udev events' : 'inotify on /dev'}`,
          );
      }
      if (extra.length > 0 && !poll) dirWatches = watchDirs(() => void tick(), log);
      void tick();

      return () => {
        stopped = true;
        if (poll) clearInterval(poll);
        serialSource?.close();
        dirWatches?.close();
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
