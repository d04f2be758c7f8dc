/**
 * `registry` commands of the transitions feature (docs/lifecycle.md): activate, suspend, resume, revoke, decommission
 * (one device, or a batch over a work order or serial range for revoke/suspend/resume), release and block
 * (identifier blocks), history. The admin or the security officer (`--as`). Imports core/ and registry/cli/; the
 * lifecycle service when a command runs.
 */
import { flagOn, type OptionTable, type ParsedArgs } from '../../core/cli/program.js';
import { isRevocationReason, REVOCATION_REASONS, type LifecycleEvent } from '../../core/lifecycle.js';
import type { BatchEvent } from './service.js';
import type { DeviceLifecycleView } from './views.js';
import {
  given,
  JSON_OPTION,
  usage,
  type Out,
  type Outcome,
  type RegistryCommand,
  type RegistryEnv,
} from '../cli/command.js';
import { answer, reportGuided } from '../cli/report.js';

const SERIAL = { name: 'SERIAL', help: 'the serial number or chip id' } as const;
const BATCH_OPTIONS: OptionTable = {
  'work-order': { type: 'string', arg: 'W', help: 'every device of this work order (a batch; no SERIAL)' },
  'serial-range': { type: 'string', arg: 'A..B', help: 'every device with A <= serial <= B (string order; a batch)' },
  'dry-run': { type: 'boolean', help: 'list what a batch would change, change nothing' },
};

function printDevice(out: Out, d: DeviceLifecycleView): void {
  out.log(
    `device ${d.serialNumber} (chip ${d.chipId}, station ${d.stationId}, work order ${d.workOrder}): ${d.state} since ${d.stateSince}`,
  );
  for (const c of d.credentials)
    out.log(
      `  credential ${c.version}  serial ${c.serial}  ${c.status}${c.reason ? ` (${c.reason})` : ''}  valid to ${c.notAfter || '-'}`,
    );
}

type TransitionEvent = Exclude<LifecycleEvent, 'rotate'>;

/** One device's transition: the reason it needs (suspend, revoke), then the service. */
async function one(a: ParsedArgs, env: RegistryEnv, event: TransitionEvent, key: string): Promise<Outcome> {
  if (given(a, 'work-order') || given(a, 'serial-range'))
    return usage(`${event}: give either SERIAL or --work-order / --serial-range, not both`);
  const reason = given(a, 'reason') ?? null;
  if (event === 'suspend' && !reason) return usage('suspend needs --reason R (why the device is on hold)');
  if (event === 'revoke') {
    if (!reason) return usage(`revoke needs --reason (${REVOCATION_REASONS.join('|')})`);
    if (!isRevocationReason(reason))
      return usage(`unknown revocation reason ${reason}: use one of ${REVOCATION_REASONS.join(', ')}`);
  }
  if (flagOn(a, 'dry-run')) return usage('--dry-run is for the batch operations (--work-order / --serial-range)');
  const { applyTransition } = await import('./service.js');
  const r = await applyTransition(env.ctx, env.role, key, event, reason);
  return answer(a, env.out, r, reportGuided, (d) => printDevice(env.out, d));
}

/** A batch over `--work-order` and/or `--serial-range`. */
async function batch(a: ParsedArgs, env: RegistryEnv, event: BatchEvent): Promise<Outcome> {
  const wo = given(a, 'work-order');
  const range = given(a, 'serial-range');
  const reason = given(a, 'reason');
  if (!wo && !range)
    return usage(`${event} needs a SERIAL, or --work-order W / --serial-range A..B for a batch ${event}`);
  if (event === 'revoke' && (!reason || !isRevocationReason(reason)))
    return usage(`revoke needs --reason, one of ${REVOCATION_REASONS.join(', ')}`);
  if (event === 'suspend' && !reason) return usage('suspend needs --reason R (why the devices are on hold)');
  let serialRange: [string, string] | undefined;
  if (range) {
    const m = /^([^.]+)\.\.([^.]+)$/.exec(range);
    if (!m || m[1]! > m[2]!) return usage('--serial-range must be A..B with A <= B (inclusive, string order)');
    serialRange = [m[1]!, m[2]!];
  }
  const dryRun = flagOn(a, 'dry-run');
  const selector = { ...(wo ? { workOrder: wo } : {}), ...(serialRange ? { serialRange } : {}) };
  const { batchTransition } = await import('./service.js');
  const r = await batchTransition(env.ctx, env.role, selector, event, reason ?? null, dryRun);
  return answer(a, env.out, r, reportGuided, (b) => {
    const done = { revoke: 'revoked', suspend: 'suspended', resume: 'resumed' }[event];
    env.out.log(
      `${dryRun ? `dry run: would ${event}` : done} ${b.changed.length} device(s)${b.skipped.length ? `, ${b.skipped.length} skipped` : ''}`,
    );
    for (const s of b.changed) env.out.log(`  ${s}`);
    for (const s of b.skipped) env.out.log(`  skipped ${s.serialNumber} (${s.state})`);
    if (dryRun) env.out.log('nothing was changed (run again without --dry-run)');
  });
}

