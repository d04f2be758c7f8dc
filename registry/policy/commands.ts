/**
 * `registry` commands of the policy feature (docs/lifecycle.md "Policy"): policy show / policy set (firmware per work
 * order, certificate profile overrides, certificate lifetimes, revocation URL templates; admin only) and quota set
 * (how many devices of a work order a station may provision). Imports core/, ./durations.ts and registry/cli/; the
 * lifecycle services when a command runs.
 */
import { readFileSync } from 'node:fs';
import { flagOn, list, str, type OptionTable, type ParsedArgs } from '../../core/cli/program.js';
import { fromBase64Url } from '../../core/bytes.js';
import { MAX_POLICY_DURATION_S, MIN_POLICY_DURATION_S } from './durations.js';
import type { PolicyChange, PolicyContent } from './policy.js';
import {
  fileProblem,
  given,
  JSON_OPTION,
  printJson,
  usage,
  type Out,
  type Outcome,
  type RegistryCommand,
  type RegistryEnv,
} from '../cli/command.js';
import { answer, reportGuided } from '../cli/report.js';

/** `<n>d` or `<n>h` in seconds, 1 h .. 100 years; null when malformed or out of range. */
export function parseDuration(s: string): number | null {
  const m = /^([1-9][0-9]{0,9})([dh])$/.exec(s.trim());
  if (!m) return null;
  const secs = Number(m[1]) * (m[2] === 'd' ? 86_400 : 3600);
  return secs >= MIN_POLICY_DURATION_S && secs <= MAX_POLICY_DURATION_S ? secs : null;
}

/** Seconds as `<n>d`, `<n>h` or `<n>s` (the largest exact unit). */
export function formatDuration(secs: number): string {
  if (secs % 86_400 === 0) return `${secs / 86_400}d`;
  if (secs % 3600 === 0) return `${secs / 3600}h`;
  return `${secs}s`;
}

const POLICY_SET_OPTIONS: OptionTable = {
  firmware: {
    type: 'string',
    multiple: true,
    arg: 'WO=SHA256,...',
    help: "the firmware a work order's boards must run (WO= clears it; repeat for more work orders)",
  },
  profiles: { type: 'string', arg: 'FILE', help: 'certificate profile overrides (JSON, by board profile id)' },
  'cert-lifetime': {
    type: 'string',
    arg: 'DURATION',
    help: 'device certificate lifetime: <n>d or <n>h, 1h .. 100 years',
  },
  'rotate-before': {
    type: 'string',
    arg: 'DURATION',
    help: 'devices re-enrol this long before expiry (< the lifetime)',
  },
  'crl-url': { type: 'string', arg: 'URL', help: "CRL URL template in device certificates ({stationId}; '' removes)" },
  'ocsp-url': { type: 'string', arg: 'URL', help: "OCSP URL template in device certificates ('' removes)" },
  'dry-run': { type: 'boolean', help: 'show the policy it would make, change nothing' },
};

function printPolicy(out: Out, p: PolicyContent): void {
  const log = out.log;
  log(
    `  re-enrolment: certificates valid ${formatDuration(p.reenrollment.certificateLifetimeSeconds)}, ` +
      `devices re-enrol ${formatDuration(p.reenrollment.rotateBeforeSeconds)} before expiry`,
  );
  const fw = Object.entries(p.firmware);
  if (!fw.length) log('  firmware: no overrides (the work order files decide)');
  for (const [wo, list] of fw) log(`  firmware ${wo}: ${list.join(', ')}`);
  const prof = Object.entries(p.profileOverrides);
  if (!prof.length) log('  certificate profile overrides: none');
  for (const [id, o] of prof) log(`  certificate profile ${id}: ${JSON.stringify(o)}`);
  const urls = p.revocationUrls;
  log(
    `  revocation URLs in device certificates: ${urls ? `CRL ${urls.crl ?? '(station config)'}, OCSP ${urls.ocsp ?? '(station config)'}` : "the stations' configured ones"}`,
  );
  log(`  revoked stations: ${p.revokedStations.map((x) => x.stationId).join(', ') || 'none'}`);
  log(`  revoked operators: ${p.revokedOperators.length}`);
  log(`  blocked: ${p.blocked.serials.length} serial(s), ${p.blocked.chipIds.length} chip id(s)`);
}

