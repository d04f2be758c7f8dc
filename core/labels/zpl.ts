/**
 * ZPL II for thermal label printers (Zebra and compatibles; docs/formats.md "Board label"). The text lines are
 * printer font 0 at the layout's positions; the QR code is a ^GFA graphic of the very modules the preview shows
 * (not ^BQ): the printed code is the one the PNG test decodes, whatever QR encoder and mask the printer's firmware
 * would pick, and it has no ^BQ field-data quirks (mode prefixes, ^FH within ^BQ, firmware-dependent ECC defaults).
 * Every text byte outside [A-Za-z0-9 .:/-] is sent as a ^FH hex escape, so a serial number that a board chose
 * cannot inject ZPL commands (`^`, `~`). Pure.
 */
import type { LabelLayout } from './layout.js';
import { packRows, qrBitmap } from './raster.js';

/** Escape field data for `^FH_`: everything but a safe set becomes `_XX` (hex of the byte; ASCII only here). */
export function zplFieldData(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/^[A-Za-z0-9 .:/-]$/.test(ch)) out += ch;
    else {
      const code = ch.charCodeAt(0);
      out += code < 0x80 ? `_${code.toString(16).toUpperCase().padStart(2, '0')}` : '_3F';
    }
  }
  return out;
}

const HEX = '0123456789ABCDEF';
function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

/** A ZPL label: `copies` prints of the layout (`^PQ`), `recordId` in a ^FX comment (not printed). */
export function renderZpl(l: LabelLayout, opts: { copies?: number; recordId?: string } = {}): string {
  const out: string[] = ['^XA', `^PW${l.widthDots}`, `^LL${l.heightDots}`, '^LH0,0', '^CI28'];
  if (opts.recordId && /^[0-9a-f-]{1,64}$/.test(opts.recordId))
    out.push(`^FXline-station label record ${opts.recordId}^FS`);
  for (const t of l.lines)
    out.push(`^FO${t.x},${t.y}^A0N,${8 * t.scale},${6 * t.scale}^FH_^FD${zplFieldData(t.text)}^FS`);
  const g = packRows(qrBitmap(l.qr), 1);
  out.push(`^FO${l.qr.x},${l.qr.y}^GFA,${g.data.length},${g.data.length},${g.bytesPerRow},${hex(g.data)}^FS`);
  out.push(`^PQ${Math.max(1, Math.min(99, Math.floor(opts.copies ?? 1)))}`, '^XZ');
  return out.join('\n') + '\n';
}

/** A ^GFA graphic read back from ZPL (tests and tools): its position, size and packed rows (1 = dot). */
export interface ZplGraphic {
  readonly x: number;
  readonly y: number;
  readonly bytesPerRow: number;
  readonly rows: number;
  readonly data: Uint8Array;
}

/** The uncompressed ^GFA graphics of a ZPL document (as renderZpl writes them: plain hex data). */
export function zplGraphics(zpl: string): ZplGraphic[] {
  const re = /\^FO(\d+),(\d+)\^GFA,(\d+),(\d+),(\d+),([0-9A-Fa-f]+)\^FS/g;
  const out: ZplGraphic[] = [];
  for (const m of zpl.matchAll(re)) {
    const total = Number(m[3]);
    const bytesPerRow = Number(m[5]);
    const h = m[6]!;
    if (h.length !== total * 2 || bytesPerRow === 0 || total % bytesPerRow !== 0) continue;
    const data = new Uint8Array(total);
    for (let i = 0; i < total; i++) data[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
    out.push({ x: Number(m[1]), y: Number(m[2]), bytesPerRow, rows: total / bytesPerRow, data });
  }
  return out;
}