/** A transition command: one SERIAL, or (revoke, suspend, resume) a batch when no SERIAL is given. */
function transition(event: TransitionEvent, summary: string, reason: string, details?: string): RegistryCommand {
  const batchable = event === 'revoke' || event === 'suspend' || event === 'resume';
  return {
    name: event,
    summary,
    ...(details ? { details } : {}),
    options: {
      reason: { type: 'string', arg: 'R', help: reason },
      ...(batchable ? BATCH_OPTIONS : {}),
      ...JSON_OPTION,
    },
    positionals: [{ ...SERIAL, required: !batchable }],
    opens: 'registry',
    hsm: true, // a transition re-signs the station's CRL
    acting: 'admin-or-officer',
    async run(a, env) {
      const key = a.positionals[0];
      if (batchable && key === undefined) return batch(a, env, event);
      if (!key) return usage(`${event} needs exactly one SERIAL (serial number or chip id)`);
      return one(a, env, event, key);
    },
  };
}

const REASONS = REVOCATION_REASONS.join('|');

/** `registry <event> --help`: the two forms of a batchable transition. */
function batchForms(event: BatchEvent, reason: string): string {
  const r = reason ? ` ${reason}` : '';
  return [
    'forms:',
    `  registry ${event} SERIAL${r}`,
    `  registry ${event} --work-order W | --serial-range A..B${r} [--dry-run]   (a batch)`,
  ].join('\n');
}

const release: RegistryCommand = {
  name: 'release',
  summary: 'lift the blocks on a device (its serial and chip id)',
  options: {
    reason: { type: 'string', arg: 'R', help: 'why (recorded in the lifecycle log)', required: true },
    ...JSON_OPTION,
  },
  positionals: [{ ...SERIAL, required: true }],
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    const key = a.positionals[0];
    if (!key) return usage('release needs exactly one SERIAL');
    const reason = given(a, 'reason');
    if (!reason) return usage('release needs --reason R (recorded in the lifecycle log)');
    const { releaseDevice } = await import('./service.js');
    return answer(a, out, await releaseDevice(ctx, role, key, reason), reportGuided, (v) =>
      out.log(`released ${v.serialNumber} (${v.released} block(s) lifted)`),
    );
  },
};

const block: RegistryCommand = {
  name: 'block',
  summary: 'block a serial number or chip id: its records are refused until registry release',
  details: 'Give exactly one of --serial and --chip-id.',
  options: {
    serial: { type: 'string', arg: 'S', help: 'the serial number to block' },
    'chip-id': { type: 'string', arg: 'C', help: 'the chip id to block' },
    reason: { type: 'string', arg: 'R', help: 'why (recorded in the lifecycle log)', required: true },
    ...JSON_OPTION,
  },
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    const serial = given(a, 'serial');
    const chip = given(a, 'chip-id');
    const reason = given(a, 'reason');
    if ((serial === undefined) === (chip === undefined) || !reason)
      return usage('block needs --serial S or --chip-id C (one of them) and --reason R');
    const { blockIdentifier } = await import('./service.js');
    const r = await blockIdentifier(ctx, role, serial ? 'serial' : 'chipId', (serial ?? chip)!, reason);
    return answer(a, out, r, reportGuided, (v) =>
      out.log(`blocked ${v.kind} ${v.value}: its records are refused until "registry release"`),
    );
  },
};

const history: RegistryCommand = {
  name: 'history',
  summary: "a device's state, credentials and lifecycle events",
  options: { ...JSON_OPTION },
  positionals: [{ ...SERIAL, required: true }],
  opens: 'registry',
  hsm: false,
  acting: 'admin-or-officer',
  async run(a, { ctx, out }) {
    const key = a.positionals[0];
    if (!key) return usage('history needs exactly one SERIAL');
    const { deviceHistory } = await import('./service.js');
    return answer(a, out, await deviceHistory(ctx, key), reportGuided, (h) => {
      printDevice(out, h);
      for (const e of h.events as Record<string, unknown>[])
        out.log(
          `  #${String(e['seq'])} ${String(e['ts'])} ${String(e['type'])}${e['from'] ? ` ${String(e['from'])} -> ${String(e['to'])}` : ''}${e['actor'] ? ` by ${String(e['actor'])}` : ''}${e['reason'] ? ` (${String(e['reason'])})` : ''}`,
        );
    });
  },
};

/** The transitions feature's commands, in `registry --help` order. */
export const TRANSITION_COMMANDS: readonly RegistryCommand[] = [
  transition('activate', 'mark a provisioned device as in service', 'why (recorded in the lifecycle log)'),
  transition(
    'suspend',
    'put a device on hold (certificateHold), or a batch: an incident hold',
    'why the device is on hold (required)',
    batchForms('suspend', '--reason R'),
  ),
  transition(
    'resume',
    'lift a hold (a device, or a batch)',
    'why (recorded in the lifecycle log)',
    batchForms('resume', ''),
  ),
  transition(
    'revoke',
    "revoke a device's credentials (a device, or a batch)",
    `the reason (required): ${REASONS}`,
    batchForms('revoke', '--reason R'),
  ),
  transition('decommission', 'take a device out of service for good', 'why (recorded in the lifecycle log)'),
  release,
  history,
  block,
];
