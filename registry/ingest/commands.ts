/**
 * `registry` commands of the ingest feature: import (a station's exported bundle, with its signed receipt), stats,
 * device, records (what was ingested), reconcile (the lifecycle for stored records that have none). Imports core/,
 * native/atomic-file.ts and registry/cli/; the registry services when a command runs.
 */
import { readFileSync } from 'node:fs';
import { flagOn, str, type ParsedArgs } from '../../core/cli/program.js';
import { fail } from '../../core/errors.js';
import { MAX_BUNDLE_BYTES } from '../../core/hq/limits.js';
import type { RecordsPage } from '../../core/hq/protocol.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import type { RecordQuery } from '../stations/queries.js';
import type { IngestHooks } from './hooks.js';
import {
  fileProblem,
  JSON_OPTION,
  printJson,
  usage,
  type Out,
  type Outcome,
  type RegistryCommand,
} from '../cli/command.js';
import { answer, reportApi, reportError, reportGuided } from '../cli/report.js';

/** A bundle file's text: at most MAX_BUNDLE_BYTES of UTF-8. */
function readBundle(file: string): { text: string } | { error: string } {
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_BUNDLE_BYTES) return { error: `${file} is larger than ${MAX_BUNDLE_BYTES} bytes` };
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(buf) };
  } catch (e) {
    return { error: `${file}: ${fileProblem(e)}` };
  }
}

/**
 * `registry import`: a hand-carried bundle, ingested with the lifecycle's hooks (injected: registry/http/compose.ts,
 * loaded when the command runs).
 */
function importCommand(hooks: () => Promise<IngestHooks>): RegistryCommand {
  return {
    name: 'import',
    summary: "import a station's bundle (station export); write the signed receipt (station import-receipt)",
    details: 'Exit 1 when a record is rejected or conflicts (each is listed).',
    options: {
      out: { type: 'string', arg: 'FILE', help: 'where to write the receipt JWS (default FILE.receipt.jws)' },
      'allow-revoked-station': {
        type: 'boolean',
        help: 'take in a revoked station’s records completed before its revocation (audited)',
      },
      ...JSON_OPTION,
    },
    positionals: [{ name: 'FILE', help: 'the bundle (station export --out FILE)', required: true }],
    opens: 'registry',
    hsm: true, // receipts are signed; ingested records re-sign CRLs
    async run(a, { ctx, out }) {
      const file = a.positionals[0];
      if (!file) return usage('import needs a bundle FILE');
      const bundle = readBundle(file);
      if ('error' in bundle) return reportError(out, fail('INPUT_INVALID', bundle.error).error);
      const caller = { kind: 'admin', allowRevokedStation: flagOn(a, 'allow-revoked-station') } as const;
      const [{ importBundle }, h] = await Promise.all([import('./service.js'), hooks()]);
      const r = await importBundle(ctx, h, caller, bundle.text);
      if (!r.ok) return reportApi(out, r.error);
      const outFile = str(a, 'out') ?? `${file}.receipt.jws`;
      writeFileAtomic(outFile, r.value.receipt + '\n');
      const s = r.value.summary;
      if (flagOn(a, 'json')) printJson(out, r.value);
      else {
        out.log(
          `bundle ${r.value.bundleId} of station ${r.value.stationId}: ${s.accepted} accepted, ${s.duplicate} duplicate${r.value.repeated ? ' (this bundle was imported before: nothing new)' : ''}, ${s.conflict} conflict, ${s.rejected} rejected`,
        );
        for (const x of r.value.results.filter((x) => x.status === 'rejected' || x.status === 'conflict'))
          out.log(`  #${x.index} ${x.recordId ?? '(unreadable)'}: ${x.reason}: ${x.message}`);
        out.log(`receipt written to ${outFile}`);
      }
      return s.rejected + s.conflict > 0 ? 'refused' : 'ok';
    },
  };
}

const statsCommand: RegistryCommand = {
  name: 'stats',
  summary: 'what the registry holds: stations, devices, records, conflicts',
  options: { ...JSON_OPTION },
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const { stats } = await import('../stations/queries.js');
    return answer(a, out, await stats(ctx), reportApi, (s) =>
      out.log(`stations ${s.stations}, devices ${s.devices}, records ${s.records}, conflicts ${s.conflicts}`),
    );
  },
};

