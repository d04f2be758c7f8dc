/**
 * `registry` identity lifecycle subcommands (docs/lifecycle.md, docs/registry-api.md "Lifecycle"): device
 * transitions, batch revoke, release, history, event-log verification, CRL export, quotas, operator revocation,
 * identifier blocks, policy settings, delegated revocation signers (all through the service functions, with the
 * acting role: admin, or with `--as security-officer` and that role's token).
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { fromBase64Url } from '../../core/bytes.js';
import { isRevocationReason, REVOCATION_REASONS } from '../../core/lifecycle.js';
import { ProfileOverridesSchema } from '../../core/pki/device-cert.js';
import { toPem } from '../../core/pki/pem.js';
import { ensureSecurityOfficerToken, readRegistryConfig, type RegistryConfig, type RegistryKeys } from '../keys.js';
import { zodMessage } from '../../core/hq/protocol.js';
import { KEY_ROTATION_ANSWER_FILE, KeyRotationRequestFileSchema } from '../../core/hq/key-rotation.js';
import { POLICY_SCHEMA } from '../../core/hq/policy.js';
import {
  applyTransition,
  checkRole,
  MAX_POLICY_DURATION_S,
  MIN_POLICY_DURATION_S,
  setPolicySetting,
  signedPolicy,
  type PolicyChange,
  type PolicyContent,
  batchTransition,
  type BatchEvent,
  blockIdentifier,
  currentCrl,
  deviceHistory,
  releaseDevice,
  revokeOperator,
  setQuota,
  stationKeyHistory,
  stationKeyRotation,
  reconcileLifecycle,
  revocationSignerList,
  verifyLifecycleLog,
  type DeviceLifecycleView,
  type LifecycleConfig,
  type LifecycleContext,
} from './service.js';
import { writeFileAtomic } from '../../native/atomic-file.js';

/** Exit codes (the same as registry/cli.ts). */
const EXIT = { ok: 0, refused: 1, usage: 2, notReady: 3, internal: 70 } as const;

/** The lifecycle subcommands handled here. */
export const LIFECYCLE_COMMANDS: ReadonlySet<string> = new Set([
  'activate',
  'suspend',
  'resume',
  'revoke',
  'decommission',
  'release',
  'history',
  'verify-log',
  'crl',
  'quota',
  'revoke-operator',
  'block',
  'policy',
  'revocation-signers',
  // station key rotation (stationKeyCommand)
  'rotate-station-key',
  'station-keys',
  'reconcile',
]);

/** Commands the security officer may not run: admin-only over HTTP too (the same refusal). */
const ADMIN_ONLY: ReadonlyMap<string, string> = new Map([
  ['policy', 'policy needs the admin token'],
  ['reconcile', 'reconcile needs the admin role'],
]);

/** Environment variable with the security officer token for `--as security-officer` (or `--token-file`). */
export const TOKEN_ENV = 'LINE_STATION_REGISTRY_TOKEN';

/** Commands that only read the database (no HSM session needed). */
const READ_ONLY = new Set(['station-keys', 'history', 'verify-log', 'revocation-signers']);

/** Whether a lifecycle command needs the registry HSM opened in this process (to re-sign CRLs). */
export function lifecycleNeedsHsm(cmd: string): boolean {
  return !READ_ONLY.has(cmd);
}

export const LIFECYCLE_USAGE = `identity lifecycle (docs/lifecycle.md):
  activate        SERIAL
  suspend         SERIAL --reason R
  resume          SERIAL
  revoke          SERIAL --reason keyCompromise|superseded|cessationOfOperation|affiliationChanged|unspecified
  revoke          --work-order W | --serial-range A..B  --reason R [--dry-run]
  suspend         --work-order W | --serial-range A..B  --reason R [--dry-run]   (incident: certificateHold)
  resume          --work-order W | --serial-range A..B  [--dry-run]
  decommission    SERIAL
  release         SERIAL --reason R
  history         SERIAL
  verify-log
  crl             --station S --out FILE [--pem]
  quota set       --work-order W --station S --quantity N
  revoke-operator ID --reason R
  block           --serial S | --chip-id C  --reason R
  policy show
  policy set      [--firmware WO=SHA256[,SHA256...]]... [--profiles FILE] [--cert-lifetime DURATION]
                  [--rotate-before DURATION] [--dry-run]     (DURATION: <n>d or <n>h, 1h .. 100 years)
                  [--crl-url URL] [--ocsp-url URL]        (in device certificates; {stationId}; '' removes)
  revocation-signers [STATION]                            (delegated CRL/OCSP signers: station enroll --revocation-signer)
  rotate-station-key --request REQUEST.json [--out ANSWER.json]   (hand-carried station key rotation)
  station-keys    STATION                                 (current and replaced station keys, with times)
  reconcile       [--dry-run]   (apply the lifecycle to stored records that have none: repair for pre-v3 registries)
  all of them take --json; SERIAL may also be a chip id
  role: --as admin (default: local access to the data dir is the admin) | --as security-officer with its token
        in --token-file FILE or $${TOKEN_ENV} (policy, reconcile: admin only)
`;

