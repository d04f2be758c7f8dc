/**
 * `station label`: a board's label from its record — written to a file (`--out F.zpl|F.png|F.pdf`) and/or printed
 * on the configured printer (`--print`) — and the label line `station provision` and `station watch` print after a
 * PASS. The operator signs in as for `provision` (the StationApi's reprintLabel role: any registered operator);
 * every printed label is audited `label.reprint`, every written file `label.export` (record, operator, target).
 * Imports core/, native/, station/ (engine, labels, service) and sibling command modules.
 */
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { flagOn, str, UsageError, type Io } from '../../core/cli/program.js';
import { stationError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import type { Engine } from '../engine.js';
import { engineCommand, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';
import { authenticateCli, credentials, OPERATOR_OPTIONS } from './sign-in.js';

const FORMATS = { '.zpl': 'zpl', '.png': 'png', '.pdf': 'pdf' } as const;

/** `station label`. */
export const labelCommand: StationCommand = {
  name: 'label',
  summary: "write or reprint a board's label (ZPL, PNG, PDF) from its record (audited)",
  synopsis: '--record ID [--out F.zpl|F.png|F.pdf] [--print] --operator O [options]',
  details:
    'The label of the record: serial, chip id, work order, date and a QR code "LSL1 <certificate SHA-256> <device URN>"\n' +
    '(docs/formats.md "Board label"). --out writes it in the format of the file name extension; --print sends it to\n' +
    'the printer of config.json labels.printer. The operator signs in (PIN as for `station provision`); a print is\n' +
    'audited label.reprint, a file label.export. Exit 1 when the printer failed (the file, if any, is written).',
  options: {
    record: { type: 'string', arg: 'ID', help: 'the record id (see `station records`) (required)' },
    out: { type: 'string', arg: 'F', help: 'write the label to F: .zpl (printer language), .png or .pdf (preview)' },
    print: { type: 'boolean', help: 'print it on the configured label printer (config.json labels.printer)' },
    ...OPERATOR_OPTIONS,
  },
  run: engineCommand(async (engine, args, o, { logger }) => {
    const recordId = str(args, 'record');
    const out = str(args, 'out');
    const print = flagOn(args, 'print');
    const cred = credentials(args);
    if (!recordId || !cred) throw new UsageError('label needs --record and the --operator who signs in');
    if (!out && !print) throw new UsageError('label needs --out F (.zpl, .png or .pdf) or --print, or both');
    const format = out ? FORMATS[extname(out).toLowerCase() as keyof typeof FORMATS] : undefined;
    if (out && !format) throw new UsageError(`--out ${out}: the file name must end in .zpl, .png or .pdf`);
    const rec = engine.db.queries.recordById(recordId);
    if (!rec)
      return reportError(
        o,
        stationError('INPUT_INVALID', `--record: no record ${recordId} (station records lists them)`),
      );
    const who = await authenticateCli(engine, 'label', cred, logger);
    if (!who.ok) return reportError(o, who.error);
    // Loaded when the command runs, not at start (`station --help`: docs/architecture.md "What a command loads").
    const [{ labelPdf, labelPng, labelsConfig, renderLabel, reprintLabel }, { enginePrinter }] = await Promise.all([
      import('../labels/index.js'),
      import('../service/labels.js'),
    ]);
    if (out && format) {
      const l = await renderLabel(rec, labelsConfig(engine.config.config.labels).size);
      if (!l.ok) return reportError(o, l.error);
      const bytes = format === 'png' ? labelPng(l.value) : format === 'pdf' ? labelPdf(l.value) : l.value.zpl;
      writeFileSync(out, bytes);
      engine.store.appendAudit(
        'label.export',
        { recordId, serialNumber: l.value.data.serialNumber, operator: who.value.operatorId, file: out, format },
        rec.runId,
      );
      o.out(`label of ${l.value.data.serialNumber} (record ${recordId}) written to ${out}`);
    }
    if (!print) return EXIT.ok;
    const r = await reprintLabel(
      { ...enginePrinter(engine, logger), store: engine.store, record: (id) => engine.db.queries.recordById(id) },
      recordId,
      { operator: who.value.operatorId, supervisor: who.value.supervisorId, via: 'cli' },
    );
    if (!r.ok) return reportError(o, r.error);
    o.out(
      `label of ${r.value.label.data.serialNumber} printed: ${r.value.receipt.target} (${r.value.receipt.bytes} bytes)`,
    );
    return EXIT.ok;
  }),
};

/**
 * After a PASS at the CLI (`station provision`, `station watch`): print the board's label when one is due, and say
 * so on a line of its own — `[port] LABEL printed <target>` or `[port] LABEL NOT PRINTED <code>: …` with the reprint
 * command. Never changes the board's outcome or the exit code.
 */
export async function printLabelLine(
  engine: Engine,
  logger: Logger,
  o: Io,
  port: string,
  recordId: string,
): Promise<void> {
  const { printAfterPassFor } = await import('../service/labels.js');
  const r = await printAfterPassFor(engine, logger)(recordId);
  if (r === null) return;
  if (r.ok) o.out(`[${port}] LABEL printed ${r.value.target}`);
  else
    o.out(
      `[${port}] LABEL NOT PRINTED ${r.error.code}: ${r.error.message} (the board passed; reprint: station label --record ${recordId} --print)`,
    );
}