const device: RegistryCommand = {
  name: 'device',
  summary: 'one device and its records (exit 1 when unknown)',
  options: { ...JSON_OPTION },
  positionals: [{ name: 'SERIAL_OR_CHIP_ID', help: 'its serial number or chip id', required: true }],
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const key = a.positionals[0];
    if (!key) return usage('device needs a serial number or chip id');
    const { getDevice } = await import('../stations/queries.js');
    return answer(a, out, await getDevice(ctx, key), reportApi, (d) => {
      out.log(`device ${d.serialNumber} (chip ${d.chipId}, ${d.model}), current record ${d.currentRecordId ?? '-'}`);
      for (const x of d.records)
        out.log(
          `  ${x.recordId}  ${x.kind.padEnd(8)} ${x.completedAt}  station ${x.stationId}  work order ${x.workOrder}`,
        );
    });
  },
};

/** The records query the options name (`--limit` 1..1000: the service checks the range), or a usage error. */
function recordQuery(a: ParsedArgs): { query: RecordQuery } | { outcome: Outcome } {
  const limit = str(a, 'limit');
  if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit)) return { outcome: usage('--limit must be 1..1000') };
  const fields = { station: 'station', workOrder: 'work-order', from: 'from', to: 'to', cursor: 'cursor' } as const;
  const query: { -readonly [K in keyof RecordQuery]: RecordQuery[K] } = limit ? { limit: Number(limit) } : {};
  for (const [key, option] of Object.entries(fields) as [keyof typeof fields, string][]) {
    const v = str(a, option);
    if (v) query[key] = v;
  }
  return { query };
}

function printRecords(out: Out, page: RecordsPage): void {
  for (const x of page.records)
    out.log(
      `${x.recordId}  ${x.serialNumber.padEnd(12)} ${x.completedAt}  station ${x.stationId}  work order ${x.workOrder}`,
    );
  if (page.nextCursor) out.log(`more: --cursor ${page.nextCursor}`);
}

const records: RegistryCommand = {
  name: 'records',
  summary: 'ingested records, newest first, a page at a time',
  options: {
    station: { type: 'string', arg: 'S', help: 'of this station' },
    'work-order': { type: 'string', arg: 'W', help: 'of this work order' },
    from: { type: 'string', arg: 'ISO', help: 'completed at or after' },
    to: { type: 'string', arg: 'ISO', help: 'completed before' },
    limit: { type: 'string', arg: 'N', help: 'page size, 1..1000' },
    cursor: { type: 'string', arg: 'C', help: 'the next page (printed as "more: --cursor C")' },
    ...JSON_OPTION,
  },
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const q = recordQuery(a);
    if ('outcome' in q) return q.outcome;
    const { queryRecords } = await import('../stations/queries.js');
    return answer(a, out, await queryRecords(ctx, q.query), reportApi, (page) => printRecords(out, page));
  },
};

const reconcile: RegistryCommand = {
  name: 'reconcile',
  summary: 'apply the lifecycle to stored records that have none (repair for pre-v3 registries; admin only)',
  options: { 'dry-run': { type: 'boolean', help: 'list them, change nothing' }, ...JSON_OPTION },
  opens: 'registry',
  hsm: true,
  acting: { adminOnly: 'reconcile needs the admin role' },
  async run(a, { ctx, out, role }) {
    const { reconcileLifecycle } = await import('../transitions/reconcile.js');
    return answer(a, out, await reconcileLifecycle(ctx, role, flagOn(a, 'dry-run')), reportGuided, (v) => {
      for (const x of v.records) out.log(`  ${x.serialNumber}  record ${x.recordId}  station ${x.stationId}`);
      out.log(
        `${v.dryRun ? 'would apply' : 'applied'}: ${v.applied} credential(s) from ${v.pending} record(s) without lifecycle entries`,
      );
    });
  },
};

/**
 * The ingest feature's commands, in `registry --help` order; `import` ingests with the hooks `hooks` loads (the
 * lifecycle's, bound by registry/cli.ts).
 */
export function ingestCommands(hooks: () => Promise<IngestHooks>): readonly RegistryCommand[] {
  return [importCommand(hooks), statsCommand, device, records, reconcile];
}