/** parseArgs options added by the lifecycle commands. */
export const LIFECYCLE_OPTIONS = {
  reason: { type: 'string' },
  'serial-range': { type: 'string' },
  'dry-run': { type: 'boolean' },
  pem: { type: 'boolean' },
  quantity: { type: 'string' },
  serial: { type: 'string' },
  'chip-id': { type: 'string' },
  request: { type: 'string' },
  as: { type: 'string' },
  'token-file': { type: 'string' },
  firmware: { type: 'string', multiple: true },
  profiles: { type: 'string' },
  'cert-lifetime': { type: 'string' },
  'rotate-before': { type: 'string' },
  'crl-url': { type: 'string' },
  'ocsp-url': { type: 'string' },
} as const;

// ---------------------------------------------------------------- settings for serve and the CLI

export const DEFAULT_CRL_INTERVAL_S = 3600;

/**
 * The lifecycle settings of a data dir: the registry token, the security officer token (hashed), CRLs re-signed
 * every `crlIntervalS` (config, default 1 h) and valid for two intervals (CRL nextUpdate, OCSP nextUpdate).
 */
export function lifecycleSettings(
  cfg: RegistryConfig,
  keys: Pick<RegistryKeys, 'hsm' | 'securityOfficerToken'>,
): { lifecycle: LifecycleConfig; crlRefreshS: number } {
  const every = cfg.lifecycle?.crlIntervalS ?? DEFAULT_CRL_INTERVAL_S;
  return {
    crlRefreshS: every,
    lifecycle: {
      hsm: keys.hsm,
      crlIntervalS: 2 * every,
      ...(cfg.lifecycle?.certificateLifetimeDays !== undefined
        ? { certificateLifetimeDays: cfg.lifecycle.certificateLifetimeDays }
        : {}),
      ...(cfg.lifecycle?.rotateBeforeDays !== undefined ? { rotateBeforeDays: cfg.lifecycle.rotateBeforeDays } : {}),
      securityOfficerTokenSha256: createHash('sha256').update(keys.securityOfficerToken).digest(),
    },
  };
}

// ---------------------------------------------------------------- serve discovery (serve.json)

export const SERVE_FILE = 'serve.json';
const SERVE_SCHEMA = 'line-station/registry-serve/v1';
const ServeFileSchema = z.object({
  schema: z.literal(SERVE_SCHEMA),
  url: z.string().url(),
  pid: z.number().int().positive(),
  startedAt: z.string(),
});

/** `registry serve` announces its URL in `<dataDir>/serve.json` (removed when it stops). */
export function writeServeFile(dataDir: string, url: string, startedAt: string): void {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.hostname === '[::]') u.hostname = '[::1]';
  const file = resolve(dataDir, SERVE_FILE);
  const body = { schema: SERVE_SCHEMA, url: u.origin, pid: process.pid, startedAt };
  writeFileAtomic(file, JSON.stringify(body, null, 2) + '\n');
}

/** Remove serve.json if it is this process's. */
export function removeServeFile(dataDir: string): void {
  const file = resolve(dataDir, SERVE_FILE);
  try {
    const s = ServeFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (s.success && s.data.pid === process.pid) rmSync(file, { force: true });
  } catch {
    // not there or not ours
  }
}

// ---------------------------------------------------------------- running a command

