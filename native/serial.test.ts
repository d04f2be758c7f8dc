import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ByteLink } from '../core/ports.js';
import { connectBoard } from '../core/protocol/client.js';
import { FrameDecoder } from '../core/protocol/framing.js';
import { decodeRequest, encodeResponse } from '../core/protocol/messages.js';
import { listSerialPorts } from './discovery.js';
import { serialOpener, toDetectedPort } from './serial.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A socat pty pair: returns the two link paths and the process. */
async function ptyPair(): Promise<{ a: string; b: string; proc: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), 'ls-serial-'));
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: 'ignore',
  });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => existsSync(a) && existsSync(b));
  return { a, b, proc };
}

async function open(path: string): Promise<ByteLink> {
  const r = await serialOpener({ baudRate: 115200 }).open(path);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  cleanups.push(() => r.value.close());
  return r.value;
}

describe('serialOpener over a socat pty pair', () => {
  it('moves bytes both ways unchanged, including 0x00 and 0xFF', async () => {
    const { a, b } = await ptyPair();
    const la = await open(a);
    const lb = await open(b);
    expect(la.path).toBe(a);
    const gotB: number[] = [];
    const gotA: number[] = [];
    lb.onData((c) => gotB.push(...c));
    la.onData((c) => gotA.push(...c));
    const payload = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);
    await la.write(payload);
    await lb.write(Uint8Array.of(0, 0xff, 0x0a, 0x0d, 0x11, 0x13));
    await waitFor(() => gotB.length >= payload.length && gotA.length >= 6);
    expect(Uint8Array.from(gotB)).toEqual(payload);
    expect(gotA).toEqual([0, 0xff, 0x0a, 0x0d, 0x11, 0x13]);
  });

  it('more than the tty buffers hold: writes wait for "writable" (EAGAIN), reads drain full buffers, bytes stay in order', async () => {
    const { a, b } = await ptyPair();
    const la = await open(a);
    const lb = await open(b);
    const got: Uint8Array[] = [];
    let n = 0;
    lb.onData((c) => {
      got.push(c.slice());
      n += c.length;
    });
    // 1 MiB in one write and three more queued behind it: far beyond the pty's buffers, so the direct write hits
    // EAGAIN and must resume where it stopped; the reader sees full 64 KiB reads and the partial tail.
    const big = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 11)) & 0xff);
    const tails = [1, 2, 3].map((k) => new Uint8Array(1000 + k).fill(k));
    await Promise.all([la.write(big), ...tails.map((t) => la.write(t))]);
    const total = big.length + tails.reduce((s, t) => s + t.length, 0);
    await waitFor(() => n >= total, 20_000);
    const all = Buffer.concat(got);
    expect(all.length).toBe(total);
    expect(all.subarray(0, big.length).equals(Buffer.from(big))).toBe(true);
    expect(all.subarray(big.length).equals(Buffer.concat(tails))).toBe(true);
    expect(got.length).toBeGreaterThan(1);
  });

  it('fires onClose (with an error) on both ends when socat dies, and later writes fail', async () => {
    const { a, b, proc } = await ptyPair();
    const la = await open(a);
    const lb = await open(b);
    const closes: (string | undefined)[] = [];
    la.onClose((e) => closes.push(`a:${e ? 'error' : 'clean'}`));
    lb.onClose((e) => closes.push(`b:${e ? 'error' : 'clean'}`));
    proc.kill('SIGTERM');
    await waitFor(() => closes.length === 2);
    expect(closes.sort()).toEqual(['a:error', 'b:error']);
    await expect(la.write(Uint8Array.of(1))).rejects.toThrow();
  });

  it('closing the ends one after the other is harmless (regression: no crash in the read loop)', async () => {
    const { a, b } = await ptyPair();
    const la = await open(a);
    const lb = await open(b);
    await la.write(new Uint8Array(100).fill(0));
    await lb.close();
    await new Promise((r) => setTimeout(r, 50));
    await la.close();
    await expect(la.write(Uint8Array.of(1))).rejects.toThrow();
  });

  it('close() fires onClose once, without an error', async () => {
    const { a } = await ptyPair();
    const la = await open(a);
    const closes: (Error | undefined)[] = [];
    la.onClose((e) => closes.push(e));
    await la.close();
    await la.close();
    expect(closes).toEqual([undefined]);
  });

  it('a station client speaks the protocol across the pty (tiny board on the other end)', async () => {
    const { a, b } = await ptyPair();
    const station = await open(a);
    const boardEnd = await open(b);
    const dec = new FrameDecoder();
    boardEnd.onData((chunk) => {
      for (const f of dec.push(chunk)) {
        if (!f.ok) continue;
        const r = decodeRequest(f);
        if (!r.ok) continue;
        const { op, requestId } = r.value;
        if (op === 'hello')
          void boardEnd.write(encodeResponse(op, requestId, { version: 1, maxFrame: 4096, board: 'pty' }));
        if (op === 'installCert')
          void boardEnd.write(encodeResponse(op, requestId, { certSha256: new Uint8Array(32).fill(0xab) }));
      }
    });
    const c = await connectBoard(station, { timeoutMs: 2000 });
    if (!c.ok) throw new Error(c.error.message);
    expect(c.value.board).toBe('pty');
    const r = await c.value.installCertificate([new Uint8Array(1500).fill(0), new Uint8Array(1500).fill(0xff)]);
    expect(r).toEqual({ ok: true, value: { certificateSha256: 'ab'.repeat(32) } });
    const st = c.value.stats();
    expect(st.bytesSent).toBeGreaterThan(3000);
    expect(st.requests).toBe(2);
  });
});

describe('serialOpener errors and enumeration', () => {
  it('reports LINK_OPEN_FAILED for a missing port', async () => {
    const r = await serialOpener().open('/dev/does-not-exist-ls');
    expect(r).toMatchObject({
      ok: false,
      error: { code: 'LINK_OPEN_FAILED', details: { path: '/dev/does-not-exist-ls' } },
    });
  });

  it('maps PortInfo hex ids to numbers', () => {
    expect(
      toDetectedPort({
        path: '/dev/ttyACM0',
        vendorId: '2fe3',
        productId: '0100',
        serialNumber: 'X1',
        manufacturer: 'Z',
      }),
    ).toEqual({
      path: '/dev/ttyACM0',
      source: 'serial',
      usb: { vendorId: 0x2fe3, productId: 0x0100, serialNumber: 'X1', manufacturer: 'Z' },
    });
    expect(toDetectedPort({ path: '/dev/ttyS0' })).toEqual({ path: '/dev/ttyS0', source: 'serial' });
    expect(toDetectedPort({ path: '/dev/ttyS1', vendorId: 'zzzz', productId: '1' })).toEqual({
      path: '/dev/ttyS1',
      source: 'serial',
    });
  });

  it('lists serial ports without throwing', async () => {
    const ports = await listSerialPorts();
    expect(Array.isArray(ports)).toBe(true);
    for (const p of ports) expect(p.source).toBe('serial');
  });
});
