/**
 * The device certificate fast path (./der.ts and records.ts checkDeviceCertificate): the DER parts agree with
 * openssl's reading of the same certificate, and the check gives the verdict node:crypto's parser gives, on good
 * and on tampered certificates.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../core/bytes.js';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestStation, makeDevice, type TestStation } from '../../testkit/registry/fixtures.js';
import { certificateParts } from './der.js';
import { checkDeviceCertificate } from './records.js';
import { loadStationTrust, type StationTrust } from './verify.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-der-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let station: TestStation;
let trust: StationTrust;
let device: Uint8Array;

beforeAll(async () => {
  station = await createTestStation('der-test', systemClock);
  const t = await loadStationTrust({
    stationId: station.id,
    chainPem: station.chainPem,
    certificateSha256: await sha256Hex(station.chain[0]!),
    issuingCaSha256: await sha256Hex(station.chain[1]!),
    rootSha256: await sha256Hex(station.chain[2]!),
    workOrders: [],
    enrolledAt: new Date().toISOString(),
    revokedAt: null,
    lastSyncAt: null,
  });
  if (!t.ok) throw new Error(t.error.message);
  trust = t.value;
  device = (await makeDevice(station, systemClock)).cert.der;
});

const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'latin1' });

describe('device certificates on their DER parts', () => {
  it('reads what openssl reads: serial, validity, subject public key', () => {
    const file = join(dir, 'device.pem');
    writeFileSync(file, toPem(device, 'CERTIFICATE'));
    const parts = certificateParts(device)!;
    expect(parts).not.toBeNull();
    const serial = openssl(['x509', '-in', file, '-noout', '-serial'])
      .trim()
      .replace(/^serial=/, '');
    expect(parts.serial).toBe(serial.toLowerCase().replace(/^0+/, ''));
    const start = openssl(['x509', '-in', file, '-noout', '-startdate'])
      .trim()
      .replace(/^notBefore=/, '');
    const end = openssl(['x509', '-in', file, '-noout', '-enddate'])
      .trim()
      .replace(/^notAfter=/, '');
    expect(parts.notBefore).toBe(Date.parse(start));
    expect(parts.notAfter).toBe(Date.parse(end));
    const pub = execFileSync('sh', [
      '-c',
      `openssl x509 -in '${file}' -noout -pubkey | openssl pkey -pubin -outform DER`,
    ]);
    expect(Buffer.from(parts.spki).equals(pub)).toBe(true);
    expect(parts.isCa).toBe(false);
    const ca = certificateParts(station.chain[1]!)!;
    expect(ca.isCa).toBe(true);
    expect(Buffer.from(parts.issuer).equals(Buffer.from(ca.subject))).toBe(true);
    expect(Buffer.from(parts.authorityKeyId!).equals(Buffer.from(ca.subjectKeyId!))).toBe(true);
  });

  it('gives the verdict of node:crypto on the good certificate and on every tampered byte of a sample', () => {
    const at = new Date();
    const good = checkDeviceCertificate(trust, device, at);
    expect(good.ok).toBe(true);
    const native = new X509Certificate(device);
    expect(good.ok && good.value.serialNumber).toBe(native.serialNumber.toLowerCase().replace(/^0+/, ''));
    for (let i = 0; i < device.length; i += 7) {
      const bad = new Uint8Array(device);
      bad[i] = bad[i]! ^ 0x01;
      const r = checkDeviceCertificate(trust, bad, at);
      let nativeOk = false;
      try {
        const c = new X509Certificate(bad);
        nativeOk = c.checkIssued(trust.ca.cert) && c.verify(trust.ca.key) && !c.ca;
      } catch {
        nativeOk = false;
      }
      expect(r.ok, `byte ${i}`).toBe(nativeOk);
    }
    // A CA certificate, a certificate of another station's CA, a time outside the validity: refused.
    expect(checkDeviceCertificate(trust, station.chain[1]!, at).ok).toBe(false);
    expect(checkDeviceCertificate(trust, device, new Date(Date.now() + 40 * 365 * 86_400_000)).ok).toBe(false);
  });

  it('answers null for DER it does not expect (trailing bytes, non-minimal lengths, truncation)', () => {
    expect(certificateParts(new Uint8Array([...device, 0]))).toBeNull();
    expect(certificateParts(device.subarray(0, device.length - 1))).toBeNull();
    const long = new Uint8Array([0x30, 0x81, 0x03, 0x02, 0x01, 0x00]);
    expect(certificateParts(long)).toBeNull();
  });
});
