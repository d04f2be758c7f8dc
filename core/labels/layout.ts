/**
 * Label layout (docs/formats.md "Board label"): where the text lines and the QR code go on a label of a configured
 * size and printer resolution, in printer dots. One layout feeds every renderer (raster.ts for the PNG/PDF preview,
 * zpl.ts for thermal printers), so the preview and the print place everything at the same dots. The QR matrix is
 * made here once (qrcode-generator, error correction M) and drawn as the same modules everywhere. Pure.
 */
import qrcode from 'qrcode-generator';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { ADVANCE_X, ADVANCE_Y } from './font.js';
import { qrPayload, type LabelData } from './payload.js';
import type { LabelSize } from './size.js';

// The size schema lives in ./size.ts (the station configuration reads it without this module's QR encoder).
export { DEFAULT_LABEL_SIZE, LabelSizeSchema, type LabelSize } from './size.js';

/** One line of text at dot (x, y) (top left), drawn with glyph cells `scale` dots per font pixel. */
export interface TextLine {
  readonly x: number;
  readonly y: number;
  readonly scale: number;
  readonly text: string;
}

/** A QR code: `modules` × `modules` matrix (row-major, true = dark) drawn `moduleDots` dots per module at (x, y). */
export interface QrPlacement {
  readonly x: number;
  readonly y: number;
  readonly moduleDots: number;
  readonly modules: number;
  readonly dark: readonly boolean[];
  /** The exact text encoded (qrPayload). */
  readonly payload: string;
}

export interface LabelLayout {
  readonly widthDots: number;
  readonly heightDots: number;
  readonly dpi: number;
  readonly lines: readonly TextLine[];
  readonly qr: QrPlacement;
}

/** Quiet zone kept white around the QR code, in modules (inside the label margin). */
export const QR_QUIET_MODULES = 2;
/** Smallest QR module printed, millimetres: below it common scanners misread a thermal print. */
export const MIN_MODULE_MM = 0.25;
const MARGIN_MM = 1.5;

const dots = (mm: number, dpi: number) => Math.round((mm / 25.4) * dpi);

/** The QR matrix of a payload (byte mode, error correction M, smallest version that holds it). */
export function qrMatrix(payload: string): { modules: number; dark: boolean[] } {
  const q = qrcode(0, 'M');
  q.addData(payload, 'Byte');
  q.make();
  const n = q.getModuleCount();
  const dark: boolean[] = new Array<boolean>(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) dark[r * n + c] = q.isDark(r, c);
  return { modules: n, dark };
}

/** The width of the field names column (`DATE `): every value starts in the same column. */
const HEAD_COLS = 5;

/** `prefix value`, wrapped to `cols` characters per line; continuation lines indented under the value. */
function wrapField(prefix: string, value: string, cols: number): string[] {
  const head = `${prefix} `.padEnd(HEAD_COLS);
  const room = cols - head.length;
  if (room < 4) return [];
  const out: string[] = [];
  for (let i = 0; i < value.length; i += room)
    out.push((i === 0 ? head : ' '.repeat(head.length)) + value.slice(i, i + room));
  return out;
}

/** The text lines of a label, in order (docs/formats.md "Board label"). */
export function labelFields(d: LabelData): readonly (readonly [string, string])[] {
  return [
    ['SN', d.serialNumber],
    ['CHIP', d.chipId],
    ['WO', d.workOrder],
    ['DATE', d.date],
  ];
}

/**
 * Lay a label out: the QR code square at the right (as high as the label allows, whole dots per module), the fields
 * at the left in the largest glyph scale that fits. LABEL_TOO_SMALL when the QR modules would be smaller than
 * MIN_MODULE_MM or the text does not fit beside it (nothing is cut off or shrunk past legibility).
 */
export function layoutLabel(d: LabelData, size: LabelSize): Result<LabelLayout> {
  const { dpi } = size;
  const W = dots(size.widthMm, dpi);
  const H = dots(size.heightMm, dpi);
  const margin = dots(MARGIN_MM, dpi);
  const payload = qrPayload(d);
  const m = qrMatrix(payload);
  const moduleDots = Math.floor((H - 2 * margin) / (m.modules + 2 * QR_QUIET_MODULES));
  const minModule = Math.max(2, Math.ceil((MIN_MODULE_MM / 25.4) * dpi));
  if (moduleDots < minModule)
    return fail(
      'LABEL_TOO_SMALL',
      `a ${size.widthMm}x${size.heightMm} mm label at ${dpi} dpi gives QR modules of ${moduleDots} dots; ` +
        `at least ${minModule} are needed (${MIN_MODULE_MM} mm)`,
      { modules: m.modules, moduleDots, minModule },
    );
  const qrSide = m.modules * moduleDots;
  const qrBox = (m.modules + 2 * QR_QUIET_MODULES) * moduleDots;
  const qr: QrPlacement = {
    x: W - margin - qrBox + QR_QUIET_MODULES * moduleDots,
    y: Math.floor((H - qrSide) / 2),
    moduleDots,
    modules: m.modules,
    dark: m.dark,
    payload,
  };
  const textW = W - 2 * margin - qrBox;
  const textH = H - 2 * margin;
  // Largest scale first: about 1 mm glyph height per scale step at the printer's resolution.
  for (let scale = Math.max(1, Math.floor(dpi / 100)); scale >= 1; scale--) {
    const cols = Math.floor(textW / (ADVANCE_X * scale));
    const texts = labelFields(d).flatMap(([p, v]) => wrapField(p, v, cols));
    if (texts.length === 0 || texts.length * ADVANCE_Y * scale > textH) continue;
    const top = margin + Math.floor((textH - texts.length * ADVANCE_Y * scale) / 2);
    const lines = texts.map((text, i) => ({ x: margin, y: top + i * ADVANCE_Y * scale, scale, text }));
    return ok({ widthDots: W, heightDots: H, dpi, lines, qr });
  }
  return fail(
    'LABEL_TOO_SMALL',
    `the label text does not fit beside the QR code on a ${size.widthMm}x${size.heightMm} mm label`,
    { textWidthDots: textW, textHeightDots: textH },
  );
}
