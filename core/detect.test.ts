import { describe, expect, it } from 'vitest';
import { createPortTracker, mergePorts, usbPseudoPath } from './detect.js';
import type { DetectedPort, UsbDescriptor } from './ports.js';

const SE: UsbDescriptor = {
  vendorId: 0x1209,
  productId: 0x4c53,
  serialNumber: 'LS00A1B2C3',
  product: 'LS-SIM-SE',
  busNumber: 1,
  deviceAddress: 5,
};
const SE2: UsbDescriptor = {
  vendorId: 0x1209,
  productId: 0x4c53,
  serialNumber: 'LS00FFFF01',
  product: 'LS-SIM-SE',
  busNumber: 1,
  deviceAddress: 9,
};
const KBD: UsbDescriptor = {
  vendorId: 0x046d,
  productId: 0xc31c,
  product: 'USB Keyboard',
  busNumber: 1,
  deviceAddress: 3,
};
const serial = (path: string, usb?: UsbDescriptor): DetectedPort => ({
  path,
  source: 'serial',
  ...(usb ? { usb } : {}),
});

describe('mergePorts', () => {
  it('completes serial ports from the USB descriptor with the same VID/PID/serial', () => {
    const ports = mergePorts(
      [
        serial('/dev/ttyACM1', { vendorId: 0x1209, productId: 0x4c53, serialNumber: 'LS00FFFF01' }),
        serial('/dev/ttyACM0', {
          vendorId: 0x1209,
          productId: 0x4c53,
          serialNumber: 'LS00A1B2C3',
          manufacturer: 'Line Station',
        }),
      ],
      [KBD, SE, SE2],
      [],
    );
    expect(ports).toEqual([
      { path: '/dev/ttyACM0', source: 'serial', usb: { ...SE, manufacturer: 'Line Station' } },
      { path: '/dev/ttyACM1', source: 'serial', usb: SE2 },
    ]);
  });

  it('joins by VID/PID alone only when unambiguous', () => {
    const noSerial = { vendorId: 0x1209, productId: 0x4c53 };
    expect(mergePorts([serial('/dev/ttyACM0', noSerial)], [SE], [])[0]!.usb).toEqual(SE);
    // two candidate descriptors: keep what the serial enumeration said, do not guess
    expect(mergePorts([serial('/dev/ttyACM0', noSerial)], [SE, SE2], [])[0]!.usb).toEqual(noSerial);
    // serial numbers that disagree never join
    const other = { ...noSerial, serialNumber: 'LS00000000' };
    expect(mergePorts([serial('/dev/ttyACM0', other)], [SE], [])[0]!.usb).toEqual(other);
  });

  it('adds configured ports without duplicating enumerated ones, sorted by path', () => {
    const ports = mergePorts([serial('/dev/ttyACM0', SE)], [SE], ['/tmp/b/board-1', '/dev/ttyACM0', '/tmp/b/board-0']);
    expect(ports.map((p) => [p.path, p.source])).toEqual([
      ['/dev/ttyACM0', 'serial'],
      ['/tmp/b/board-0', 'configured'],
      ['/tmp/b/board-1', 'configured'],
    ]);
  });

  it('drops USB devices without a serial port unless asked to include them', () => {
    expect(mergePorts([], [KBD, SE], [])).toEqual([]);
    const ports = mergePorts([], [KBD, SE], [], { includeUsbOnly: (d) => d.vendorId === 0x1209 });
    expect(ports).toEqual([{ path: 'usb:1-5', source: 'usb', usb: SE }]);
    expect(usbPseudoPath({ vendorId: 0x1209, productId: 0x4c53, serialNumber: 'X' })).toBe('usb:1209:4c53:X');
  });
});

describe('port tracker', () => {
  it('emits attach for new paths and detach for vanished ones, detaches first', () => {
    const t = createPortTracker();
    expect(t.update([serial('/dev/ttyACM1', SE2), serial('/dev/ttyACM0', SE)])).toEqual([
      { type: 'attached', port: serial('/dev/ttyACM0', SE) },
      { type: 'attached', port: serial('/dev/ttyACM1', SE2) },
    ]);
    expect(t.update([serial('/dev/ttyACM0', SE), serial('/dev/ttyACM1', SE2)])).toEqual([]);
    const cfg: DetectedPort = { path: '/tmp/b/board-0', source: 'configured' };
    expect(t.update([serial('/dev/ttyACM1', SE2), cfg])).toEqual([
      { type: 'detached', port: serial('/dev/ttyACM0', SE) },
      { type: 'attached', port: cfg },
    ]);
    expect(t.current().map((p) => p.path)).toEqual(['/dev/ttyACM1', '/tmp/b/board-0']);
    expect(t.update([])).toEqual([
      { type: 'detached', port: serial('/dev/ttyACM1', SE2) },
      { type: 'detached', port: cfg },
    ]);
  });

  it('same path, different USB serial number = detach + attach (board swapped between polls)', () => {
    const t = createPortTracker();
    t.update([serial('/dev/ttyACM0', SE)]);
    const swapped = { ...SE2 };
    expect(t.update([serial('/dev/ttyACM0', swapped)])).toEqual([
      { type: 'detached', port: serial('/dev/ttyACM0', SE) },
      { type: 'attached', port: serial('/dev/ttyACM0', swapped) },
    ]);
    // different VID/PID on the same path, too
    expect(t.update([serial('/dev/ttyACM0', KBD)]).map((e) => e.type)).toEqual(['detached', 'attached']);
  });

  it('a serial number that only becomes known later is an update, not a new board', () => {
    const t = createPortTracker();
    const bare = { vendorId: SE.vendorId, productId: SE.productId };
    t.update([serial('/dev/ttyACM0', bare)]);
    expect(t.update([serial('/dev/ttyACM0', SE)])).toEqual([]);
    expect(t.current()[0]!.usb).toEqual(SE);
    t.reset();
    expect(t.update([serial('/dev/ttyACM0', SE)]).map((e) => e.type)).toEqual(['attached']);
  });
});
