/**
 * USB behind an interface: `UsbWatcher` lists USB devices and reports hotplug. The adapter wraps the
 * `usb` package 2.x (libusb). It degrades to "USB unavailable" (an info log, never a crash) when the
 * machine has no USB (no /sys/bus/usb), when libusb cannot be loaded or initialised, or when hotplug
 * registration fails.
 *
 * String descriptors (manufacturer, product, serial number) are read from sysfs when possible (no
 * device access needed), otherwise by opening the device. Opening can fail with LIBUSB_ERROR_ACCESS:
 * that becomes an ACCESS_DENIED problem with guidance to install resources/udev/70-line-station.rules.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger, UsbDescriptor } from '../core/ports.js';

export interface UsbProblem {
  readonly code: 'ACCESS_DENIED' | 'ENUMERATION_FAILED';
  /** `usb:<bus>-<address>` */
  readonly path: string;
  readonly message: string;
}

export interface UsbWatcher {
  /** False when USB is not usable on this machine; then list() is empty and no events come. */
  readonly available: boolean;
  /** Why USB is unavailable (when it is). */
  readonly reason?: string;
  /** The USB devices present now (string descriptors as far as already read). */
  list(): UsbDescriptor[];
  /** A device appeared (called after its string descriptors were read, or failed to be). Returns unsubscribe. */
  onAttach(cb: (d: UsbDescriptor) => void): () => void;
  onDetach(cb: (d: UsbDescriptor) => void): () => void;
  /** Problems (e.g. no permission to read a device). Outstanding problems are replayed to new subscribers. */
  onProblem(cb: (p: UsbProblem) => void): () => void;
  close(): void;
}

// ---------------------------------------------------------------- backend (the part of `usb` we use)

/** The subset of a `usb` Device the adapter uses. */
export interface UsbBackendDevice {
  readonly busNumber: number;
  readonly deviceAddress: number;
  readonly portNumbers?: readonly number[];
  readonly deviceDescriptor: {
    readonly idVendor: number;
    readonly idProduct: number;
    readonly iManufacturer: number;
    readonly iProduct: number;
    readonly iSerialNumber: number;
  };
  open(defaultConfig?: boolean): void;
  close(): void;
  getStringDescriptor(index: number, cb: (error?: Error, value?: string) => void): void;
}

/** The subset of the `usb` module the adapter uses (the real one, or a replay of recorded data in tests). */
export interface UsbBackend {
  getDeviceList(): UsbBackendDevice[];
  on(event: 'attach' | 'detach', cb: (d: UsbBackendDevice) => void): unknown;
  removeListener(event: 'attach' | 'detach', cb: (d: UsbBackendDevice) => void): unknown;
  unrefHotplugEvents?(): void;
}

export interface UsbWatcherOptions {
  /** Defaults to the real `usb` package (loaded lazily, only when /sys/bus/usb exists). */
  readonly backend?: UsbBackend;
  readonly logger?: Logger;
  /** Where sysfs is (default /sys); `<sysfs>/bus/usb` missing means no USB on this machine (Linux). */
  readonly sysfs?: string;
  /** Only devices for which this returns true get their string descriptors read (default: all). */
  readonly readStrings?: (vendorId: number, productId: number) => boolean;
  /** Per-descriptor read timeout (default 1000 ms). */
  readonly stringTimeoutMs?: number;
}

export const UDEV_GUIDANCE =
  'No permission to open the USB device. Install the udev rules: sudo cp resources/udev/70-line-station.rules /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger, add the operator to group plugdev, then re-plug the board.';

/** A watcher for a machine without usable USB. */
export function unavailableUsbWatcher(reason: string): UsbWatcher {
  const none = () => () => {};
  return { available: false, reason, list: () => [], onAttach: none, onDetach: none, onProblem: none, close: () => {} };
}

const usbPath = (d: UsbBackendDevice): string => `usb:${d.busNumber}-${d.deviceAddress}`;
const deviceKey = (d: UsbBackendDevice): string =>
  `${d.busNumber}-${d.deviceAddress}-${d.deviceDescriptor.idVendor}-${d.deviceDescriptor.idProduct}`;

