/**
 * The label operations of the StationApi (core/api.ts getLabel, reprintLabel) and the print after PASS of the
 * slots, over station/labels. Roles are checked by the service before these run (both: any signed-in user); the
 * reprint is audited by station/labels `reprintLabel` with the session's operator and supervisor.
 */
import type { LabelFile, LabelReprint } from '../../core/api.js';
import { fail } from '../../core/errors.js';
import { toBase64 } from '../../core/bytes.js';
import type { Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { describeTarget, type PrintReceipt } from '../../native/printers/send.js';
import type { Engine } from '../engine.js';
import {
  labelPdf,
  labelPng,
  labelsConfig,
  printAfterPass,
  renderLabel,
  reprintLabel,
  type LabelPrinterDeps,
} from '../labels/index.js';

const MEDIA = { png: 'image/png', pdf: 'application/pdf', zpl: 'application/vnd.zebra-zpl' } as const;

/** The printer dependencies of an engine (its configuration's `labels`, paths relative to its data dir). */
export function enginePrinter(engine: Engine, logger: Logger): LabelPrinterDeps {
  return { config: engine.config.config.labels, resolvePath: engine.config.path, logger };
}

/** True when a label is printed after each PASS: a printer is configured and `printOnPass` is not false. */
export function labelDueAfterPass(engine: Engine): boolean {
  const c = labelsConfig(engine.config.config.labels);
  return c.printOnPass && c.printer !== undefined;
}

/** Print the label of a record just committed (slots after PASS); null when no label is due. */
export function printAfterPassFor(
  engine: Engine,
  logger: Logger,
): (recordId: string) => Promise<Result<PrintReceipt> | null> {
  return async (recordId) => {
    const rec = engine.db.queries.recordById(recordId);
    if (!rec) return fail('LABEL_DATA_INVALID', `no record ${recordId}`);
    return printAfterPass(enginePrinter(engine, logger), rec);
  };
}

/** getLabel and reprintLabel. `who` gives the signed-in operator and the supervisor elevation of a client. */
export function labelOperations(
  engine: Engine,
  logger: Logger,
  who: (clientId: string) => { operator: string | null; supervisor: string | null },
): {
  getLabel(clientId: string, a: { recordId: string; format: LabelFile['format'] }): Promise<Result<LabelFile>>;
  reprintLabel(clientId: string, a: { recordId: string }): Promise<Result<LabelReprint>>;
} {
  const deps = () => enginePrinter(engine, logger);
  return {
    async getLabel(_c, a) {
      const rec = engine.db.queries.recordById(a.recordId);
      if (!rec) return fail('INPUT_INVALID', `recordId: no record ${a.recordId}`, { path: 'recordId' });
      const c = labelsConfig(engine.config.config.labels);
      const l = await renderLabel(rec, c.size);
      if (!l.ok) return l;
      const bytes =
        a.format === 'png'
          ? labelPng(l.value)
          : a.format === 'pdf'
            ? labelPdf(l.value)
            : new TextEncoder().encode(l.value.zpl);
      return ok({
        recordId: a.recordId,
        format: a.format,
        fileName: `label-${l.value.data.serialNumber.replace(/[^A-Za-z0-9._-]/g, '_')}.${a.format}`,
        mediaType: MEDIA[a.format],
        base64: toBase64(bytes),
        qrPayload: l.value.layout.qr.payload,
        serialNumber: l.value.data.serialNumber,
        size: { ...c.size },
        printer: c.printer ? describeTarget(c.printer) : null,
      });
    },

    async reprintLabel(clientId, a) {
      const w = who(clientId);
      if (!w.operator) return fail('AUTH_REQUIRED', 'reprintLabel needs a signed-in operator');
      const r = await reprintLabel(
        {
          ...deps(),
          store: engine.store,
          record: (id) => engine.db.queries.recordById(id),
        },
        a.recordId,
        { operator: w.operator, supervisor: w.supervisor, via: 'ui' },
      );
      if (!r.ok) return r;
      return ok({ recordId: a.recordId, target: r.value.receipt.target, bytes: r.value.receipt.bytes });
    },
  };
}
