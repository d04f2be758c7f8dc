/**
 * Label previews as files: a 1-bit greyscale PNG (own encoder over node:zlib) and a one-page PDF that embeds the
 * same raster as a Flate-compressed image XObject, page size = label size. Both from core/labels/raster.ts
 * bitmaps; checked in tests by independent readers (pngjs + jsqr, qpdf, pdfinfo, pdftoppm).
 */
import { deflateSync } from 'node:zlib';
import { packRows, type Bitmap } from '../../core/labels/raster.js';
import { crc32 } from '../../core/protocol/framing.js';

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** Encode a bitmap as a PNG: greyscale, 1 bit per pixel (0 black = ink), filter None, with a pHYs of `dpi`. */
export function encodePng(b: Bitmap, dpi?: number): Uint8Array {
  const { bytesPerRow, data } = packRows(b, 0);
  const raw = Buffer.alloc((bytesPerRow + 1) * b.height);
  for (let y = 0; y < b.height; y++)
    raw.set(data.subarray(y * bytesPerRow, (y + 1) * bytesPerRow), y * (bytesPerRow + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(b.width, 0);
  ihdr.writeUInt32BE(b.height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (dpi) {
    const phys = Buffer.alloc(9);
    const ppm = Math.round(dpi / 0.0254);
    phys.writeUInt32BE(ppm, 0);
    phys.writeUInt32BE(ppm, 4);
    phys[8] = 1; // metre
    parts.push(chunk('pHYs', phys));
  }
  parts.push(chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0)));
  return new Uint8Array(Buffer.concat(parts));
}

/** PDF text string literal: ASCII with `\`, `(` and `)` escaped, anything else as `?`. */
function pdfString(s: string): string {
  return `(${s.replace(/[^\x20-\x7e]/g, '?').replace(/([\\()])/g, '\\$1')})`;
}

/**
 * A one-page PDF 1.4 of the bitmap at `dpi` (page = label size in points), the image drawn once to fill the page.
 * Minimal and valid: catalog, pages, page, image XObject (FlateDecode, DeviceGray, 1 bit), content stream, info,
 * a classic cross-reference table with exact offsets.
 */
export function encodePdf(b: Bitmap, dpi: number, title: string): Uint8Array {
  const { data } = packRows(b, 0);
  const image = deflateSync(data, { level: 9 });
  const wPt = ((b.width / dpi) * 72).toFixed(2);
  const hPt = ((b.height / dpi) * 72).toFixed(2);
  const content = Buffer.from(`q\n${wPt} 0 0 ${hPt} 0 0 cm\n/Im1 Do\nQ\n`, 'latin1');
  const objects: Buffer[] = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>', 'latin1'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>', 'latin1'),
    Buffer.from(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${wPt} ${hPt}] ` +
        '/Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>',
      'latin1',
    ),
    Buffer.concat([
      Buffer.from(
        `<< /Type /XObject /Subtype /Image /Width ${b.width} /Height ${b.height} /ColorSpace /DeviceGray ` +
          `/BitsPerComponent 1 /Filter /FlateDecode /Length ${image.length} >>\nstream\n`,
        'latin1',
      ),
      image,
      Buffer.from('\nendstream', 'latin1'),
    ]),
    Buffer.concat([
      Buffer.from(`<< /Length ${content.length} >>\nstream\n`, 'latin1'),
      content,
      Buffer.from('endstream', 'latin1'),
    ]),
    Buffer.from(`<< /Title ${pdfString(title)} /Producer (Line Station) >>`, 'latin1'),
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let offset = parts[0]!.length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(offset);
    const obj = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`, 'latin1'), body, Buffer.from('\nendobj\n', 'latin1')]);
    parts.push(obj);
    offset += obj.length;
  });
  const xref =
    `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n` +
    offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('') +
    `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n${offset}\n%%EOF\n`;
  parts.push(Buffer.from(xref, 'latin1'));
  return new Uint8Array(Buffer.concat(parts));
}
