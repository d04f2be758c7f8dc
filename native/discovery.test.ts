import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { matchProfile } from '../core/provisioning/profiles.js';
import type { DetectedPort, DiscoveryEvent } from '../core/ports.js';
import { hotplugRecording, ReplayUsbBackend } from '../test/fixtures/usb/replay.js';
import { createDiscovery, expandConfiguredPorts, listSerialPorts } from './discovery.js';
import { toDetectedPort } from './serial.js';
import { loadProfilesFromDir } from './profiles-fs.js';
import { createUsbWatcher } from './usb.js';

const tmp = mkdtempSync(join(tmpdir(), 'ls-disc-'));
const fakeSys = join(tmp, 'sys');
mkdirSync(join(fakeSys, 'bus/usb/devices'), { recursive: true });
const children: ChildProcess[] = [];
const stops: Array<() => void> = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A pty pair like the simulator makes: `link` for the station, `link.sim` for the board side. */
function socatPair(link: string): ChildProcess {
  const c = spawn('socat', [`pty,raw,echo=0,link=${link}`, `pty,raw,echo=0,link=${link}.sim`], { stdio: 'ignore' });
  children.push(c);
  return c;
}
const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())));

/** Collects discovery events; `next(pred)` waits (bounded) for the first matching event not yet consumed. */
function collector() {
  const events: DiscoveryEvent[] = [];
  let wake: (() => void) | null = null;
  const cb = (e: DiscoveryEvent) => {
    events.push(e);
    wake?.();
  };
  let cursor = 0;
  async function next(pred: (e: DiscoveryEvent) => boolean, timeoutMs = 5000): Promise<DiscoveryEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (; cursor < events.length; cursor++) {
        const e = events[cursor]!;
        if (pred(e)) {
          cursor++;
          return e;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; events so far: ${JSON.stringify(events)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  return { events, cb, next };
}
const is = (type: DiscoveryEvent['type'], path: string) => (e: DiscoveryEvent) =>
  e.type === type && (e.type === 'problem' ? e.path === path : e.port.path === path);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('createDiscovery with real pty links (socat)', () => {
  it('a configured link that appears is attached, one that disappears is detached; only char devices count', async () => {
    const dir = join(tmp, 'pty1');
    mkdirSync(dir);
    writeFileSync(join(dir, 'board-9'), 'not a device'); // regular file: ignored
    symlinkSync(join(dir, 'gone'), join(dir, 'board-8')); // dangling link: ignored
    const d = createDiscovery({
      extraPorts: [`${dir}/board-*`, join(dir, 'fixed')],
      pollMs: 40,
      listSerial: async () => [],
    });
    const col = collector();
    stops.push(d.watch(col.cb));
    await sleep(120);
    expect(col.events).toEqual([]);

    const a = socatPair(join(dir, 'board-0'));
    const att = await col.next(is('attached', join(dir, 'board-0')));
    expect(att).toEqual({ type: 'attached', port: { path: join(dir, 'board-0'), source: 'configured' } });
    for (let i = 0; i < 100 && !existsSync(join(dir, 'board-0.sim')); i++) await sleep(20);
    expect(existsSync(join(dir, 'board-0.sim'))).toBe(true);
    await sleep(100); // several polls with the .sim link present
    expect((await d.list()).map((p) => p.path)).toEqual([join(dir, 'board-0')]);

    const b = socatPair(join(dir, 'fixed'));
    await col.next(is('attached', join(dir, 'fixed')));

    a.kill('SIGTERM');
    await exited(a);
    await col.next(is('detached', join(dir, 'board-0')));
    b.kill('SIGTERM');
    await exited(b);
    await col.next(is('detached', join(dir, 'fixed')));
    await sleep(100);
    // nothing about the .sim side, the regular file or the dangling link
    expect(col.events.map((e) => `${e.type} ${e.type === 'problem' ? e.path : e.port.path}`)).toEqual([
      `attached ${dir}/board-0`,
      `attached ${dir}/fixed`,
      `detached ${dir}/board-0`,
      `detached ${dir}/fixed`,
    ]);
  });

  it('expands globs in the last segment only; a missing directory is simply empty', async () => {
    const dir = join(tmp, 'pty2');
    mkdirSync(dir);
    const c = socatPair(join(dir, 'board-1'));
    const deadline = Date.now() + 5000;
    // socat creates the two links one after the other
    while (!(existsSync(join(dir, 'board-1')) && existsSync(join(dir, 'board-1.sim'))) && Date.now() < deadline) {
      await sleep(20);
    }
    expect((await expandConfiguredPorts([`${dir}/board-?`, `${dir}/board-[0-9]`])).paths).toEqual([
      join(dir, 'board-1'),
    ]);
    expect((await expandConfiguredPorts([`${dir}/board-1.sim`])).paths).toEqual([join(dir, 'board-1.sim')]); // literal counts
    expect(await expandConfiguredPorts([join(tmp, 'nope', 'board-*')])).toEqual({ paths: [], problems: [] });
    c.kill('SIGTERM');
    await exited(c);
  });
});

describe('createDiscovery over serial enumeration', () => {
  it('enumeration failure is a problem event, not a crash and not a detach; it recovers', async () => {
    const port: DetectedPort = { path: '/dev/ttyACM0', source: 'serial', usb: { vendorId: 0x1209, productId: 0x4c53 } };
    let fail = false;
    let calls = 0;
    const d = createDiscovery({
      pollMs: 30,
      listSerial: async () => {
        calls++;
        if (fail) throw new Error('udev went away');
        return [port, { path: '/dev/ttyS0', source: 'serial' }];
      },
    });
    const col = collector();
    let thrown = 0;
    stops.push(
      d.watch((e) => {
        col.cb(e);
        thrown++;
        throw new Error('a buggy subscriber');
      }),
    );
    await col.next(is('attached', '/dev/ttyACM0'));
    fail = true;
    const p = await col.next(is('problem', 'serial'));
    expect(p).toMatchObject({ code: 'ENUMERATION_FAILED' });
    const before = calls;
    while (calls < before + 3) await sleep(20);
    fail = false;
    await sleep(100);
    // reported once, ttyS0 (no USB) never reported, no detach while enumeration failed
    expect(col.events.map((e) => e.type)).toEqual(['attached', 'problem']);
    expect(thrown).toBe(2);
  });

  it('maps serialport PortInfo hex strings to numbers; the default lister works here', async () => {
    expect(toDetectedPort({ path: '/dev/ttyACM0', vendorId: '1209', productId: '4C53', serialNumber: 'LS1' })).toEqual({
      path: '/dev/ttyACM0',
      source: 'serial',
      usb: { vendorId: 0x1209, productId: 0x4c53, serialNumber: 'LS1' },
    });
    expect(toDetectedPort({ path: '/dev/ttyS0', vendorId: 'zz', productId: '1' })).toEqual({
      path: '/dev/ttyS0',
      source: 'serial',
    });
    const listed = await listSerialPorts();
    expect(Array.isArray(listed)).toBe(true);
    for (const p of listed) expect(p.source).toBe('serial');
    const ports = await createDiscovery().list();
    expect(ports.every((p) => p.usb !== undefined)).toBe(true); // legacy ttyS* without USB are left out
  });
});

describe('recorded USB hotplug replayed through discovery', () => {
  it('USB events trigger an immediate re-poll; events, descriptors and profile matches are as recorded', async () => {
    const rec = hotplugRecording();
    const backend = new ReplayUsbBackend(rec.initial);
    const usb = await createUsbWatcher({ backend, sysfs: fakeSys });
    // a long poll interval: after the first poll only USB events can cause a re-poll
    const d = createDiscovery({ usb, listSerial: () => backend.listSerial(), pollMs: 60_000, settleMs: 0 });
    const col = collector();
    stops.push(d.watch(col.cb));
    await col.next(is('attached', '/dev/ttyACM2'));
    for (const step of rec.steps) {
      const n = col.events.length;
      if (step.event === 'attach') backend.attach(step.device);
      else backend.detach(step.device);
      const deadline = Date.now() + 3000;
      while (col.events.length === n && Date.now() < deadline) await sleep(5);
      await sleep(20);
    }
    usb.close();
    const summary = col.events.map((e) =>
      e.type === 'problem'
        ? `problem ${e.code} ${e.path}`
        : `${e.type} ${e.port.path} ${e.port.usb?.serialNumber ?? ''}`.trim(),
    );
    expect(summary).toEqual([
      'attached /dev/ttyACM2 F4:12:FA:1B:2C:3D',
      'attached /dev/ttyACM0 LS00A1B2C3',
      'attached /dev/ttyACM1 LS00D4E5F6',
      'detached /dev/ttyACM0 LS00A1B2C3',
      'problem ACCESS_DENIED usb:1-8',
      'attached /dev/ttyUSB0 A50285BI',
      'detached /dev/ttyACM2 F4:12:FA:1B:2C:3D',
      'detached /dev/ttyACM1 LS00D4E5F6',
    ]);
    // serial ports are completed from the USB descriptors (product, bus, address)
    const esp = col.events[0]!;
    expect(esp.type === 'attached' && esp.port.usb).toEqual({
      vendorId: 0x303a,
      productId: 0x1001,
      serialNumber: 'F4:12:FA:1B:2C:3D',
      manufacturer: 'Espressif',
      product: 'USB JTAG/serial debug unit',
      busNumber: 1,
      deviceAddress: 7,
    });
    const profiles = loadProfilesFromDir(new URL('../resources/boards/', import.meta.url).pathname);
    if (!profiles.ok) throw new Error(profiles.error.message);
    const matched = col.events.flatMap((e) =>
      e.type === 'attached' ? [[e.port.path, matchProfile(profiles.value, { port: e.port }).profile?.id ?? null]] : [],
    );
    expect(matched).toEqual([
      ['/dev/ttyACM2', 'esp32-s3-devkitc'],
      ['/dev/ttyACM0', 'ls-sim-se'],
      ['/dev/ttyACM1', 'ls-sim-basic'],
      ['/dev/ttyUSB0', null],
    ]);
  });
});

describe('change events instead of polling (docs/detection.md "Change events")', () => {
  // An hour between polls: whatever is seen within a test's few seconds was seen through an event.
  const NEVER = 3_600_000;

  it('a socat pty appearing in a watched glob directory is attached, and detached when it goes (also after SIGKILL)', async () => {
    const dir = join(tmp, 'ev1');
    mkdirSync(dir);
    const d = createDiscovery({ extraPorts: [`${dir}/board-*`], pollMs: NEVER });
    const col = collector();
    stops.push(d.watch(col.cb));
    await sleep(200);
    const a = socatPair(join(dir, 'board-0'));
    await col.next(is('attached', join(dir, 'board-0')));
    a.kill('SIGTERM'); // socat removes its links
    await exited(a);
    await col.next(is('detached', join(dir, 'board-0')));
    // SIGKILL leaves the link dangling: the pty's removal in /dev/pts is the event
    const b = socatPair(join(dir, 'board-1'));
    await col.next(is('attached', join(dir, 'board-1')));
    b.kill('SIGKILL');
    await exited(b);
    await col.next(is('detached', join(dir, 'board-1')));
    expect(existsSync(join(dir, 'board-1'))).toBe(false); // the dangling link is not a port
  });

  it('a glob directory that does not exist yet is watched through its parent until it appears', async () => {
    const parent = join(tmp, 'ev2');
    mkdirSync(parent);
    const dir = join(parent, 'later', 'ports');
    const d = createDiscovery({ extraPorts: [`${dir}/board-*`], pollMs: NEVER });
    const col = collector();
    stops.push(d.watch(col.cb));
    await sleep(200);
    mkdirSync(join(parent, 'later'));
    await sleep(100);
    mkdirSync(dir);
    const a = socatPair(join(dir, 'board-0'));
    await col.next(is('attached', join(dir, 'board-0')));
    a.kill('SIGTERM');
    await exited(a);
    await col.next(is('detached', join(dir, 'board-0')));
  });

  it('udev events (a stand-in udevadm printing `udevadm monitor --udev` lines) make it enumerate again; none: it does not', async () => {
    const fake = join(tmp, 'udevadm');
    const fifo = join(tmp, 'udev-events');
    spawnSync('mkfifo', [fifo]);
    // Prints monitor's header, then every line written to the FIFO, like udevadm monitor does for each event.
    writeFileSync(
      fake,
      `#!/bin/sh\necho "monitor will print the received events for:"\necho "UDEV - the event which udev sends out after rule processing"\necho\nexec cat "${fifo}"\n`,
      { mode: 0o755 },
    );
    const control = join(tmp, 'udev-control');
    writeFileSync(control, '');
    const port: DetectedPort = { path: '/dev/ttyACM7', source: 'serial', usb: { vendorId: 0x1209, productId: 0x4c53 } };
    let ports: DetectedPort[] = [];
    let calls = 0;
    const d = createDiscovery({
      pollMs: NEVER,
      settleMs: 0,
      listSerial: async () => {
        calls++;
        return ports;
      },
      serialEvents: { udevControl: control, udevadm: fake },
    });
    const col = collector();
    stops.push(d.watch(col.cb));
    const events = spawn('sh', ['-c', `cat > "${fifo}"`], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(events);
    await sleep(300);
    expect(calls).toBe(1); // the first look only: no polling
    ports = [port];
    await sleep(200);
    expect(calls).toBe(1); // nothing told it
    events.stdin.write('KERNEL[100.000001] add      /devices/pci0000:00/usb1/1-1/1-1:1.0/tty/ttyACM7 (tty)\n');
    await sleep(200);
    expect(calls).toBe(1); // kernel lines are not udev's (rules not applied yet)
    events.stdin.write('UDEV  [100.000002] add      /devices/pci0000:00/usb1/1-1/1-1:1.0/tty/ttyACM7 (tty)\n');
    await col.next(is('attached', '/dev/ttyACM7'));
    ports = [];
    events.stdin.write('UDEV  [101.000000] remove   /devices/pci0000:00/usb1/1-1/1-1:1.0/tty/ttyACM7 (tty)\n');
    await col.next(is('detached', '/dev/ttyACM7'));
    expect(calls).toBe(3);
    events.stdin.end();
  });

  it('udevadm monitor exiting falls back to polling', async () => {
    const fake = join(tmp, 'udevadm-dies');
    writeFileSync(fake, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const control = join(tmp, 'udev-control');
    writeFileSync(control, '');
    let calls = 0;
    const d = createDiscovery({
      pollMs: 30,
      listSerial: async () => {
        calls++;
        return [];
      },
      serialEvents: { udevControl: control, udevadm: fake },
    });
    stops.push(d.watch(() => {}));
    const deadline = Date.now() + 5000;
    while (calls < 4 && Date.now() < deadline) await sleep(20);
    expect(calls).toBeGreaterThanOrEqual(4);
  });
});
