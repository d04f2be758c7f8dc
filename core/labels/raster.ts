/**
 * The label as a 1-bit raster at printer resolution (one pixel per printer dot): text in the built-in 5x7 font and
 * the QR modules, from the same layout the ZPL uses. The PNG and PDF previews (native/printers) encode it; its
 * packed rows are what a ZPL ^GFA graphic carries. Pure.
 */
import { ADVANCE_X, GLYPH_H, GLYPH_W, glyph } from './font.js';
import type { LabelLayout, QrPlacement } from './layout.js';

/** A 1-bit image: `ink[y * width + x]` is 1 where the printer puts ink (black), 0 for paper. */
export interface Bitmap {
  readonly width: number;
  readonly height: number;
  readonly ink: Uint8Array;
}

function fill(b: Bitmap, x0: number, y0: number, w: number, h: number): void {
  for (let y = Math.max(0, y0); y < Math.min(b.height, y0 + h); y++)
    b.ink.fill(1, y * b.width + Math.max(0, x0), y * b.width + Math.min(b.width, x0 + w));
}

/** Draw the QR modules of a placement into a bitmap. */
export function drawQr(b: Bitmap, q: QrPlacement, at: { x: number; y: number } = q): void {
  for (let r = 0; r < q.modules; r++)
    for (let c = 0; c < q.modules; c++)
      if (q.dark[r * q.modules + c])
        fill(b, at.x + c * q.moduleDots, at.y + r * q.moduleDots, q.moduleDots, q.moduleDots);
}

/** The QR code alone as a bitmap (modules only, no quiet zone): the ZPL graphic. */
export function qrBitmap(q: QrPlacement): Bitmap {
  const side = q.modules * q.moduleDots;
  const b: Bitmap = { width: side, height: side, ink: new Uint8Array(side * side) };
  drawQr(b, q, { x: 0, y: 0 });
  return b;
}

/** Render a laid-out label to a bitmap. */
export function renderRaster(l: LabelLayout): Bitmap {
  const b: Bitmap = { width: l.widthDots, height: l.heightDots, ink: new Uint8Array(l.widthDots * l.heightDots) };
  for (const line of l.lines) {
    let x = line.x;
    for (const ch of line.text) {
      const g = glyph(ch);
      for (let gy = 0; gy < GLYPH_H; gy++)
        for (let gx = 0; gx < GLYPH_W; gx++)
          if (g[gy * GLYPH_W + gx]) fill(b, x + gx * line.scale, line.y + gy * line.scale, line.scale, line.scale);
      x += ADVANCE_X * line.scale;
    }
  }
  drawQr(b, l.qr);
  return b;
}

/**
 * The rows of a bitmap packed 8 pixels per byte, most significant bit first, each row padded to a whole byte.
 * `inkBit` is the bit value of ink: 1 for ZPL graphics (1 = print a dot), 0 for PNG/PDF grey (0 = black).
 */
export function packRows(b: Bitmap, inkBit: 0 | 1): { bytesPerRow: number; data: Uint8Array } {
  const bytesPerRow = Math.ceil(b.width / 8);
  const data = new Uint8Array(bytesPerRow * b.height);
  if (inkBit === 0) data.fill(0xff);
  for (let y = 0; y < b.height; y++)
    for (let x = 0; x < b.width; x++) {
      if (b.ink[y * b.width + x] !== 1) continue;
      const i = y * bytesPerRow + (x >> 3);
      const bit = 0x80 >> (x & 7);
      data[i] = inkBit === 1 ? data[i]! | bit : data[i]! & ~bit;
    }
  return { bytesPerRow, data };
}