export interface LifecycleCliEnv {
  readonly ctx: LifecycleContext;
  readonly dataDir: string;
  readonly adminToken?: string;
  readonly out: { log: (s: string) => void; err: (s: string) => void };
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** A hint telling the operator what to do about a refusal. */
function guidance(e: { code: string; message: string }): string | null {
  switch (e.code) {
    case 'AUTH_REQUIRED':
      return `give the security officer token with --token-file FILE or $${TOKEN_ENV}, or act as admin (no --as)`;
    case 'BODY_INVALID':
      if (/rotateBeforeSeconds/.test(e.message))
        return '--rotate-before must be shorter than the certificate lifetime ("registry policy show" shows it)';
      return null;
    case 'LIFECYCLE_TRANSITION_INVALID':
    case 'AUTH_FORBIDDEN':
      if (/needs the admin token/.test(e.message)) return 'only the admin may do this: run it without --as';
      if (/token/.test(e.message))
        return 'the security officer token is the file config.json "securityOfficerToken" names (default secrets/security-officer.token)';
      return '"registry history SERIAL" shows the current state; the allowed transitions are in docs/lifecycle.md';
    case 'NOT_FOUND':
      if (/no revocation signer/.test(e.message))
        return 'the station certifies the registry signer at enrolment: station enroll --registry URL --registry-cert registry.pem --revocation-signer';
      if (/not enrolled/.test(e.message)) return 'enrol the station first: registry enroll-station --id S --chain F';
      if (/no device/.test(e.message))
        return 'a device is known once its records are ingested (station sync, or registry import FILE)';
      if (/not blocked/.test(e.message)) return 'nothing to release: "registry history SERIAL" shows its state';
      return null;
    case 'STORE_UNAVAILABLE':
      return 'check the database (--db, config.json) and that it is reachable';
    default:
      return null;
  }
}

function report(env: LifecycleCliEnv, e: { code: string; message: string }): number {
  env.out.err(`error ${e.code}: ${e.message}`);
  const hint = guidance(e);
  if (hint) env.out.err(`  ${hint}`);
  if (e.code === 'STORE_UNAVAILABLE') return EXIT.notReady;
  if (e.code === 'INTERNAL') return /no HSM/.test(e.message) ? EXIT.notReady : EXIT.internal;
  return EXIT.refused;
}

function usage(env: LifecycleCliEnv, msg: string): number {
  env.out.err(`${msg}\n\n${LIFECYCLE_USAGE}`);
  return EXIT.usage;
}

function printDevice(env: LifecycleCliEnv, d: DeviceLifecycleView): void {
  env.out.log(
    `device ${d.serialNumber} (chip ${d.chipId}, station ${d.stationId}, work order ${d.workOrder}): ${d.state} since ${d.stateSince}`,
  );
  for (const c of d.credentials)
    env.out.log(
      `  credential ${c.version}  serial ${c.serial}  ${c.status}${c.reason ? ` (${c.reason})` : ''}  valid to ${c.notAfter || '-'}`,
    );
}

/** Run one lifecycle subcommand; returns the exit code. */
export async function runLifecycleCommand(
  cmd: string,
  rest: readonly string[],
  v: Values,
  env: LifecycleCliEnv,
): Promise<number> {
  const { ctx, out } = env;
  const str = (k: string) => (typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined);
  const json = (x: unknown) => out.log(JSON.stringify(x, null, 2));
  const asJson = v['json'] === true;
  const one = (): string | null => (rest.length === 1 && rest[0] ? rest[0] : null);
  const acting = actingRole(cmd, v, env);
  if ('code' in acting) return acting.code;
  const role = acting.role;

  switch (cmd) {
    case 'activate':
    case 'suspend':
    case 'resume':
    case 'decommission':
    case 'revoke': {
      if ((cmd === 'revoke' || cmd === 'suspend' || cmd === 'resume') && rest.length === 0)
        return batch(env, v, asJson, role, cmd);
      const key = one();
      if (!key) return usage(env, `${cmd} needs exactly one SERIAL (serial number or chip id)`);
      if (str('work-order') || str('serial-range'))
        return usage(env, `${cmd}: give either SERIAL or --work-order / --serial-range, not both`);
      const reason = str('reason') ?? null;
      if (cmd === 'suspend' && !reason) return usage(env, 'suspend needs --reason R (why the device is on hold)');
      if (cmd === 'revoke') {
        if (!reason) return usage(env, `revoke needs --reason (${REVOCATION_REASONS.join('|')})`);
        if (!isRevocationReason(reason))
          return usage(env, `unknown revocation reason ${reason}: use one of ${REVOCATION_REASONS.join(', ')}`);
      }
      if (v['dry-run']) return usage(env, '--dry-run is for the batch operations (--work-order / --serial-range)');
      const r = await applyTransition(ctx, role, key, cmd, reason);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else printDevice(env, r.value);
      return EXIT.ok;
    }
    case 'release': {
      const key = one();
      if (!key) return usage(env, 'release needs exactly one SERIAL');
      const reason = str('reason');
      if (!reason) return usage(env, 'release needs --reason R (recorded in the lifecycle log)');
      const r = await releaseDevice(ctx, role, key, reason);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else out.log(`released ${r.value.serialNumber} (${r.value.released} block(s) lifted)`);
      return EXIT.ok;
    }
    case 'history': {
      const key = one();
      if (!key) return usage(env, 'history needs exactly one SERIAL');
      const r = await deviceHistory(ctx, key);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else {
        printDevice(env, r.value);
        for (const e of r.value.events as Record<string, unknown>[])
          out.log(
            `  #${String(e['seq'])} ${String(e['ts'])} ${String(e['type'])}${e['from'] ? ` ${String(e['from'])} -> ${String(e['to'])}` : ''}${e['actor'] ? ` by ${String(e['actor'])}` : ''}${e['reason'] ? ` (${String(e['reason'])})` : ''}`,
          );
      }
      return EXIT.ok;
    }
    case 'reconcile': {
      if (rest.length) return usage(env, 'reconcile takes no arguments (only --dry-run)');
      const r = await reconcileLifecycle(ctx, role, v['dry-run'] === true);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else {
        for (const x of r.value.records) out.log(`  ${x.serialNumber}  record ${x.recordId}  station ${x.stationId}`);
        out.log(
          `${r.value.dryRun ? 'would apply' : 'applied'}: ${r.value.applied} credential(s) from ${r.value.pending} record(s) without lifecycle entries`,
        );
      }
      return EXIT.ok;
    }
    case 'verify-log': {
      if (rest.length) return usage(env, 'verify-log takes no arguments');
      const r = await verifyLifecycleLog(ctx);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else if (r.value.ok)
        out.log(`lifecycle log OK: ${r.value.entries} events, head #${r.value.head.seq} ${r.value.head.hash}`);
      else out.err(`lifecycle log BROKEN after ${r.value.entries} good events: ${JSON.stringify(r.value.failure)}`);
      return r.value.ok ? EXIT.ok : EXIT.refused;
    }
    case 'crl': {
      const station = str('station');
      const file = str('out');
      if (!station || !file || rest.length) return usage(env, 'crl needs --station S --out FILE [--pem]');
      const r = await currentCrl(ctx, station);
      if (!r.ok) return report(env, r.error);
      try {
        writeFileAtomic(file, v['pem'] ? toPem(r.value.der, 'X509 CRL') : r.value.der);
      } catch (e) {
        return report(env, {
          code: 'INPUT_INVALID',
          message: `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        });
      }
      const info = {
        stationId: station,
        crlNumber: r.value.crlNumber,
        thisUpdate: r.value.thisUpdate,
        nextUpdate: r.value.nextUpdate,
        format: v['pem'] ? 'pem' : 'der',
        out: resolve(file),
      };
      if (asJson) json(info);
      else
        out.log(
          `CRL #${info.crlNumber} of station ${station} (${info.thisUpdate} .. ${info.nextUpdate}) written to ${info.out} (${info.format.toUpperCase()})`,
        );
      return EXIT.ok;
    }
    case 'quota': {
      if (rest[0] !== 'set' || rest.length !== 1)
        return usage(env, 'quota set --work-order W --station S --quantity N');
      const wo = str('work-order');
      const station = str('station');
      const q = str('quantity');
      if (!wo || !station || q === undefined)
        return usage(env, 'quota set needs --work-order W --station S --quantity N');
      if (!/^[0-9]{1,9}$/.test(q)) return usage(env, '--quantity must be an integer 0..999999999');
      const r = await setQuota(ctx, role, wo, station, Number(q));
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else out.log(`quota: station ${station} may provision ${r.value.quantity} of work order ${wo}`);
      return EXIT.ok;
    }
    case 'revoke-operator': {
      const id = one();
      if (!id) return usage(env, 'revoke-operator needs exactly one operator ID');
      const reason = str('reason');
      if (!reason) return usage(env, 'revoke-operator needs --reason R');
      const r = await revokeOperator(ctx, role, id, reason);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else out.log(`operator ${id} revoked at ${r.value.revokedAt}: records signed after that are refused`);
      return EXIT.ok;
    }
    case 'block': {
      const serial = str('serial');
      const chip = str('chip-id');
      const reason = str('reason');
      if (rest.length || (serial === undefined) === (chip === undefined) || !reason)
        return usage(env, 'block needs --serial S or --chip-id C (one of them) and --reason R');
      const r = await blockIdentifier(ctx, role, serial ? 'serial' : 'chipId', (serial ?? chip)!, reason);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else out.log(`blocked ${r.value.kind} ${r.value.value}: its records are refused until "registry release"`);
      return EXIT.ok;
    }
    case 'policy':
      if (rest[0] === 'show' && rest.length === 1) {
        if (POLICY_SET_OPTIONS.some((k) => v[k] !== undefined))
          return usage(
            env,
            `policy show takes only --json (${POLICY_SET_OPTIONS.map((k) => `--${k}`).join(', ')}: policy set)`,
          );
        return policyShow(env, asJson);
      }
      if (rest[0] === 'set' && rest.length === 1) return policySet(env, v, role, asJson);
      return usage(
        env,
        'policy show | policy set [--firmware WO=SHA256,...] [--profiles FILE] [--cert-lifetime D] [--rotate-before D] [--dry-run]',
      );
    case 'revocation-signers':
      return revocationSigners(rest, env, asJson);
    case 'rotate-station-key':
    case 'station-keys':
      return stationKeyCommand(cmd, rest, v, env, role);
    default:
      return usage(env, `unknown lifecycle command ${cmd}`);
  }
}

async function batch(
  env: LifecycleCliEnv,
  v: Values,
  asJson: boolean,
  role: 'admin' | 'security-officer',
  event: BatchEvent,
): Promise<number> {
  const wo = typeof v['work-order'] === 'string' ? v['work-order'] : undefined;
  const range = typeof v['serial-range'] === 'string' ? v['serial-range'] : undefined;
  const reason = typeof v['reason'] === 'string' && v['reason'] !== '' ? v['reason'] : undefined;
  if (!wo && !range)
    return usage(env, `${event} needs a SERIAL, or --work-order W / --serial-range A..B for a batch ${event}`);
  if (event === 'revoke' && (!reason || !isRevocationReason(reason)))
    return usage(env, `revoke needs --reason, one of ${REVOCATION_REASONS.join(', ')}`);
  if (event === 'suspend' && !reason) return usage(env, 'suspend needs --reason R (why the devices are on hold)');
  let serialRange: [string, string] | undefined;
  if (range) {
    const m = /^([^.]+)\.\.([^.]+)$/.exec(range);
    if (!m || m[1]! > m[2]!) return usage(env, '--serial-range must be A..B with A <= B (inclusive, string order)');
    serialRange = [m[1]!, m[2]!];
  }
  const dryRun = v['dry-run'] === true;
  const r = await batchTransition(
    env.ctx,
    role,
    { ...(wo ? { workOrder: wo } : {}), ...(serialRange ? { serialRange } : {}) },
    event,
    reason ?? null,
    dryRun,
  );
  if (!r.ok) return report(env, r.error);
  if (asJson) env.out.log(JSON.stringify(r.value, null, 2));
  else {
    const done = { revoke: 'revoked', suspend: 'suspended', resume: 'resumed' }[event];
    env.out.log(
      `${dryRun ? `dry run: would ${event}` : done} ${r.value.changed.length} device(s)${r.value.skipped.length ? `, ${r.value.skipped.length} skipped` : ''}`,
    );
    for (const s of r.value.changed) env.out.log(`  ${s}`);
    for (const s of r.value.skipped) env.out.log(`  skipped ${s.serialNumber} (${s.state})`);
    if (dryRun) env.out.log('nothing was changed (run again without --dry-run)');
  }
  return EXIT.ok;
}

/** `registry revocation-signers [STATION]`: the delegated signers (active, pending, replaced) with their certificates. */
async function revocationSigners(rest: readonly string[], env: LifecycleCliEnv, asJson: boolean): Promise<number> {
  if (rest.length > 1) return usage(env, 'revocation-signers [STATION] [--json]');
  const r = await revocationSignerList(env.ctx, rest[0] ?? null);
  if (!r.ok) return report(env, r.error);
  if (asJson) env.out.log(JSON.stringify(r.value, null, 2));
  else if (!r.value.length) env.out.log('no revocation signers (station enroll --revocation-signer creates one)');
  else
    for (const x of r.value)
      env.out.log(
        `${x.stationId} ${x.state} request ${x.requestId} key "${x.keyLabel}" requested ${x.requestedAt}` +
          (x.certificateSha256 ? ` certificate sha256 ${x.certificateSha256} installed ${x.installedAt}` : ''),
      );
  return EXIT.ok;
}

// ---------------------------------------------------------------- acting role

/**
 * The role a command acts as: admin (the default: whoever can read the data dir holds the admin token and the
 * HSM PIN anyway), or the security officer, proven by its token (`--token-file` or $LINE_STATION_REGISTRY_TOKEN)
 * with the same check as the HTTP bearer (checkRole). Admin-only commands then refuse it as over HTTP.
 */
function actingRole(
  cmd: string,
  v: Values,
  env: LifecycleCliEnv,
): { role: 'admin' | 'security-officer' } | { code: number } {
  const as = v['as'] ?? 'admin';
  const file = typeof v['token-file'] === 'string' ? v['token-file'] : undefined;
  if (as !== 'admin' && as !== 'security-officer')
    return { code: usage(env, `--as must be admin or security-officer, not ${String(as)}`) };
  if (as === 'admin') {
    if (file !== undefined) return { code: usage(env, '--token-file is for --as security-officer') };
    return { role: 'admin' };
  }
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (e) {
      return {
        code: report(env, {
          code: 'AUTH_REQUIRED',
          message: `cannot read --token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        }),
      };
    }
  } else token = process.env[TOKEN_ENV]?.trim();
  if (!token)
    return {
      code: report(env, {
        code: 'AUTH_REQUIRED',
        message: `acting as the security officer needs its token (--token-file FILE or $${TOKEN_ENV})`,
      }),
    };
  const cfg = readRegistryConfig(env.dataDir);
  if (!cfg.ok) return { code: report(env, { code: 'CONFIG_INVALID', message: cfg.error.message }) };
  const so = ensureSecurityOfficerToken(env.dataDir, cfg.value);
  if (!so.ok) return { code: report(env, { code: 'CONFIG_INVALID', message: so.error.message }) };
  let adminTokenSha256: Uint8Array | undefined;
  try {
    const admin = readFileSync(resolve(env.dataDir, cfg.value.adminToken.file), 'utf8').trim();
    adminTokenSha256 = createHash('sha256').update(admin).digest();
  } catch {
    // unreadable admin token: it then cannot match either
  }
  const checked = checkRole(
    {
      ...env.ctx,
      ...(adminTokenSha256 ? { adminTokenSha256 } : {}),
      lifecycle: {
        ...env.ctx.lifecycle,
        securityOfficerTokenSha256: createHash('sha256').update(so.value).digest(),
      },
    },
    `Bearer ${token}`,
  );
  if (!checked.ok || checked.value !== 'security-officer')
    return {
      code: report(env, {
        code: 'AUTH_FORBIDDEN',
        message: checked.ok
          ? 'that is the admin token: --as security-officer needs the security officer token (or act as admin: no --as)'
          : `the token given (${file ? `--token-file ${file}` : `$${TOKEN_ENV}`}) is not this registry's security officer token`,
      }),
    };
  const adminOnly = ADMIN_ONLY.get(cmd);
  if (adminOnly) return { code: report(env, { code: 'AUTH_FORBIDDEN', message: adminOnly }) };
  return { role: 'security-officer' };
}

// ---------------------------------------------------------------- policy

const POLICY_SET_OPTIONS = [
  'firmware',
  'profiles',
  'cert-lifetime',
  'rotate-before',
  'crl-url',
  'ocsp-url',
  'dry-run',
] as const;

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

function printPolicy(env: LifecycleCliEnv, p: PolicyContent): void {
  const log = env.out.log;
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

async function policyShow(env: LifecycleCliEnv, asJson: boolean): Promise<number> {
  const r = await signedPolicy(env.ctx);
  if (!r.ok) return report(env, r.error);
  const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(r.value.jws.split('.')[1] ?? ''))) as {
    version: number;
    issuedAt: string;
  } & PolicyContent;
  if (asJson) env.out.log(JSON.stringify({ version: r.value.version, policy: payload }, null, 2));
  else {
    env.out.log(
      `policy version ${payload.version} of registry ${env.ctx.registryId} (as signed at ${payload.issuedAt})`,
    );
    printPolicy(env, payload);
  }
  return EXIT.ok;
}

async function policySet(
  env: LifecycleCliEnv,
  v: Values,
  role: 'admin' | 'security-officer',
  asJson: boolean,
): Promise<number> {
  const change: { -readonly [K in keyof PolicyChange]: PolicyChange[K] } = {};
  const fw = v['firmware'];
  if (fw !== undefined) {
    const byWo: Record<string, string[]> = {};
    for (const spec of Array.isArray(fw) ? fw : [String(fw)]) {
      const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=(.*)$/.exec(spec);
      if (!m) return usage(env, `--firmware ${spec}: expected WO=SHA256[,SHA256...] (WO= clears the work order)`);
      const [, wo, list] = m as unknown as [string, string, string];
      if (Object.hasOwn(byWo, wo)) return usage(env, `--firmware: work order ${wo} given twice`);
      const digests = list === '' ? [] : list.split(',').map((d) => d.trim().toLowerCase());
      const bad = digests.find((d) => !/^[0-9a-f]{64}$/.test(d));
      if (bad !== undefined)
        return usage(env, `--firmware ${wo}: ${bad || '(empty)'} is not a hex SHA-256 (64 digits)`);
      byWo[wo] = [...new Set(digests)];
    }
    change.firmwareWorkOrders = byWo;
  }
  const profiles = typeof v['profiles'] === 'string' ? v['profiles'] : undefined;
  if (profiles !== undefined) {
    let parsed: unknown;
    try {
      const raw = readFileSync(profiles);
      if (raw.length > 256 * 1024)
        return report(env, { code: 'INPUT_INVALID', message: `${profiles}: larger than 256 KiB` });
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return report(env, {
        code: 'INPUT_INVALID',
        message: `${profiles}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      });
    }
    const p = ProfileOverridesSchema.safeParse(parsed);
    if (!p.success)
      return report(env, {
        code: 'INPUT_INVALID',
        message: `${profiles}: not certificate profile overrides (${zodMessage(p.error)})`,
      });
    change.profileOverrides = p.data;
  }
  const reenrollment: { certificateLifetimeSeconds?: number; rotateBeforeSeconds?: number } = {};
  for (const [flag, key] of [
    ['cert-lifetime', 'certificateLifetimeSeconds'],
    ['rotate-before', 'rotateBeforeSeconds'],
  ] as const) {
    const given = v[flag];
    if (given === undefined) continue;
    const secs = typeof given === 'string' ? parseDuration(given) : null;
    if (secs === null)
      return usage(env, `--${flag} ${String(given)}: expected <n>d or <n>h between 1h and 100 years (36500d)`);
    reenrollment[key] = secs;
  }
  if (
    reenrollment.certificateLifetimeSeconds !== undefined &&
    reenrollment.rotateBeforeSeconds !== undefined &&
    reenrollment.rotateBeforeSeconds >= reenrollment.certificateLifetimeSeconds
  )
    return usage(env, '--rotate-before must be shorter than --cert-lifetime');
  if (Object.keys(reenrollment).length) change.reenrollment = reenrollment;
  const crlUrl = v['crl-url'];
  const ocspUrl = v['ocsp-url'];
  if (typeof crlUrl === 'string' || typeof ocspUrl === 'string') {
    // Merged into the templates in force (a dry run of no change answers the current content).
    const cur = await setPolicySetting(env.ctx, role, {}, true);
    if (!cur.ok) return report(env, cur.error);
    const urls: Record<string, string> = { ...cur.value.content.revocationUrls };
    for (const [k, given] of [
      ['crl', crlUrl],
      ['ocsp', ocspUrl],
    ] as const)
      if (given === '') delete urls[k];
      else if (typeof given === 'string') urls[k] = given;
    change.revocationUrls = urls;
  }
  if (!Object.keys(change).length)
    return usage(
      env,
      'policy set needs at least one of --firmware, --profiles, --cert-lifetime, --rotate-before, --crl-url, --ocsp-url',
    );
  const dryRun = v['dry-run'] === true;
  const r = await setPolicySetting(env.ctx, role, change, dryRun);
  if (!r.ok) return report(env, r.error);
  const { version, changed, content } = r.value;
  if (asJson)
    env.out.log(
      JSON.stringify(
        {
          dryRun,
          changed,
          version,
          policy: { schema: POLICY_SCHEMA, registryId: env.ctx.registryId, version, ...content },
        },
        null,
        2,
      ),
    );
  else {
    env.out.log(
      dryRun
        ? `dry run: the policy would be version ${version}${changed ? '' : ' (no change)'}`
        : `policy version ${version}${changed ? ' (stations get it at their next pull)' : ' (no change)'}`,
    );
    printPolicy(env, content);
    if (dryRun) env.out.log('nothing was changed (run again without --dry-run)');
  }
  return EXIT.ok;
}

// ---------------------------------------------------------------- station key rotation

/**
 * `registry rotate-station-key --request REQUEST.json [--out ANSWER.json]`: apply a hand-carried station key
 * rotation request (the station's `rotate-key --out` file) and write the signed answer file for `station
 * rotate-key --answer`; `registry station-keys STATION`: the station's current and replaced keys.
 */
async function stationKeyCommand(
  cmd: string,
  rest: readonly string[],
  v: Values,
  env: LifecycleCliEnv,
  role: 'admin' | 'security-officer',
): Promise<number> {
  const asJson = v['json'] === true;
  if (cmd === 'station-keys') {
    const id = rest.length === 1 ? rest[0] : undefined;
    if (!id) return usage(env, 'station-keys needs exactly one STATION id');
    const r = await stationKeyHistory(env.ctx, id);
    if (!r.ok) return report(env, r.error);
    if (asJson) env.out.log(JSON.stringify(r.value, null, 2));
    else {
      env.out.log(
        `station ${id}${r.value.revokedAt ? ` (revoked at ${r.value.revokedAt})` : ''}: ${r.value.keys.length} key(s)`,
      );
      for (const k of r.value.keys)
        env.out.log(
          `  ${k.replacedAt ? 'replaced' : 'current '}  ${k.certificateSha256}  serial ${k.serialNumber}  in use ${k.since} .. ${k.replacedAt ?? 'now'}  (valid to ${k.notAfter})`,
        );
    }
    return EXIT.ok;
  }
  const file = typeof v['request'] === 'string' ? v['request'] : undefined;
  const outFile = typeof v['out'] === 'string' ? v['out'] : undefined;
  if (!file || rest.length) return usage(env, 'rotate-station-key needs --request REQUEST.json [--out ANSWER.json]');
  let request: string;
  try {
    const raw = readFileSync(file);
    if (raw.length > 256 * 1024) return report(env, { code: 'INPUT_INVALID', message: `${file}: larger than 256 KiB` });
    const p = KeyRotationRequestFileSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!p.success)
      return report(env, {
        code: 'INPUT_INVALID',
        message: `${file}: not a station key rotation request (${zodMessage(p.error)})`,
      });
    request = p.data.request;
  } catch (e) {
    return report(env, {
      code: 'INPUT_INVALID',
      message: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    });
  }
  const r = await stationKeyRotation(env.ctx, request, { via: 'hand-carried', actor: role });
  if (!r.ok) return report(env, r.error);
  const answerFile = {
    schema: KEY_ROTATION_ANSWER_FILE,
    stationId: r.value.stationId,
    requestId: r.value.requestId,
    answer: r.value.answer,
  };
  if (outFile) {
    try {
      writeFileAtomic(outFile, JSON.stringify(answerFile, null, 2) + '\n');
    } catch (e) {
      return report(env, {
        code: 'INPUT_INVALID',
        message: `cannot write ${outFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      });
    }
  }
  if (asJson) env.out.log(JSON.stringify({ ...r.value, ...(outFile ? { out: resolve(outFile) } : {}) }, null, 2));
  else
    env.out.log(
      `station ${r.value.stationId}: key rotated${r.value.repeated ? ' (request applied before: same answer)' : ''} at ${r.value.rotatedAt}, ` +
        `certificate ${r.value.previousCertificateSha256.slice(0, 16)}... -> ${r.value.certificateSha256.slice(0, 16)}...\n` +
        (outFile
          ? `  answer written to ${resolve(outFile)}: give it to the station (station rotate-key --answer FILE)`
          : '  no --out given: the station needs the answer file (run again with --out ANSWER.json, same answer)'),
    );
  return EXIT.ok;
}
