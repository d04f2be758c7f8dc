/**
 * `station records` (the signed provisioning records) and `station verify-log` (the hash-chained audit trail, every
 * record's signature, and with --against-registry every audit head the registry anchored). Imports core/,
 * station/ (engine) and sibling command modules.
 */
import { readFileSync } from 'node:fs';
import { flagOn, str, UsageError, type Io, type ParsedArgs } from '../../core/cli/program.js';
import { fail } from '../../core/errors.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { jwsHeaderOf, recordIssuingChain } from '../../core/provisioning/record-manifest.js';
import { anchorMismatches } from '../../core/provisioning/audit.js';
import { ok as okResult, type Result } from '../../core/result.js';
import type { Store, StoredRecord } from '../../core/provisioning/store.js';
import { systemClock } from '../../core/ports.js';
import type { Engine } from '../engine.js';
import { engineCommand, storeCommand, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor } from './exit.js';

/** Records per page read from the store while streaming (the store's page cap). */
const PAGE = 1000;
const DEFAULT_LIMIT = 100;

/** `station records`. */
export const recordsCommand: StationCommand = {
  name: 'records',
  summary: 'list the signed provisioning records',
  details:
    'Newest first. --json prints one JSON array (a page: --limit, --offset); --ndjson streams every matching record\n' +
    'as one JSON object per line (the same objects), page by page, up to --limit if given. Times are ISO 8601.',
  options: {
    json: { type: 'boolean', help: 'the records as JSON, with certificate PEM, issuing chain, record and JWS' },
    ndjson: { type: 'boolean', help: 'stream the records as newline-delimited JSON (one record per line)' },
    limit: { type: 'string', arg: 'N', help: `at most N records (default ${DEFAULT_LIMIT}; --ndjson: all)` },
    offset: { type: 'string', arg: 'N', help: 'skip the N newest matching records (paging)' },
    since: { type: 'string', arg: 'TIME', help: 'only records created at or after TIME (e.g. 2026-12-01)' },
    before: { type: 'string', arg: 'TIME', help: 'only records created before TIME' },
    serial: { type: 'string', arg: 'S', help: 'only the board with serial number S' },
    'work-order': { type: 'string', arg: 'W', help: 'only work order W' },
  },
  run: storeCommand((db, args, o) => cmdRecords(db.store, args, o)),
};

/** `station verify-log`. */
export const verifyLogCommand: StationCommand = {
  name: 'verify-log',
  summary: "verify the hash-chained audit trail and every record's signature",
  options: {
    json: { type: 'boolean', help: 'the result as JSON' },
    'against-registry': {
      type: 'boolean',
      help: 'also: the local chain still holds every audit head the registry anchored (needs the HSM PIN)',
    },
  },
  run: engineCommand((engine, args, o) => cmdVerifyLog(engine, args, o)),
};