async function policyShow(a: ParsedArgs, env: RegistryEnv): Promise<Outcome> {
  const { signedPolicy } = await import('./policy.js');
  const r = await signedPolicy(env.ctx);
  if (!r.ok) return reportGuided(env.out, r.error);
  const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(r.value.jws.split('.')[1] ?? ''))) as {
    version: number;
    issuedAt: string;
  } & PolicyContent;
  if (flagOn(a, 'json')) printJson(env.out, { version: r.value.version, policy: payload });
  else {
    env.out.log(
      `policy version ${payload.version} of registry ${env.ctx.registryId} (as signed at ${payload.issuedAt})`,
    );
    printPolicy(env.out, payload);
  }
  return 'ok';
}

type Change = { -readonly [K in keyof PolicyChange]: PolicyChange[K] };

/** `--firmware WO=SHA256,...` (repeatable): the digests by work order, or a usage error. */
function firmwareChange(specs: readonly string[]): { firmware: Record<string, string[]> } | { outcome: Outcome } {
  const byWo: Record<string, string[]> = {};
  for (const spec of specs) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=(.*)$/.exec(spec);
    if (!m) return { outcome: usage(`--firmware ${spec}: expected WO=SHA256[,SHA256...] (WO= clears the work order)`) };
    const [, wo, list] = m as unknown as [string, string, string];
    if (Object.hasOwn(byWo, wo)) return { outcome: usage(`--firmware: work order ${wo} given twice`) };
    const digests = list === '' ? [] : list.split(',').map((d) => d.trim().toLowerCase());
    const bad = digests.find((d) => !/^[0-9a-f]{64}$/.test(d));
    if (bad !== undefined)
      return { outcome: usage(`--firmware ${wo}: ${bad || '(empty)'} is not a hex SHA-256 (64 digits)`) };
    byWo[wo] = [...new Set(digests)];
  }
  return { firmware: byWo };
}

/** `--profiles FILE`: certificate profile overrides (at most 256 KiB of JSON), or the refusal. */
async function profilesChange(
  file: string,
  out: Out,
): Promise<{ profiles: Change['profileOverrides'] } | { outcome: Outcome }> {
  let parsed: unknown;
  try {
    const raw = readFileSync(file);
    if (raw.length > 256 * 1024)
      return { outcome: reportGuided(out, { code: 'INPUT_INVALID', message: `${file}: larger than 256 KiB` }) };
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return { outcome: reportGuided(out, { code: 'INPUT_INVALID', message: `${file}: ${fileProblem(e)}` }) };
  }
  const [{ ProfileOverridesSchema }, { zodMessage }] = await Promise.all([
    import('../../core/pki/device-cert.js'),
    import('../../core/zod-message.js'),
  ]);
  const p = ProfileOverridesSchema.safeParse(parsed);
  if (!p.success)
    return {
      outcome: reportGuided(out, {
        code: 'INPUT_INVALID',
        message: `${file}: not certificate profile overrides (${zodMessage(p.error)})`,
      }),
    };
  return { profiles: p.data };
}

/** `--cert-lifetime` / `--rotate-before`: the re-enrolment settings given, or a usage error. */
function reenrollmentChange(a: ParsedArgs): { reenrollment: Change['reenrollment'] } | { outcome: Outcome } {
  const reenrollment: { certificateLifetimeSeconds?: number; rotateBeforeSeconds?: number } = {};
  for (const [flag, key] of [
    ['cert-lifetime', 'certificateLifetimeSeconds'],
    ['rotate-before', 'rotateBeforeSeconds'],
  ] as const) {
    const text = str(a, flag);
    if (text === undefined) continue;
    const secs = parseDuration(text);
    if (secs === null)
      return { outcome: usage(`--${flag} ${text}: expected <n>d or <n>h between 1h and 100 years (36500d)`) };
    reenrollment[key] = secs;
  }
  const { certificateLifetimeSeconds: life, rotateBeforeSeconds: before } = reenrollment;
  if (life !== undefined && before !== undefined && before >= life)
    return { outcome: usage('--rotate-before must be shorter than --cert-lifetime') };
  return { reenrollment: Object.keys(reenrollment).length ? reenrollment : undefined };
}

