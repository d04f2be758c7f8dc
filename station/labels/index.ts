/**
 * Board labels at the station (docs/operations.md "Label printer", docs/formats.md "Board label"): make the label
 * of a committed record (core/labels: fields, layout, ZPL, raster; native/printers: PNG, PDF, printers), print it
 * after PASS (never failing the board: the outcome is reported beside the slot or CLI line), and reprint it on
 * request — every reprint audited (`label.reprint`: record, run, operator, supervisor, printer, outcome).
 * Used by the service (slots after PASS, getLabel, reprintLabel), `station label` and `station provision`/`watch`.
 */
import { fail } from '../../core/errors.js';
import { DEFAULT_LABEL_SIZE, layoutLabel, type LabelLayout, type LabelSize } from '../../core/labels/layout.js';
import { labelFromRecord, type LabelData } from '../../core/labels/payload.js';
import { renderRaster } from '../../core/labels/raster.js';
import { renderZpl } from '../../core/labels/zpl.js';
import type { LabelsConfig } from '../../core/labels/config.js';
import type { Logger } from '../../core/ports.js';
import { ProvisioningRecordSchema } from '../../core/provisioning/record.js';
import type { Store } from '../../core/provisioning/store.js';
import { ok, type Result } from '../../core/result.js';
import { encodePdf, encodePng } from '../../native/printers/image.js';
import { describeTarget, sendZpl, type PrintReceipt, type SendOptions } from '../../native/printers/send.js';

/** A committed record as the label needs it (the store's StoredRecord or the queries' RecordRow). */
export interface RecordJson {
  readonly recordId: string;
  readonly recordJson: string;
}

/** One rendered label: its fields, the layout and the ZPL for the printer. */
export interface RenderedLabel {
  readonly data: LabelData;
  readonly layout: LabelLayout;
  readonly zpl: string;
}

/** The label configuration in force (defaults when config.json has no `labels`). */
export function labelsConfig(c: LabelsConfig | undefined): LabelsConfig {
  return c ?? { printOnPass: true, size: DEFAULT_LABEL_SIZE };
}

/** Make the label of a committed record (LABEL_DATA_INVALID, LABEL_TOO_SMALL). */
export async function renderLabel(r: RecordJson, size: LabelSize, copies = 1): Promise<Result<RenderedLabel>> {
  let json: unknown;
  try {
    json = JSON.parse(r.recordJson);
  } catch {
    return fail('LABEL_DATA_INVALID', `record ${r.recordId}: the stored record is not JSON`);
  }
  const rec = ProvisioningRecordSchema.safeParse(json);
  if (!rec.success) return fail('LABEL_DATA_INVALID', `record ${r.recordId}: not a provisioning record`);
  const data = await labelFromRecord(rec.data);
  if (!data.ok) return data;
  const layout = layoutLabel(data.value, size);
  if (!layout.ok) return layout;
  return ok({ data: data.value, layout: layout.value, zpl: renderZpl(layout.value, { copies, recordId: r.recordId }) });
}

/** The label preview as PNG bytes (1 bit, printer resolution). */
export function labelPng(l: RenderedLabel): Uint8Array {
  return encodePng(renderRaster(l.layout), l.layout.dpi);
}

/** The label preview as a one-page PDF (page = label size). */
export function labelPdf(l: RenderedLabel): Uint8Array {
  return encodePdf(renderRaster(l.layout), l.layout.dpi, `Line Station label ${l.data.serialNumber}`);
}

export interface LabelPrinterDeps {
  readonly config: LabelsConfig | undefined;
  /** Resolve a configured path (relative to the data dir). */
  readonly resolvePath: (p: string) => string;
  readonly logger: Logger;
  /** Test seam for the `lp` program (default: `lp` on PATH). */
  readonly lpCommand?: string;
}

/** Print a rendered label on the configured printer (PRINTER_NOT_CONFIGURED without one). */
export async function printLabel(d: LabelPrinterDeps, l: RenderedLabel): Promise<Result<PrintReceipt>> {
  const target = d.config?.printer;
  if (!target) return fail('PRINTER_NOT_CONFIGURED', 'no label printer is configured (config.json labels.printer)');
  const o: SendOptions = {
    resolvePath: d.resolvePath,
    recordId: l.data.recordId,
    ...(d.lpCommand ? { lpCommand: d.lpCommand } : {}),
  };
  const r = await sendZpl(target, l.zpl, o);
  const log = d.logger.child('[label]');
  if (r.ok)
    log.log('info', `label printed for ${l.data.serialNumber}`, { recordId: l.data.recordId, target: r.value.target });
  else
    log.log('warn', `label not printed for ${l.data.serialNumber}: ${r.error.code} ${r.error.message}`, {
      recordId: l.data.recordId,
      target: describeTarget(target),
    });
  return r;
}

/**
 * After PASS (the record is committed): print the board's label when `printOnPass` and a printer are configured.
 * null: nothing to do (no printer, or printing after PASS is off). A failure is returned for the caller to show;
 * the board's outcome is never changed by it.
 */
export async function printAfterPass(d: LabelPrinterDeps, r: RecordJson): Promise<Result<PrintReceipt> | null> {
  const c = labelsConfig(d.config);
  if (!c.printOnPass || !c.printer) return null;
  const l = await renderLabel(r, c.size);
  if (!l.ok) {
    d.logger.child('[label]').log('warn', `no label for record ${r.recordId}: ${l.error.code} ${l.error.message}`);
    return l;
  }
  return printLabel(d, l.value);
}

/** Who asked for a reprint (the audit's actor fields). */
export interface ReprintActor {
  readonly operator: string;
  /** The supervisor whose elevation was in force, if any. */
  readonly supervisor: string | null;
  readonly via: 'ui' | 'cli';
}

/**
 * Reprint a record's label, audited: the `label.reprint` audit entry (record id, run, serial, actor, printer target,
 * outcome and error code) is appended whether the printer took it or not. Unknown record: INPUT_INVALID, no audit.
 */
export async function reprintLabel(
  d: LabelPrinterDeps & {
    readonly store: Store;
    readonly record: (recordId: string) => (RecordJson & { runId: string }) | null;
  },
  recordId: string,
  who: ReprintActor,
): Promise<Result<{ receipt: PrintReceipt; label: RenderedLabel }>> {
  const rec = d.record(recordId);
  if (!rec) return fail('INPUT_INVALID', `recordId: no record ${recordId}`, { path: 'recordId' });
  const c = labelsConfig(d.config);
  const l = await renderLabel(rec, c.size);
  const printed = l.ok ? await printLabel(d, l.value) : l;
  d.store.appendAudit(
    'label.reprint',
    {
      recordId,
      serialNumber: l.ok ? l.value.data.serialNumber : null,
      operator: who.operator,
      supervisor: who.supervisor,
      via: who.via,
      target: c.printer ? describeTarget(c.printer) : null,
      outcome: printed.ok ? 'printed' : 'failed',
      code: printed.ok ? null : printed.error.code,
    },
    rec.runId,
  );
  if (!printed.ok) return printed;
  if (!l.ok) return l;
  return ok({ receipt: printed.value, label: l.value });
}