/** A non-negative integer option, or a UsageError naming it. */
function count(args: ParsedArgs, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${name} expects a whole number, got "${v}"`);
  return Number(v);
}

/** A time option as the store compares it (ISO 8601 UTC with milliseconds), or a UsageError. */
function time(args: ParsedArgs, name: string): string | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t))
    throw new UsageError(`--${name} expects an ISO 8601 date or time (2026-12-01, 2026-12-01T08:00Z), got "${v}"`);
  return new Date(t).toISOString();
}

/** One record as `--json` and `--ndjson` print it. */
function recordJson(r: StoredRecord): Record<string, unknown> {
  const record = JSON.parse(r.recordJson) as { certificate: { pem: string } };
  // The device certificate's issuing chain as PEM: v2 the record's `chain`, v3 its x5c after the station certificate.
  const issuing = recordIssuingChain(record, jwsHeaderOf(r.jws));
  return {
    recordId: r.recordId,
    runId: r.runId,
    chipId: r.chipId,
    serialNumber: r.serialNumber,
    workOrder: r.workOrder,
    operator: r.operator,
    kind: r.kind,
    supersedesRecordId: r.supersedesRecordId,
    createdAt: r.createdAt,
    certificateSerial: r.certificateSerial,
    certificatePem: record.certificate.pem,
    chain: issuing.ok ? issuing.value.map((d) => toPem(d, 'CERTIFICATE')) : [],
    recordSha256: r.recordSha256,
    record,
    jws: r.jws,
  };
}

async function cmdRecords(store: Store, args: ParsedArgs, o: Io): Promise<number> {
  const ndjson = flagOn(args, 'ndjson');
  if (ndjson && flagOn(args, 'json')) throw new UsageError('--json and --ndjson exclude each other');
  const limit = count(args, 'limit');
  const offset = count(args, 'offset') ?? 0;
  const filter = {
    ...(str(args, 'serial') ? { serialNumber: str(args, 'serial')! } : {}),
    ...(str(args, 'work-order') ? { workOrder: str(args, 'work-order')! } : {}),
    ...(time(args, 'since') ? { since: time(args, 'since')! } : {}),
    // A stream pins its end at its start: records committed meanwhile are not in it and do not shift its pages.
    before: time(args, 'before') ?? new Date(systemClock.now().getTime() + 1).toISOString(),
  };
  if (ndjson) {
    let left = limit ?? Number.MAX_SAFE_INTEGER;
    for (let at = offset; left > 0;) {
      const rows = store.listRecords({ ...filter, limit: Math.min(PAGE, left), offset: at });
      for (const r of rows) o.out(JSON.stringify(recordJson(r)));
      await o.drain?.();
      if (rows.length < Math.min(PAGE, left)) break;
      at += rows.length;
      left -= rows.length;
    }
    return EXIT.ok;
  }
  if (limit !== undefined && limit > PAGE)
    throw new UsageError(`--limit is at most ${PAGE} with one page (--json or the table); --ndjson streams any number`);
  const rows = store.listRecords({ ...filter, limit: limit ?? DEFAULT_LIMIT, offset });
  if (flagOn(args, 'json')) {
    o.out(JSON.stringify(rows.map(recordJson), null, 2));
    return EXIT.ok;
  }
  o.out(`${'created'.padEnd(24)} ${'serial'.padEnd(12)} ${'work order'.padEnd(12)} ${'kind'.padEnd(9)} record`);
  for (const r of rows)
    o.out(
      `${r.createdAt.padEnd(24)} ${r.serialNumber.padEnd(12)} ${r.workOrder.padEnd(12)} ${r.kind.padEnd(9)} ${r.recordId}`,
    );
  o.out(`${rows.length} of ${store.countRecords(filter)} records`);
  return EXIT.ok;
}

async function cmdVerifyLog(engine: Engine, args: ParsedArgs, o: Io): Promise<number> {
  const { verifyJws } = await import('../../core/pki/jws.js');
  const chain = engine.store.verifyAudit();
  const anchors = fromPemChain(readFileSync(engine.config.path(engine.config.config.pki.caChain), 'utf8'));
  if (!anchors.ok) {
    o.err(describeError(anchors.error));
    return EXIT.notReady;
  }
  // Every record's signature must verify against the station PKI (root at the end of the CA chain).
  const root = anchors.value.slice(-1);
  let badRecords = 0;
  let checked = 0;
  const problems: string[] = [];
  for (let off = 0; ; off += 500) {
    const rows = engine.store.listRecords({ limit: 500, offset: off });
    for (const r of rows) {
      checked++;
      const v = await verifyJws(r.jws, { trustAnchors: root, clock: engine.clock });
      if (!v.ok) {
        badRecords++;
        problems.push(`record ${r.recordId}: ${v.error.message}`);
      } else if (new TextDecoder().decode(v.value.payload) !== r.recordJson) {
        badRecords++;
        problems.push(`record ${r.recordId}: stored JSON differs from the signed payload`);
      }
    }
    if (rows.length < 500) break;
  }
  const anchored = flagOn(args, 'against-registry') ? await checkAnchoredHeads(engine) : null;
  if (anchored && !anchored.ok && anchored.error.code !== 'STORE_AUDIT_NOT_ANCHORED') {
    o.err(describeError(anchored.error));
    return exitFor(anchored.error);
  }
  const ok = chain.ok && badRecords === 0 && (anchored === null || anchored.ok);
  const registry =
    anchored === null ? undefined : anchored.ok ? anchored.value : { ...anchored.error.details, error: anchored.error };
  if (flagOn(args, 'json')) {
    o.out(
      JSON.stringify(
        { ok, audit: chain, records: { checked, invalid: badRecords, problems }, ...(registry ? { registry } : {}) },
        null,
        2,
      ),
    );
  } else {
    if (chain.ok) o.out(`audit chain OK: ${chain.entries} entries, head ${chain.headHash.slice(0, 16)}...`);
    else o.out(`audit chain BROKEN at ${chain.at}: ${chain.reason}: ${chain.message}`);
    o.out(
      badRecords === 0 ? `records OK: ${checked} signatures verified` : `records INVALID: ${badRecords} of ${checked}`,
    );
    for (const p of problems.slice(0, 20)) o.out(`  ${p}`);
    if (anchored?.ok)
      o.out(
        `registry anchors OK: ${anchored.value.heads} anchored heads held by the local chain (latest ${anchored.value.latest?.seq ?? 'none'})`,
      );
    else if (anchored) o.out(`registry anchors MISMATCH: ${describeError(anchored.error)}`);
  }
  return ok ? EXIT.ok : EXIT.verifyFailed;
}

/**
 * `verify-log --against-registry`: fetch the heads the registry anchored (signed, checked against the registry
 * certificate) and check the local chain holds each at its sequence number (docs/audit.md). STORE_AUDIT_NOT_ANCHORED
 * (details: mismatches, registry findings) when it does not, or when the registry recorded a finding.
 */
async function checkAnchoredHeads(
  engine: Engine,
): Promise<Result<{ latest: { seq: number; hash: string } | null; heads: number; findings: number }>> {
  if (!engine.sync)
    return fail('CONFIG_INVALID', 'no registry is configured: run station enroll --registry URL --registry-cert F');
  const r = await engine.sync.anchoredHeads();
  if (!r.ok) return r;
  const heads = [...r.value.heads, ...(r.value.latest ? [r.value.latest] : [])];
  const mismatches = anchorMismatches(heads, (seq) => {
    const e = engine.store.listAudit(seq, 1)[0];
    return e && e.seq === seq ? e.hash : null;
  });
  const findings = r.value.findings;
  if (mismatches.length || findings.length) {
    const first = mismatches[0];
    const why = first
      ? first.localHash === null
        ? `the local audit chain ends before entry ${first.seq}, which the registry anchored: entries were removed (restored backup or truncation)`
        : `local audit entry ${first.seq} hashes to ${first.localHash.slice(0, 16)}…, the registry anchored ${first.anchoredHash.slice(0, 16)}…: the history was rewritten`
      : `the registry recorded ${findings.length} finding(s) for this station: ${findings[0]!.kind} at entry ${findings[0]!.atSeq}: ${findings[0]!.message}`;
    return fail(
      'STORE_AUDIT_NOT_ANCHORED',
      `${why} (${mismatches.length} of ${heads.length} anchored heads not held)`,
      { mismatches: mismatches.slice(0, 20), findings },
    );
  }
  return okResult({ latest: r.value.latest, heads: r.value.heads.length, findings: 0 });
}
