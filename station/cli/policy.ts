/**
 * `station policy`: the registry policy and quotas in force (station/lifecycle), optionally pulled from the registry
 * or applied from files a supervisor carried. Imports core/, station/ (engine) and sibling command modules.
 */
import { flagOn, str, type Io, type ParsedArgs } from '../../core/cli/program.js';
import type { Engine } from '../engine.js';
import { engineCommand, readArgFile, type StationCommand } from './context.js';
import { describeError, EXIT } from './exit.js';

/** `station policy`. */
export const policyCommand: StationCommand = {
  name: 'policy',
  summary: 'show the registry policy and quotas in force; pull them, or apply them from files',
  options: {
    pull: { type: 'boolean', help: 'pull the policy and quotas from the registry first' },
    'policy-file': { type: 'string', arg: 'F', help: 'apply the signed policy in F (JWS, or JSON with a jws field)' },
    'quotas-file': { type: 'string', arg: 'F', help: 'apply the signed quotas in F (JWS, or JSON with a jws field)' },
    json: { type: 'boolean', help: 'the state as JSON' },
  },
  run: engineCommand((engine, args, o) => cmdPolicy(engine, args, o)),
};

/** The policy and quotas: files applied, then pulled, then shown. */
async function cmdPolicy(engine: Engine, args: ParsedArgs, o: Io): Promise<number> {
  const lc = engine.lifecycle;
  const problems: string[] = [];
  for (const [flag, apply] of [
    ['policy-file', lc.applyPolicy],
    ['quotas-file', lc.applyQuotas],
  ] as const) {
    const f = str(args, flag);
    if (!f) continue;
    const text = readArgFile(f, o);
    if (text === null) return EXIT.usage;
    const r = await apply(text.trim().startsWith('{') ? String((JSON.parse(text) as { jws?: unknown }).jws) : text);
    if (!r.ok) problems.push(describeError(r.error));
  }
  if (flagOn(args, 'pull')) {
    const r = await lc.pull();
    if (!r.ok) problems.push(describeError(r.error));
  }
  const st = lc.status();
  if (flagOn(args, 'json')) o.out(JSON.stringify({ ...st, problems }, null, 2));
  else {
    o.out(
      st.policyVersion === null
        ? 'policy: none (no policy from the registry yet)'
        : `policy version ${st.policyVersion} issued ${st.policyIssuedAt} (fetched ${st.policyFetchedAt})`,
    );
    o.out(
      `  revoked operators ${st.revokedOperators}, blocked serials ${st.blockedSerials}, blocked chip ids ${st.blockedChipIds}` +
        (st.firmwareOverrides.length ? `, firmware set for ${st.firmwareOverrides.join(', ')}` : ''),
    );
    if (st.profileOverrides.length) o.out(`  certificate profile overrides for ${st.profileOverrides.join(', ')}`);
    if (st.reenrollment)
      o.out(
        `  re-enrolment: certificate lifetime ${st.reenrollment.certificateLifetimeSeconds} s, rotate ${st.reenrollment.rotateBeforeSeconds} s before expiry`,
      );
    if (st.stationRevoked)
      o.out(
        `  REVOKED: this station has been revoked by headquarters${st.stationRevokedAt ? ` at ${st.stationRevokedAt}` : ''} (${st.stationRevokedBy === 'station-status' ? 'signed answer of the registry, kept' : 'policy'}); it refuses to provision (contact your supervisor)`,
      );
    else if (st.registryConfirmedActiveAt)
      o.out(`  the registry confirmed this station active at ${st.registryConfirmedActiveAt} (signed)`);
    o.out(
      `  device certificates: CRL ${st.revocationUrls?.crl ?? '(none)'}, OCSP ${st.revocationUrls?.ocsp ?? '(none)'}`,
    );
    o.out(
      st.quotaVersion === null
        ? `quotas: none (${st.requireQuota ? 'work orders without a quota are refused' : 'unlimited, with a warning'})`
        : `quotas version ${st.quotaVersion}`,
    );
    for (const q of st.quotas)
      o.out(
        `  ${q.workOrder.padEnd(14)} ${q.quantity === null ? 'no quota' : `quota ${q.quantity}`}: ${q.committed} provisioned, ${q.reserved} in progress, ${q.released} released, ${q.scrapped} scrapped${q.remaining === null ? '' : `, ${q.remaining} left`}`,
      );
    o.out(
      `revocation requests: ${st.revocations.queued} queued, ${st.revocations.sent} sent, ${st.revocations.acknowledged} acknowledged`,
    );
    for (const p of problems) o.err(p);
  }
  return problems.length ? EXIT.boardFailed : EXIT.ok;
}
