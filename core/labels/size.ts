/**
 * Label stock and printer resolution: the schema of config.json `labels.size` (re-exported by core/labels/layout.ts).
 * Its own module so that reading the station configuration does not load the layout's QR encoder and the X.509
 * stack (issue 12, cold start: docs/architecture.md "What a command loads"). Imports zod.
 */
import { z } from 'zod';

/** Label stock and printer resolution (config.json `labels.size`; docs/operations.md "Label printer"). */
export const LabelSizeSchema = z
  .object({
    /** Label width across the print head, millimetres (default 57 mm = 2.25 in). */
    widthMm: z.number().min(20).max(120).default(57),
    /** Label height along the feed, millimetres (default 32 mm = 1.25 in). */
    heightMm: z.number().min(15).max(200).default(32),
    /** Print head resolution in dots per inch: 203 (8 dots/mm), 300 (12 dots/mm) or 600. */
    dpi: z.union([z.literal(203), z.literal(300), z.literal(600)]).default(203),
  })
  .strict();
export type LabelSize = z.infer<typeof LabelSizeSchema>;
export const DEFAULT_LABEL_SIZE: LabelSize = { widthMm: 57, heightMm: 32, dpi: 203 };