function isAccessError(e: unknown): boolean {
  const x = e as { errno?: unknown; message?: unknown } | null;
  return x?.errno === -3 || (typeof x?.message === 'string' && x.message.includes('LIBUSB_ERROR_ACCESS'));
}

/** Printable, bounded string from a device (string descriptors are untrusted input). */
function clean(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  const t = [...s]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f)
    .join('')
    .trim()
    .slice(0, 128);
  return t.length > 0 ? t : undefined;
}

type Strings = Pick<UsbDescriptor, 'manufacturer' | 'product' | 'serialNumber'>;

/**
 * Create a UsbWatcher over the `usb` package (or the given backend). Never throws: every failure
 * degrades to an unavailable watcher or a problem.
 */
export async function createUsbWatcher(opts: UsbWatcherOptions = {}): Promise<UsbWatcher> {
  const log = opts.logger?.child('[usb]');
  const sysfs = opts.sysfs ?? '/sys';
  let backend = opts.backend;
  if (!backend) {
    if (process.platform === 'linux' && !existsSync(join(sysfs, 'bus/usb'))) {
      const reason = `USB unavailable: ${join(sysfs, 'bus/usb')} does not exist (no USB on this machine)`;
      log?.log('info', reason);
      return unavailableUsbWatcher(reason);
    }
    try {
      const mod = (await import('usb')) as unknown as { usb: UsbBackend & { INIT_ERROR?: unknown } };
      if (mod.usb.INIT_ERROR) throw new Error('libusb failed to initialise');
      backend = mod.usb;
    } catch (e) {
      const reason = `USB unavailable: ${(e as Error).message}`;
      log?.log('info', reason);
      return unavailableUsbWatcher(reason);
    }
  }
  const b = backend;

  let initial: UsbBackendDevice[];
  try {
    initial = b.getDeviceList();
  } catch (e) {
    const reason = `USB unavailable: enumeration failed: ${(e as Error).message}`;
    log?.log('info', reason);
    return unavailableUsbWatcher(reason);
  }

  const strings = new Map<string, Strings>();
  const pending = new Map<string, Promise<void>>();
  const problems = new Map<string, UsbProblem>();
  const attachCbs = new Set<(d: UsbDescriptor) => void>();
  const detachCbs = new Set<(d: UsbDescriptor) => void>();
  const problemCbs = new Set<(p: UsbProblem) => void>();
  const timeoutMs = opts.stringTimeoutMs ?? 1000;
  let closed = false;

  const report = (p: UsbProblem) => {
    if (problems.has(p.path)) return;
    problems.set(p.path, p);
    log?.log('warn', p.message, { path: p.path, code: p.code });
    for (const cb of problemCbs) safe(() => cb(p));
  };

  function describe(d: UsbBackendDevice): UsbDescriptor {
    const s = strings.get(deviceKey(d)) ?? {};
    return {
      vendorId: d.deviceDescriptor.idVendor,
      productId: d.deviceDescriptor.idProduct,
      ...s,
      busNumber: d.busNumber,
      deviceAddress: d.deviceAddress,
    };
  }

  function fromSysfs(d: UsbBackendDevice): Strings | null {
    if (!d.portNumbers || d.portNumbers.length === 0) return null;
    const dir = join(sysfs, 'bus/usb/devices', `${d.busNumber}-${d.portNumbers.join('.')}`);
    if (!existsSync(dir)) return null;
    const read = (f: string) => {
      try {
        return clean(readFileSync(join(dir, f), 'utf8'));
      } catch {
        return undefined;
      }
    };
    return { manufacturer: read('manufacturer'), product: read('product'), serialNumber: read('serial') };
  }

  function readString(d: UsbBackendDevice, index: number): Promise<string | undefined> {
    if (index === 0) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`string descriptor ${index} timed out`)), timeoutMs);
      try {
        d.getStringDescriptor(index, (e, v) => {
          clearTimeout(t);
          if (e) reject(e);
          else resolve(clean(v));
        });
      } catch (e) {
        clearTimeout(t);
        reject(e);
      }
    });
  }

  async function readStrings(d: UsbBackendDevice): Promise<void> {
    const key = deviceKey(d);
    if (strings.has(key)) return;
    const { idVendor, idProduct, iManufacturer, iProduct, iSerialNumber } = d.deviceDescriptor;
    if (opts.readStrings && !opts.readStrings(idVendor, idProduct)) return;
    const sys = fromSysfs(d);
    if (sys) {
      strings.set(key, sys);
      return;
    }
    try {
      d.open(false);
    } catch (e) {
      strings.set(key, {});
      report({
        code: isAccessError(e) ? 'ACCESS_DENIED' : 'ENUMERATION_FAILED',
        path: usbPath(d),
        message: isAccessError(e)
          ? `USB ${hex(idVendor)}:${hex(idProduct)} at ${usbPath(d)}: ${UDEV_GUIDANCE}`
          : `USB ${hex(idVendor)}:${hex(idProduct)} at ${usbPath(d)} could not be opened: ${(e as Error).message}`,
      });
      return;
    }
    try {
      const manufacturer = await readString(d, iManufacturer);
      const product = await readString(d, iProduct);
      const serialNumber = await readString(d, iSerialNumber);
      strings.set(key, { manufacturer, product, serialNumber });
    } catch (e) {
      strings.set(key, {});
      report({
        code: isAccessError(e) ? 'ACCESS_DENIED' : 'ENUMERATION_FAILED',
        path: usbPath(d),
        message: `USB ${hex(idVendor)}:${hex(idProduct)} at ${usbPath(d)}: reading string descriptors failed: ${(e as Error).message}`,
      });
    } finally {
      safe(() => d.close());
    }
  }

  function ensureStrings(d: UsbBackendDevice): Promise<void> {
    const key = deviceKey(d);
    let p = pending.get(key);
    if (!p) {
      p = readStrings(d).finally(() => pending.delete(key));
      pending.set(key, p);
    }
    return p;
  }

  const onAttach = (d: UsbBackendDevice) => {
    void ensureStrings(d).then(() => {
      if (closed) return;
      const desc = describe(d);
      for (const cb of attachCbs) safe(() => cb(desc));
    });
  };
  const onDetach = (d: UsbBackendDevice) => {
    const desc = describe(d);
    strings.delete(deviceKey(d));
    problems.delete(usbPath(d));
    for (const cb of detachCbs) safe(() => cb(desc));
  };

  let hotplug = false;
  try {
    b.on('attach', onAttach);
    b.on('detach', onDetach);
    hotplug = true;
    b.unrefHotplugEvents?.();
  } catch (e) {
    log?.log('info', `USB hotplug unavailable (${(e as Error).message}); relying on polling`);
    safe(() => b.removeListener('attach', onAttach));
    safe(() => b.removeListener('detach', onDetach));
  }

  // Read the strings of what is already plugged in, before the first list() is answered.
  await Promise.all(initial.map((d) => ensureStrings(d)));

  return {
    available: true,
    list() {
      if (closed) return [];
      let devices: UsbBackendDevice[];
      try {
        devices = b.getDeviceList();
      } catch (e) {
        report({
          code: 'ENUMERATION_FAILED',
          path: 'usb:',
          message: `USB enumeration failed: ${(e as Error).message}`,
        });
        return [];
      }
      problems.delete('usb:');
      for (const d of devices) if (!strings.has(deviceKey(d))) void ensureStrings(d);
      return devices.map(describe);
    },
    onAttach(cb) {
      attachCbs.add(cb);
      return () => attachCbs.delete(cb);
    },
    onDetach(cb) {
      detachCbs.add(cb);
      return () => detachCbs.delete(cb);
    },
    onProblem(cb) {
      problemCbs.add(cb);
      for (const p of problems.values()) safe(() => cb(p));
      return () => problemCbs.delete(cb);
    },
    close() {
      closed = true;
      attachCbs.clear();
      detachCbs.clear();
      problemCbs.clear();
      if (hotplug) {
        safe(() => b.removeListener('attach', onAttach));
        safe(() => b.removeListener('detach', onDetach));
      }
    },
  };
}

const hex = (n: number): string => n.toString(16).padStart(4, '0');

function safe(f: () => void): void {
  try {
    f();
  } catch {
    // a failing subscriber or close() must not take the watcher down
  }
}