/** The policy change the options name, or the outcome refusing it. */
async function policyChange(a: ParsedArgs, env: RegistryEnv): Promise<{ change: Change } | { outcome: Outcome }> {
  const change: Change = {};
  if (a.values['firmware'] !== undefined) {
    const fw = firmwareChange(list(a, 'firmware'));
    if ('outcome' in fw) return fw;
    change.firmwareWorkOrders = fw.firmware;
  }
  const profiles = str(a, 'profiles');
  if (profiles !== undefined) {
    const p = await profilesChange(profiles, env.out);
    if ('outcome' in p) return p;
    change.profileOverrides = p.profiles;
  }
  const re = reenrollmentChange(a);
  if ('outcome' in re) return re;
  if (re.reenrollment) change.reenrollment = re.reenrollment;
  const crlUrl = str(a, 'crl-url');
  const ocspUrl = str(a, 'ocsp-url');
  if (crlUrl !== undefined || ocspUrl !== undefined) {
    // Merged into the templates in force (a dry run of no change answers the current content).
    const { setPolicySetting } = await import('./policy.js');
    const cur = await setPolicySetting(env.ctx, env.role, {}, true);
    if (!cur.ok) return { outcome: reportGuided(env.out, cur.error) };
    const urls: Record<string, string> = { ...cur.value.content.revocationUrls };
    for (const [k, url] of [
      ['crl', crlUrl],
      ['ocsp', ocspUrl],
    ] as const)
      if (url === '') delete urls[k];
      else if (url !== undefined) urls[k] = url;
    change.revocationUrls = urls;
  }
  return { change };
}

async function policySet(a: ParsedArgs, env: RegistryEnv): Promise<Outcome> {
  const c = await policyChange(a, env);
  if ('outcome' in c) return c.outcome;
  if (!Object.keys(c.change).length)
    return usage(
      'policy set needs at least one of --firmware, --profiles, --cert-lifetime, --rotate-before, --crl-url, --ocsp-url',
    );
  const dryRun = flagOn(a, 'dry-run');
  const [{ setPolicySetting }, { POLICY_SCHEMA }] = await Promise.all([
    import('./policy.js'),
    import('../../core/hq/policy.js'),
  ]);
  const r = await setPolicySetting(env.ctx, env.role, c.change, dryRun);
  if (!r.ok) return reportGuided(env.out, r.error);
  const { version, changed, content } = r.value;
  if (flagOn(a, 'json'))
    printJson(env.out, {
      dryRun,
      changed,
      version,
      policy: { schema: POLICY_SCHEMA, registryId: env.ctx.registryId, version, ...content },
    });
  else {
    env.out.log(
      dryRun
        ? `dry run: the policy would be version ${version}${changed ? '' : ' (no change)'}`
        : `policy version ${version}${changed ? ' (stations get it at their next pull)' : ' (no change)'}`,
    );
    printPolicy(env.out, content);
    if (dryRun) env.out.log('nothing was changed (run again without --dry-run)');
  }
  return 'ok';
}

const policy: RegistryCommand = {
  name: 'policy',
  summary: 'show the signed policy stations pull, or set it (admin only)',
  details: [
    'forms:',
    '  registry policy show [--json]',
    '  registry policy set [--firmware WO=SHA256[,SHA256...]]... [--profiles FILE] [--cert-lifetime DURATION]',
    '                      [--rotate-before DURATION] [--crl-url URL] [--ocsp-url URL] [--dry-run] [--json]',
    'DURATION: <n>d or <n>h, 1h .. 100 years. Stations get a new version at their next pull.',
  ].join('\n'),
  options: { ...POLICY_SET_OPTIONS, ...JSON_OPTION },
  positionals: [{ name: 'ACTION', help: 'show | set', required: true }],
  opens: 'registry',
  hsm: true,
  acting: { adminOnly: 'policy needs the admin token' },
  async run(a, env) {
    const [action, ...more] = a.positionals;
    if (action === 'show' && !more.length) {
      if (Object.keys(POLICY_SET_OPTIONS).some((k) => a.values[k] !== undefined))
        return usage(
          `policy show takes only --json (${Object.keys(POLICY_SET_OPTIONS)
            .map((k) => `--${k}`)
            .join(', ')}: policy set)`,
        );
      return policyShow(a, env);
    }
    if (action === 'set' && !more.length) return policySet(a, env);
    return usage(
      'policy show | policy set [--firmware WO=SHA256,...] [--profiles FILE] [--cert-lifetime D] [--rotate-before D] [--dry-run]',
    );
  },
};

