/**
 * Labels in core: the QR payload and its parser, the label fields from a record with a real device certificate
 * (fingerprint recomputed, URN from the SAN), the layout limits, and the ZPL: the QR graphic it carries decodes
 * (jsqr) to the payload, and text a board chose cannot inject ZPL commands.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { labelSourceFixture, qrOfZpl } from '../../testkit/labels.js';
import { must } from '../../testkit/pki/test-util.js';
import { glyph, hasGlyph } from './font.js';
import { DEFAULT_LABEL_SIZE, layoutLabel } from './layout.js';
import { labelFromRecord, parseQrPayload, qrPayload, type LabelSource } from './payload.js';
import { renderRaster } from './raster.js';
import { renderZpl, zplFieldData, zplGraphics } from './zpl.js';

let src: LabelSource;
beforeAll(async () => {
  src = await labelSourceFixture();
});

describe('QR payload', () => {
  it('is LSL1 <sha256> <urn> and parses back; anything else is refused', () => {
    const p = qrPayload({ certificateSha256: 'ab'.repeat(32), deviceUrn: 'urn:line-station:device:X:01234567' });
    expect(p).toBe(`LSL1 ${'ab'.repeat(32)} urn:line-station:device:X:01234567`);
    expect(must(parseQrPayload(p))).toEqual({
      certificateSha256: 'ab'.repeat(32),
      deviceUrn: 'urn:line-station:device:X:01234567',
    });
    for (const bad of [
      `LSL2 ${'ab'.repeat(32)} urn:a:b`,
      `LSL1 ${'AB'.repeat(32)} urn:a:b`,
      `LSL1 ${'ab'.repeat(32)} https://x`,
      `LSL1 ${'ab'.repeat(32)} urn:a:b extra`,
      `LSL1 ${'ab'.repeat(32)}`,
    ])
      expect(parseQrPayload(bad)).toMatchObject({ ok: false, error: { code: 'LABEL_DATA_INVALID' } });
  });
});

describe('label fields from a record', () => {
  it('takes the URN from the certificate SAN and recomputes the fingerprint', async () => {
    const d = must(await labelFromRecord(src));
    expect(d).toMatchObject({
      serialNumber: 'SIM-000123',
      chipId: '0123456789abcdef',
      workOrder: 'WO-DEMO-1',
      date: '2026-12-05',
      deviceUrn: 'urn:line-station:device:LS-SIM-SE:0123456789abcdef',
      certificateSha256: src.certificate.sha256,
    });
  });
  it('refuses a record whose fingerprint does not match its certificate', async () => {
    const r = await labelFromRecord({ ...src, certificate: { ...src.certificate, sha256: '00'.repeat(32) } });
    expect(r).toMatchObject({ ok: false, error: { code: 'LABEL_DATA_INVALID' } });
  });
  it('refuses a certificate without a device URN', async () => {
    const noUrn = await labelSourceFixture({ sanUri: null });
    expect(await labelFromRecord(noUrn)).toMatchObject({ ok: false, error: { code: 'LABEL_DATA_INVALID' } });
  });
  it('refuses text outside printable ASCII instead of mangling it', async () => {
    const r = await labelFromRecord({ ...src, board: { ...src.board, serialNumber: 'SIM\u202e1' } });
    expect(r).toMatchObject({ ok: false, error: { code: 'LABEL_DATA_INVALID', details: { field: 'serialNumber' } } });
  });
});

describe('layout and renderers', () => {
  it('every glyph is 5x7', () => {
    for (let c = 0x20; c < 0x7f; c++) {
      const ch = String.fromCharCode(c);
      expect(glyph(ch).length, ch).toBe(35);
    }
    expect(hasGlyph('A') && hasGlyph('z') && hasGlyph('-')).toBe(true);
  });

  it.each([203, 300, 600] as const)('lays out the default label at %i dpi inside the label', async (dpi) => {
    const d = must(await labelFromRecord(src));
    const l = must(layoutLabel(d, { ...DEFAULT_LABEL_SIZE, dpi }));
    expect(l.widthDots).toBe(Math.round((57 / 25.4) * dpi));
    const q = l.qr;
    expect(q.x + q.modules * q.moduleDots).toBeLessThanOrEqual(l.widthDots);
    expect(q.y + q.modules * q.moduleDots).toBeLessThanOrEqual(l.heightDots);
    for (const t of l.lines) expect(t.x + t.text.length * 6 * t.scale).toBeLessThanOrEqual(q.x);
    // Every character of every field is on the label (wrapped, never cut).
    const text = l.lines.map((t) => t.text).join(' ');
    for (const v of [d.serialNumber, d.workOrder, d.date]) expect(text).toContain(v);
    expect(l.lines.map((t) => t.text.slice(5)).join('')).toContain(d.chipId);
  });

  it('refuses a label too small for the QR code (LABEL_TOO_SMALL)', async () => {
    const d = must(await labelFromRecord(src));
    expect(layoutLabel(d, { widthMm: 25, heightMm: 15, dpi: 203 })).toMatchObject({
      ok: false,
      error: { code: 'LABEL_TOO_SMALL' },
    });
    expect(layoutLabel(d, { widthMm: 30, heightMm: 40, dpi: 203 })).toMatchObject({
      ok: false,
      error: { code: 'LABEL_TOO_SMALL' },
    });
  });

  it('the ZPL carries the QR as a ^GFA graphic that decodes to the payload, at the layout position', async () => {
    const d = must(await labelFromRecord(src));
    const l = must(layoutLabel(d, DEFAULT_LABEL_SIZE));
    const zpl = renderZpl(l, { recordId: d.recordId });
    expect(zpl.startsWith('^XA\n^PW456\n^LL256\n')).toBe(true);
    expect(zpl.endsWith('^PQ1\n^XZ\n')).toBe(true);
    const [g] = zplGraphics(zpl);
    expect(g).toBeDefined();
    expect([g!.x, g!.y]).toEqual([l.qr.x, l.qr.y]);
    expect(qrOfZpl(zpl)).toBe(`LSL1 ${src.certificate.sha256} urn:line-station:device:LS-SIM-SE:0123456789abcdef`);
  });

  it('the raster holds the same QR modules as the ZPL graphic', async () => {
    const l = must(layoutLabel(must(await labelFromRecord(src)), DEFAULT_LABEL_SIZE));
    const b = renderRaster(l);
    const [g] = zplGraphics(renderZpl(l));
    for (let y = 0; y < g!.rows; y++)
      for (let x = 0; x < l.qr.modules * l.qr.moduleDots; x++) {
        const zbit = (g!.data[y * g!.bytesPerRow + (x >> 3)]! >> (7 - (x & 7))) & 1;
        expect(b.ink[(l.qr.y + y) * b.width + l.qr.x + x]).toBe(zbit);
      }
  });

  it('attack: a serial number with ZPL commands is sent as hex escapes, never as commands', async () => {
    // The board chooses its serial; the record schema allows any 1..256 characters.
    expect(zplFieldData('A^XZ~JR^FDx')).toBe('A_5EXZ_7EJR_5EFDx');
    const d = { ...must(await labelFromRecord(src)), serialNumber: 'X^XZ^XA^FO0,0^GB999,999,999^FS' };
    const zpl = renderZpl(must(layoutLabel(d, DEFAULT_LABEL_SIZE)));
    expect(zpl.match(/\^XA/g)).toHaveLength(1);
    expect(zpl.match(/\^XZ/g)).toHaveLength(1);
    expect(zpl).not.toContain('^GB');
    expect(zpl).toContain('_5EXZ_5EXA');
  });
});
