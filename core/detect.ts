/**
 * Board detection, the pure half: join serial ports with USB descriptors and configured ports into
 * one snapshot, and turn successive snapshots into attached/detached events.
 * The enumeration itself (serialport, usb, the file system) lives in native/discovery.ts.
 */
import type { DetectedPort, DiscoveryEvent, UsbDescriptor } from './ports.js';

const byPath = (a: DetectedPort, b: DetectedPort): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Pseudo path for a USB device that has no serial port (yet): `usb:<bus>-<address>` or `usb:<vid>:<pid>:<serial>`. */
export function usbPseudoPath(d: UsbDescriptor): string {
  if (d.busNumber !== undefined && d.deviceAddress !== undefined) return `usb:${d.busNumber}-${d.deviceAddress}`;
  const id = `${d.vendorId.toString(16).padStart(4, '0')}:${d.productId.toString(16).padStart(4, '0')}`;
  return `usb:${id}${d.serialNumber ? `:${d.serialNumber}` : ''}`;
}

function sameUsbDevice(serial: UsbDescriptor, usb: UsbDescriptor): boolean {
  if (serial.vendorId !== usb.vendorId || serial.productId !== usb.productId) return false;
  // When both sides know the serial number it must agree; otherwise VID/PID is all we have.
  if (serial.serialNumber !== undefined && usb.serialNumber !== undefined)
    return serial.serialNumber === usb.serialNumber;
  return true;
}

export interface MergeOptions {
  /**
   * USB devices that no serial port belongs to are dropped, unless this returns true for them
   * (e.g. a known board whose CDC driver is not bound yet); those become `source: 'usb'` ports
   * with a `usb:` pseudo path.
   */
  readonly includeUsbOnly?: (d: UsbDescriptor) => boolean;
}

/**
 * Join serial ports with USB descriptors (by VID/PID and, when both know it, serial number) and add
 * configured extra ports. A serial port's USB info is completed from the matching descriptor
 * (manufacturer, product, bus, address); a descriptor is used for at most one port, and only when
 * the match is unique. Configured paths already enumerated as serial ports are not duplicated.
 * Result is sorted by path.
 */
export function mergePorts(
  serialList: readonly DetectedPort[],
  usbList: readonly UsbDescriptor[],
  configured: readonly DetectedPort[] | readonly string[],
  opts: MergeOptions = {},
): DetectedPort[] {
  const out = new Map<string, DetectedPort>();
  const used = new Set<UsbDescriptor>();
  const serialSorted = [...serialList].sort(byPath);
  // Serial ports that know their serial number first, so an exact match wins over a VID/PID-only one.
  const order = [
    ...serialSorted.filter((p) => p.usb?.serialNumber),
    ...serialSorted.filter((p) => !p.usb?.serialNumber),
  ];
  for (const port of order) {
    if (out.has(port.path)) continue;
    const s = port.usb;
    if (!s) {
      out.set(port.path, { path: port.path, source: port.source });
      continue;
    }
    const candidates = usbList.filter((u) => !used.has(u) && sameUsbDevice(s, u));
    const [only, ...more] = candidates;
    if (only && more.length === 0) {
      used.add(only);
      out.set(port.path, { path: port.path, source: port.source, usb: { ...only, ...definedOnly(s) } });
    } else {
      out.set(port.path, { path: port.path, source: port.source, usb: s });
    }
  }
  for (const c of configured) {
    const port: DetectedPort = typeof c === 'string' ? { path: c, source: 'configured' } : c;
    if (!out.has(port.path)) out.set(port.path, port);
  }
  if (opts.includeUsbOnly) {
    for (const u of usbList) {
      if (used.has(u) || !opts.includeUsbOnly(u)) continue;
      const path = usbPseudoPath(u);
      if (!out.has(path)) out.set(path, { path, source: 'usb', usb: u });
    }
  }
  return [...out.values()].sort(byPath);
}

function definedOnly(d: UsbDescriptor): Partial<UsbDescriptor> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) if (v !== undefined) o[k] = v;
  return o as Partial<UsbDescriptor>;
}

/**
 * Whether two sightings of the same path are the same board: same USB presence and VID/PID, and
 * serial numbers that do not contradict each other (a serial number that only now became known is
 * an update, not a new board).
 */
function sameBoard(a: DetectedPort, b: DetectedPort): boolean {
  if (!a.usb || !b.usb) return !a.usb && !b.usb;
  if (a.usb.vendorId !== b.usb.vendorId || a.usb.productId !== b.usb.productId) return false;
  const sa = a.usb.serialNumber;
  const sb = b.usb.serialNumber;
  return sa === undefined || sb === undefined || sa === sb;
}

export interface PortTracker {
  /**
   * Feed the next full snapshot; returns the events since the previous one: detaches first, then
   * attaches, each sorted by path. A path whose USB identity (VID/PID/serial number) changed is a
   * detach of the old port followed by an attach of the new one.
   */
  update(snapshot: readonly DetectedPort[]): Array<Extract<DiscoveryEvent, { type: 'attached' | 'detached' }>>;
  /** The ports as of the last snapshot, sorted by path. */
  current(): DetectedPort[];
  /** Forget everything (the next snapshot reports every port as attached). */
  reset(): void;
}

/** A pure port tracker: successive snapshots in, attached/detached events out. */
export function createPortTracker(): PortTracker {
  let known = new Map<string, DetectedPort>();
  return {
    update(snapshot) {
      const next = new Map<string, DetectedPort>();
      for (const p of snapshot) if (!next.has(p.path)) next.set(p.path, p);
      const detached: DetectedPort[] = [];
      const attached: DetectedPort[] = [];
      for (const [path, old] of known) {
        const now = next.get(path);
        if (!now || !sameBoard(old, now)) detached.push(old);
      }
      for (const [path, now] of next) {
        const old = known.get(path);
        if (!old || !sameBoard(old, now)) attached.push(now);
      }
      known = next;
      return [
        ...detached.sort(byPath).map((port) => ({ type: 'detached' as const, port })),
        ...attached.sort(byPath).map((port) => ({ type: 'attached' as const, port })),
      ];
    },
    current: () => [...known.values()].sort(byPath),
    reset: () => {
      known = new Map();
    },
  };
}
