/**
 * The `labels` section of the station configuration (config.json; docs/operations.md "Label printer"): whether a
 * label is printed after PASS, the label size and resolution, and the printer — a file or device node, a raw TCP
 * socket (port 9100) or a CUPS queue. Schemas only; the station reads it (station/config.ts), native/printers sends.
 */
import { z } from 'zod';
import { LabelSizeSchema } from './size.js';

/** A CUPS queue name: letters, digits, `_ . -`, not starting with `-` (it is an argument of `lp -d`). */
export const CupsQueueSchema = z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,126}$/, 'expected a CUPS queue name');

/** Where labels go. */
export const PrinterTargetSchema = z.discriminatedUnion('kind', [
  /**
   * Write the ZPL to `path` (relative to the data dir, or absolute): a printer's device node (e.g. /dev/usb/lp0),
   * a file (replaced at each label), or an existing directory (one `<time>-<recordId>.zpl` file per label).
   */
  z.object({ kind: z.literal('file'), path: z.string().min(1).max(1024) }).strict(),
  /** Send the ZPL to a raw TCP socket (a network label printer's port 9100, "JetDirect"). */
  z
    .object({
      kind: z.literal('tcp'),
      host: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, 'expected a host name or IP address'),
      port: z.number().int().min(1).max(65535).default(9100),
      /** Longest wait to connect, and for the printer to take the label, milliseconds. */
      timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    })
    .strict(),
  /** Hand the ZPL to a CUPS queue as a raw job: `lp -d <queue> -o raw` (argv, no shell). */
  z
    .object({
      kind: z.literal('cups'),
      queue: CupsQueueSchema,
      timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
    })
    .strict(),
]);
export type PrinterTarget = z.infer<typeof PrinterTargetSchema>;

export const LabelsConfigSchema = z
  .object({
    /** Print a label after each PASS (a board newly provisioned; not for "already provisioned"). Default true. */
    printOnPass: z.boolean().default(true),
    size: LabelSizeSchema.default({ widthMm: 57, heightMm: 32, dpi: 203 }),
    /** Absent: no printer (labels can still be previewed and written to a file with `station label --out`). */
    printer: PrinterTargetSchema.optional(),
  })
  .strict();
export type LabelsConfig = z.infer<typeof LabelsConfigSchema>;
