/**
 * Label files and printers with independent readers and real sockets: the PNG read by pngjs and its QR decoded by
 * jsqr (= the record's certificate fingerprint and URN); the PDF checked by qpdf and pdfinfo and rasterised by
 * pdftoppm, whose image decodes the same; ZPL sent to a real loopback TCP server (it receives exactly the ZPL),
 * refused, silent and slow printers (coded errors, bounded time); the CUPS client missing, a stopped queue read from
 * `lpstat -p` (a real CUPS queue: test/integration/labels-cups.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LABEL_SIZE, layoutLabel, type LabelLayout } from '../../core/labels/layout.js';
import { labelFromRecord, parseQrPayload } from '../../core/labels/payload.js';
import { renderRaster } from '../../core/labels/raster.js';
import { renderZpl } from '../../core/labels/zpl.js';
import { decodeQr, labelSourceFixture } from '../../testkit/labels.js';
import { must } from '../../testkit/pki/test-util.js';
import { encodePdf, encodePng } from './image.js';
import { stoppedReason } from './cups.js';
import { sendZpl } from './send.js';

let dir: string;
let layout: LabelLayout;
let expected: { certificateSha256: string; deviceUrn: string };
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-labels-'));
  const src = await labelSourceFixture({ serialNumber: 'SN-4711', chipId: 'deadbeef00112233' });
  const d = must(await labelFromRecord(src));
  layout = must(layoutLabel(d, DEFAULT_LABEL_SIZE));
  expected = {
    certificateSha256: src.certificate.sha256,
    deviceUrn: 'urn:line-station:device:LS-SIM-SE:deadbeef00112233',
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function decodePng(bytes: Uint8Array): string | null {
  const png = PNG.sync.read(Buffer.from(bytes));
  return decodeQr({ data: new Uint8ClampedArray(png.data), width: png.width, height: png.height });
}

describe('PNG preview', () => {
  it('pngjs reads it at printer resolution and jsqr decodes the record fingerprint and URN from it', () => {
    const bytes = encodePng(renderRaster(layout), 203);
    const png = PNG.sync.read(Buffer.from(bytes));
    expect([png.width, png.height]).toEqual([layout.widthDots, layout.heightDots]);
    const text = decodePng(bytes);
    expect(text).not.toBeNull();
    expect(must(parseQrPayload(text!))).toEqual(expected);
  });
});

describe('PDF preview', () => {
  it('qpdf and pdfinfo accept it; pdftoppm renders it and the QR decodes from that image', () => {
    const pdf = join(dir, 'label.pdf');
    writeFileSync(pdf, encodePdf(renderRaster(layout), 203, 'Line Station label SN-4711 (test)'));
    expect(execFileSync('qpdf', ['--check', pdf], { encoding: 'utf8' })).toContain(
      'No syntax or stream encoding errors',
    );
    const info = execFileSync('pdfinfo', [pdf], { encoding: 'utf8' });
    expect(info).toMatch(/Pages:\s+1/);
    expect(info).toMatch(/Title:\s+Line Station label SN-4711 \(test\)/);
    // The page is the raster at 203 dpi: 456 x 256 dots = 161.73 x 90.80 pt (57 x 32 mm to the nearest dot).
    expect(info).toMatch(/Page size:\s+161\.73 x 90\.8 pts/);
    execFileSync('pdftoppm', ['-png', '-r', '406', '-singlefile', pdf, join(dir, 'from-pdf')]);
    const text = decodePng(readFileSync(join(dir, 'from-pdf.png')));
    expect(text && must(parseQrPayload(text))).toEqual(expected);
  });
});

/** A loopback "printer": collects each connection's bytes; `mode` decides how it behaves. */
async function printer(
  mode: 'ok' | 'silent' | 'reset',
): Promise<{ server: Server; port: number; got: Promise<Buffer> }> {
  let resolveGot!: (b: Buffer) => void;
  const got = new Promise<Buffer>((r) => (resolveGot = r));
  const server = createServer((s: Socket) => {
    const chunks: Buffer[] = [];
    if (mode === 'reset') {
      s.resetAndDestroy();
      return;
    }
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      resolveGot(Buffer.concat(chunks));
      if (mode === 'ok') s.end();
      // 'silent': reads everything but never closes its side
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port, got };
}

describe('raw TCP 9100', () => {
  it('a loopback printer receives exactly the ZPL', async () => {
    const p = await printer('ok');
    const zpl = renderZpl(layout, { recordId: '6f1c2a4e-1b2c-4d3e-8f90-0a1b2c3d4e5f' });
    const r = await sendZpl({ kind: 'tcp', host: '127.0.0.1', port: p.port, timeoutMs: 3000 }, zpl);
    expect(must(r)).toEqual({ target: `tcp:127.0.0.1:${p.port}`, bytes: Buffer.byteLength(zpl) });
    expect((await p.got).toString('utf8')).toBe(zpl);
    p.server.close();
  });

  it('a printer that takes the data but keeps its side open: ok after the timeout, data complete', async () => {
    const p = await printer('silent');
    const t0 = Date.now();
    const r = await sendZpl({ kind: 'tcp', host: '127.0.0.1', port: p.port, timeoutMs: 400 }, '^XA^XZ\n');
    expect(r.ok).toBe(true);
    expect((await p.got).toString()).toBe('^XA^XZ\n');
    expect(Date.now() - t0).toBeLessThan(2000);
    p.server.close();
  });

  it('a refused connection is PRINTER_UNREACHABLE with the errno', async () => {
    const p = await printer('ok');
    const port = p.port;
    await new Promise((r) => p.server.close(r));
    const r = await sendZpl({ kind: 'tcp', host: '127.0.0.1', port, timeoutMs: 1000 }, '^XA^XZ');
    expect(r).toMatchObject({ ok: false, error: { code: 'PRINTER_UNREACHABLE', details: { errno: 'ECONNREFUSED' } } });
  });

  it('a connection reset is PRINTER_UNREACHABLE', async () => {
    const p = await printer('reset');
    const r = await sendZpl(
      { kind: 'tcp', host: '127.0.0.1', port: p.port, timeoutMs: 1000 },
      'x'.repeat(4 * 1024 * 1024),
    );
    expect(r).toMatchObject({ ok: false, error: { code: 'PRINTER_UNREACHABLE' } });
    p.server.close();
  });

  it('no answer to connect within the timeout: PRINTER_UNREACHABLE ETIMEDOUT, in bounded time', async () => {
    // 192.0.2.0/24 (TEST-NET-1) is never routed: the SYN goes unanswered (or the network says unreachable).
    const t0 = Date.now();
    const r = await sendZpl({ kind: 'tcp', host: '192.0.2.1', port: 9100, timeoutMs: 300 }, '^XA^XZ');
    expect(r).toMatchObject({ ok: false, error: { code: 'PRINTER_UNREACHABLE' } });
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('file and CUPS', () => {
  it('a file target is written; a directory target gets one file per label', async () => {
    const f = join(dir, 'out.zpl');
    expect(must(await sendZpl({ kind: 'file', path: f }, '^XA^XZ\n')).target).toBe(`file:${f}`);
    expect(readFileSync(f, 'utf8')).toBe('^XA^XZ\n');
    const spool = join(dir, 'spool');
    mkdirSync(spool);
    const o = { recordId: 'abc', now: () => new Date('2026-12-06T01:00:00Z') };
    must(await sendZpl({ kind: 'file', path: spool }, '^XA^XZ\n', o));
    expect(readdirSync(spool)).toEqual(['2026-12-06T01-00-00-000Z-abc.zpl']);
    const bad = await sendZpl({ kind: 'file', path: join(dir, 'no', 'such', 'dir', 'x.zpl') }, '^XA^XZ');
    expect(bad).toMatchObject({ ok: false, error: { code: 'PRINTER_FAILED', details: { errno: 'ENOENT' } } });
  });

  // A real cupsd and lp: test/integration/labels-cups.test.ts.
  it('the CUPS client missing: PRINTER_LP_MISSING', async () => {
    const r = await sendZpl({ kind: 'cups', queue: 'zebra', timeoutMs: 2000 }, '^XA^XZ', {
      lpCommand: join(dir, 'no-such-lp'),
      lpstatCommand: join(dir, 'no-such-lpstat'),
    });
    expect(r).toMatchObject({ ok: false, error: { code: 'PRINTER_LP_MISSING' } });
  });

  it('stoppedReason reads `lpstat -p` (C locale): the stopped queue and its reason, never another queue', () => {
    const out =
      'printer zebra2 disabled since Sun Dec  6 04:40:05 2026 -\n\tother\n' +
      'printer zebra disabled since Sun Dec  6 04:40:05 2026 -\n\tout of labels\n';
    expect(stoppedReason(out, 'zebra')).toBe('out of labels');
    expect(stoppedReason('printer zebra is idle.  enabled since Sun Dec  6 04:40:06 2026\n', 'zebra')).toBeNull();
    expect(stoppedReason('printer zebra now printing zebra-3.  enabled since Sun Dec  6 2026\n', 'zebra')).toBeNull();
    expect(stoppedReason(out, 'zebra3')).toBeNull();
  });
});
