import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Logger, LogLevel, UsbDescriptor } from '../core/ports.js';
import { ReplayUsbBackend } from '../test/fixtures/usb/replay.js';
import { createUsbWatcher, type UsbProblem } from './usb.js';

const tmp = mkdtempSync(join(tmpdir(), 'ls-usb-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// A sysfs root that has bus/usb (so the adapter does not declare USB unavailable) but no device dirs.
const fakeSys = join(tmp, 'sys');
mkdirSync(join(fakeSys, 'bus/usb/devices'), { recursive: true });

function memLogger(lines: Array<{ level: LogLevel; msg: string }>): Logger {
  const l: Logger = { log: (level, msg) => void lines.push({ level, msg }), child: () => l };
  return l;
}
const flush = () => new Promise((r) => setTimeout(r, 20));
const label = (d: UsbDescriptor) =>
  `${d.vendorId.toString(16).padStart(4, '0')}:${d.productId.toString(16).padStart(4, '0')}`;

describe('USB adapter over recorded descriptors', () => {
  it('lists devices with their string descriptors (read by opening the device, then closing it)', async () => {
    const backend = new ReplayUsbBackend(['root-hub', 'keyboard', 'ls-sim-se', 'esp32-s3']);
    const w = await createUsbWatcher({ backend, sysfs: fakeSys });
    expect(w.available).toBe(true);
    const list = w.list();
    expect(list.map(label)).toEqual(['1d6b:0002', '046d:c31c', '1209:4c53', '303a:1001']);
    expect(list[2]).toEqual({
      vendorId: 0x1209,
      productId: 0x4c53,
      manufacturer: 'Line Station',
      product: 'LS-SIM-SE',
      serialNumber: 'LS00A1B2C3',
      busNumber: 1,
      deviceAddress: 5,
    });
    expect(list[1]!.serialNumber).toBeUndefined(); // iSerialNumber 0
    expect(list[3]!.serialNumber).toBe('F4:12:FA:1B:2C:3D');
    const se = backend.get('ls-sim-se');
    expect([se.opened, se.closed]).toEqual([1, 1]);
    w.list();
    expect(se.opened).toBe(1); // cached
    w.close();
    expect(backend.listenerCount('attach')).toBe(0);
  });

  it('prefers sysfs strings (no device access needed) when present', async () => {
    const sys = join(tmp, 'sys2');
    mkdirSync(join(sys, 'bus/usb/devices/1-3'), { recursive: true });
    writeFileSync(join(sys, 'bus/usb/devices/1-3/serial'), 'LS00A1B2C3\n');
    writeFileSync(join(sys, 'bus/usb/devices/1-3/product'), 'LS-SIM-SE\n');
    const backend = new ReplayUsbBackend(['ls-sim-se']);
    const w = await createUsbWatcher({ backend, sysfs: sys });
    expect(w.list()[0]).toMatchObject({ serialNumber: 'LS00A1B2C3', product: 'LS-SIM-SE' });
    expect(backend.get('ls-sim-se').opened).toBe(0);
    w.close();
  });

  it('LIBUSB_ERROR_ACCESS becomes an ACCESS_DENIED problem with udev guidance, not a crash', async () => {
    const backend = new ReplayUsbBackend(['ftdi-cable', 'ls-sim-se']);
    const lines: Array<{ level: LogLevel; msg: string }> = [];
    const w = await createUsbWatcher({ backend, sysfs: fakeSys, logger: memLogger(lines) });
    const list = w.list();
    expect(list.map(label)).toEqual(['0403:6001', '1209:4c53']);
    expect(list[0]!.serialNumber).toBeUndefined();
    const problems: UsbProblem[] = [];
    w.onProblem((p) => problems.push(p)); // outstanding problems are replayed
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ code: 'ACCESS_DENIED', path: 'usb:1-8' });
    expect(problems[0]!.message).toContain('70-line-station.rules');
    expect(lines.some((l) => l.level === 'warn' && l.msg.includes('0403:6001'))).toBe(true);
    w.list();
    expect(problems).toHaveLength(1); // reported once
    w.close();
  });

  it('replays the recorded hotplug sequence as attach/detach callbacks with descriptors', async () => {
    const backend = new ReplayUsbBackend(['root-hub']);
    const w = await createUsbWatcher({ backend, sysfs: fakeSys });
    const events: string[] = [];
    w.onAttach((d) => events.push(`+${label(d)}:${d.serialNumber ?? ''}`));
    const unsub = w.onDetach((d) => events.push(`-${label(d)}:${d.serialNumber ?? ''}`));
    backend.attach('ls-sim-se');
    await flush();
    backend.attach('keyboard');
    await flush();
    backend.detach('ls-sim-se');
    unsub();
    backend.detach('keyboard');
    await flush();
    expect(events).toEqual(['+1209:4c53:LS00A1B2C3', '+046d:c31c:', '-1209:4c53:LS00A1B2C3']);
    expect(w.list().map(label)).toEqual(['1d6b:0002']);
    w.close();
  });

  it('degrades to "USB unavailable" when hotplug registration or enumeration fails', async () => {
    const noHotplug = new ReplayUsbBackend(['ls-sim-se']);
    noHotplug.on = () => {
      throw new Error('LIBUSB_ERROR_NOT_SUPPORTED');
    };
    const w = await createUsbWatcher({ backend: noHotplug, sysfs: fakeSys });
    expect(w.available).toBe(true);
    expect(w.list().map(label)).toEqual(['1209:4c53']);

    const broken = new ReplayUsbBackend([]);
    broken.getDeviceList = () => {
      throw new Error('LIBUSB_ERROR_OTHER');
    };
    const lines: Array<{ level: LogLevel; msg: string }> = [];
    const u = await createUsbWatcher({ backend: broken, sysfs: fakeSys, logger: memLogger(lines) });
    expect(u.available).toBe(false);
    expect(u.list()).toEqual([]);
    expect(lines[0]).toMatchObject({ level: 'info' });
  });

  it('on this machine (no /sys/bus/usb) the real adapter reports USB unavailable as info', async () => {
    const lines: Array<{ level: LogLevel; msg: string }> = [];
    const w = await createUsbWatcher({ logger: memLogger(lines) });
    if (existsSync('/sys/bus/usb')) {
      expect(w.available).toBe(true);
      expect(Array.isArray(w.list())).toBe(true);
    } else {
      expect(w.available).toBe(false);
      expect(w.reason).toContain('/sys/bus/usb');
      expect(w.list()).toEqual([]);
      expect(lines).toEqual([{ level: 'info', msg: w.reason }]);
    }
    w.close();
    // an explicit sysfs root without bus/usb is treated the same
    const v = await createUsbWatcher({ sysfs: join(tmp, 'nowhere') });
    expect(v.available).toBe(false);
  });
});
