/**
 * `registry` commands of the audit feature: verify-station (the audit heads a station anchored, and any rewritten or
 * forked history: docs/audit.md) and verify-log (the registry's own lifecycle event log, hash-chained). Imports
 * core/ and registry/cli/; the registry services when a command runs (`registry --help` loads none of them).
 */
import { flagOn } from '../../core/cli/program.js';
import type { StationAuditVerification } from './audit-anchor.js';
import { JSON_OPTION, printJson, usage, type Out, type RegistryCommand } from '../cli/command.js';
import { reportApi, reportGuided } from '../cli/report.js';

function printStationAudit(out: Out, a: StationAuditVerification): void {
  out.log(
    `station ${a.stationId}: ${a.heads.length} audit heads anchored, entries 1..${a.latest?.seq ?? 0}${a.latest ? ` (head ${a.latest.hash.slice(0, 16)}…)` : ''}`,
  );
  for (const f of a.findings)
    out.log(`  FINDING ${f.kind} at entry ${f.atSeq} (${f.detectedAt}, ${f.source} ${f.batchId}): ${f.message}`);
  for (const p of a.problems) out.log(`  PROBLEM ${p}`);
  out.log(a.ok ? 'audit anchoring OK: no rewritten or forked history' : 'audit anchoring: station FLAGGED');
}

const verifyStation: RegistryCommand = {
  name: 'verify-station',
  summary: 'the audit heads station S anchored, and any rewritten or forked history (exit 1 on a finding)',
  options: { ...JSON_OPTION },
  positionals: [{ name: 'S', help: 'the station id', required: true }],
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const id = a.positionals[0];
    if (!id) return usage('verify-station needs exactly one station id');
    const { verifyStationAudit } = await import('./audit-anchor.js');
    const r = await verifyStationAudit(ctx, id);
    if (!r.ok) return reportApi(out, r.error);
    const v = r.value;
    if (flagOn(a, 'json'))
      printJson(out, {
        stationId: v.stationId,
        ok: v.ok,
        latest: v.latest,
        anchoredEntries: v.anchoredEntries,
        heads: v.heads.map(({ jws: _jws, ...h }) => h),
        findings: v.findings,
        problems: v.problems,
      });
    else printStationAudit(out, v);
    return v.ok ? 'ok' : 'refused';
  },
};

const verifyLog: RegistryCommand = {
  name: 'verify-log',
  summary: "check the registry's lifecycle event log, hash-chained (exit 1 when broken)",
  options: { ...JSON_OPTION },
  opens: 'registry',
  hsm: false,
  acting: 'admin-or-officer',
  async run(a, { ctx, out }) {
    const { verifyLifecycleLog } = await import('../transitions/service.js');
    const r = await verifyLifecycleLog(ctx);
    if (!r.ok) return reportGuided(out, r.error);
    if (flagOn(a, 'json')) printJson(out, r.value);
    else if (r.value.ok)
      out.log(`lifecycle log OK: ${r.value.entries} events, head #${r.value.head.seq} ${r.value.head.hash}`);
    else out.err(`lifecycle log BROKEN after ${r.value.entries} good events: ${JSON.stringify(r.value.failure)}`);
    return r.value.ok ? 'ok' : 'refused';
  },
};

/** The audit feature's commands. */
export const AUDIT_COMMANDS: readonly RegistryCommand[] = [verifyStation, verifyLog];
