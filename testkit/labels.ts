/**
 * Label test support: a label source (the record fields a label is made from) with a real device certificate
 * issued by a test PKI (core/pki, SAN URI from the profile template), a bitmap -> RGBA converter for jsqr, the QR
 * of a ZPL graphic, a loopback raw TCP printer, and what a record's certificate says according to openssl.
 * Not used in production.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import jsQRModule from 'jsqr';
import { issueDeviceCertificate } from '../core/pki/device-cert.js';
import { toPem } from '../core/pki/pem.js';
import { sha256Hex } from '../core/bytes.js';
import type { LabelSource } from '../core/labels/payload.js';
import { zplGraphics } from '../core/labels/zpl.js';
import { createTestSigner } from './pki/test-signer.js';
import { createTestPki, fixedClock, must } from './pki/test-util.js';

/** A label source with a freshly issued device certificate (sanUri template `urn:line-station:device:{model}:{chipId}` unless given). */
export async function labelSourceFixture(
  o: {
    serialNumber?: string;
    chipId?: string;
    model?: string;
    workOrder?: string;
    sanUri?: string | null;
  } = {},
): Promise<LabelSource & { der: Uint8Array }> {
  const clock = fixedClock('2026-12-05T10:00:00.000Z');
  const pki = await createTestPki(clock);
  const device = await createTestSigner('P-256');
  const vars = {
    serialNumber: o.serialNumber ?? 'SIM-000123',
    chipId: o.chipId ?? '0123456789abcdef',
    model: o.model ?? 'LS-SIM-SE',
    workOrder: o.workOrder ?? 'WO-DEMO-1',
  };
  const sanUri = o.sanUri === undefined ? 'urn:line-station:device:{model}:{chipId}' : o.sanUri;
  const issued = must(
    await issueDeviceCertificate({
      ca: { signer: pki.ca.signer, certificate: pki.ca.der },
      publicKeySpki: device.publicKeySpki,
      profile: { subject: { commonName: '{serialNumber}' }, ...(sanUri ? { sanUri } : {}), validityDays: 365 },
      vars,
      clock,
    }),
  );
  return {
    recordId: '6f1c2a4e-1b2c-4d3e-8f90-0a1b2c3d4e5f',
    workOrder: vars.workOrder,
    completedAt: '2026-12-05T10:00:03.000Z',
    board: { chipId: vars.chipId, serialNumber: vars.serialNumber },
    certificate: { sha256: await sha256Hex(issued.der), pem: toPem(issued.der, 'CERTIFICATE') },
    der: issued.der,
  };
}

/** A 1-bit image (1 = ink) as RGBA pixels, as jsqr reads them, with a white border of `border` pixels. */
export function inkToRgba(
  width: number,
  height: number,
  isInk: (x: number, y: number) => boolean,
  border = 0,
): { data: Uint8ClampedArray; width: number; height: number } {
  const W = width + 2 * border;
  const H = height + 2 * border;
  const data = new Uint8ClampedArray(W * H * 4).fill(255);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (isInk(x, y)) {
        const i = ((y + border) * W + x + border) * 4;
        data[i] = data[i + 1] = data[i + 2] = 0;
      }
  return { data, width: W, height: H };
}

type JsQr = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
/** jsqr is CommonJS with an ES `default` in its types; under NodeNext the default import is the module object. */
const jsQR: JsQr = (jsQRModule as unknown as { default?: JsQr }).default ?? (jsQRModule as unknown as JsQr);

/** Decode the QR code in RGBA pixels with jsqr (an independent decoder); null when none is found. */
export function decodeQr(img: { data: Uint8ClampedArray; width: number; height: number }): string | null {
  return jsQR(img.data, img.width, img.height)?.data ?? null;
}

/** A raw TCP label printer on loopback ("port 9100"): each connection's bytes, in order, once the client ends. */
export interface LoopbackPrinter {
  readonly port: number;
  readonly jobs: string[];
  close(): Promise<void>;
}

/** Start a loopback printer on `port` (0: a free one). It closes its side after each job, as printers do. */
export function startLoopbackPrinter(port = 0): Promise<LoopbackPrinter> {
  const jobs: string[] = [];
  const server = createServer((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      jobs.push(Buffer.concat(chunks).toString('utf8'));
      s.end();
    });
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        jobs,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

/** The QR text of the first ^GFA graphic of a ZPL document (decoded by jsqr), or null. */
export function qrOfZpl(zpl: string): string | null {
  const [g] = zplGraphics(zpl);
  if (!g) return null;
  const bit = (x: number, y: number) => ((g.data[y * g.bytesPerRow + (x >> 3)]! >> (7 - (x & 7))) & 1) === 1;
  return decodeQr(inkToRgba(g.bytesPerRow * 8, g.rows, bit, 16));
}

/**
 * What a label's QR must say for a certificate, computed by openssl (an independent tool): its SHA-256 fingerprint
 * and its subjectAltName URN. `dir` holds the PEM file openssl reads.
 */
export function certificateTruth(pem: string, dir: string): { certificateSha256: string; deviceUrn: string } {
  const f = join(dir, `cert-${createHash('sha256').update(pem).digest('hex').slice(0, 16)}.pem`);
  writeFileSync(f, pem);
  const fp = execFileSync('openssl', ['x509', '-in', f, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
  const san = execFileSync('openssl', ['x509', '-in', f, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  return {
    certificateSha256: fp.split('=')[1]!.trim().replace(/:/g, '').toLowerCase(),
    deviceUrn: /URI:(urn:\S+)/.exec(san)![1]!,
  };
}