const quota: RegistryCommand = {
  name: 'quota',
  summary: 'quota set: how many devices of a work order a station may provision',
  details: 'form: registry quota set --work-order W --station S --quantity N',
  options: {
    'work-order': { type: 'string', arg: 'W', help: 'the work order', required: true },
    station: { type: 'string', arg: 'S', help: 'the station', required: true },
    quantity: { type: 'string', arg: 'N', help: 'how many devices, 0..999999999', required: true },
    ...JSON_OPTION,
  },
  positionals: [{ name: 'ACTION', help: 'set', required: true }],
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    if (a.positionals[0] !== 'set') return usage('quota set --work-order W --station S --quantity N');
    const wo = given(a, 'work-order');
    const station = given(a, 'station');
    const q = given(a, 'quantity');
    if (!wo || !station || q === undefined) return usage('quota set needs --work-order W --station S --quantity N');
    if (!/^[0-9]{1,9}$/.test(q)) return usage('--quantity must be an integer 0..999999999');
    const { setQuota } = await import('./quotas.js');
    return answer(a, out, await setQuota(ctx, role, wo, station, Number(q)), reportGuided, (v) =>
      out.log(`quota: station ${station} may provision ${v.quantity} of work order ${wo}`),
    );
  },
};

const workOrder: RegistryCommand = {
  name: 'work-order',
  summary: 'work-order publish | withdraw | list: work orders signed to the stations with a quota for them',
  details:
    'forms: registry work-order publish --file WO.json | registry work-order withdraw --id W | registry work-order list\n' +
    'A published work order travels in the signed quotas of every station with a quota for it and takes the place\n' +
    'of the station\'s local file with the same id (docs/lifecycle.md "Work orders from headquarters").',
  options: {
    file: { type: 'string', arg: 'WO.json', help: 'the work order document (publish)' },
    id: { type: 'string', arg: 'W', help: 'the work order id (withdraw)' },
    ...JSON_OPTION,
  },
  positionals: [{ name: 'ACTION', help: 'publish | withdraw | list', required: true }],
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    const action = a.positionals[0];
    const { listWorkOrders, publishWorkOrder, withdrawWorkOrder } = await import('./work-orders.js');
    if (action === 'publish') {
      const file = given(a, 'file');
      if (!file) return usage('work-order publish needs --file WO.json');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        return usage(`work-order publish: cannot read ${file}: ${fileProblem(e)}`);
      }
      return answer(a, out, await publishWorkOrder(ctx, role, text, file), reportGuided, (v) =>
        out.log(
          `work order ${v.workOrder.id} ${v.changed ? 'published' : 'already published'} (sha256 ${v.sha256}): stations with a quota for it get it at their next pull`,
        ),
      );
    }
    if (action === 'withdraw') {
      const id = given(a, 'id');
      if (!id) return usage('work-order withdraw needs --id W');
      return answer(a, out, await withdrawWorkOrder(ctx, role, id), reportGuided, (v) =>
        out.log(`work order ${v.workOrder} withdrawn: stations use their local file of that id, if any`),
      );
    }
    if (action === 'list')
      return answer(a, out, await listWorkOrders(ctx), reportGuided, (v) => {
        if (v.length === 0) out.log('no work orders published');
        for (const w of v) out.log(`${w.workOrder.id.padEnd(24)} ${w.workOrder.product}  sha256 ${w.sha256}`);
      });
    return usage('work-order publish --file WO.json | withdraw --id W | list');
  },
};

/** The policy feature's commands. */
export const POLICY_COMMANDS: readonly RegistryCommand[] = [policy, quota, workOrder];
