/**
 * `registry` identity lifecycle subcommands (docs/lifecycle.md, docs/registry-api.md "Lifecycle"): device
 * transitions, batch revoke, release, history, event-log verification, CRL export, quotas, operator revocation,
 * identifier blocks (all through the service functions, as role admin), and the two escrow steps, which go to
 * the running `registry serve` of the data dir because the escrow transport key is a session object of its HSM.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { isRevocationReason, REVOCATION_REASONS } from '../../core/lifecycle.js';
import { toPem } from '../../core/pki/pem.js';
import type { RegistryConfig, RegistryKeys } from '../keys.js';
import type { ApiError } from '../service.js';
import {
  applyTransition,
  batchRevoke,
  blockIdentifier,
  currentCrl,
  deviceHistory,
  releaseDevice,
  revokeOperator,
  setQuota,
  verifyLifecycleLog,
  type DeviceLifecycleView,
  type LifecycleConfig,
  type LifecycleContext,
} from './service.js';

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
  'escrow-begin',
  'escrow-complete',
]);

/** Commands that only read the database (no HSM session needed). */
const READ_ONLY = new Set(['history', 'verify-log']);
/** Commands that talk to the running `registry serve`. */
const VIA_SERVER = new Set(['escrow-begin', 'escrow-complete']);

/** Whether a lifecycle command needs the registry HSM opened in this process (to re-sign CRLs). */
export function lifecycleNeedsHsm(cmd: string): boolean {
  return !READ_ONLY.has(cmd) && !VIA_SERVER.has(cmd);
}

/** Whether a lifecycle command runs against the serving registry instead of the database. */
export function lifecycleViaServer(cmd: string): boolean {
  return VIA_SERVER.has(cmd);
}

export const LIFECYCLE_USAGE = `identity lifecycle (role admin; docs/lifecycle.md):
  activate        SERIAL
  suspend         SERIAL --reason R
  resume          SERIAL
  revoke          SERIAL --reason keyCompromise|superseded|cessationOfOperation|affiliationChanged|unspecified
  revoke          --work-order W | --serial-range A..B  --reason R [--dry-run]
  decommission    SERIAL
  release         SERIAL --reason R
  history         SERIAL
  verify-log
  crl             --station S --out FILE [--pem]
  quota set       --work-order W --station S --quantity N
  revoke-operator ID --reason R
  block           --serial S | --chip-id C  --reason R
  escrow-begin    --station S --out transport.json        (needs the running registry serve, or --url)
  escrow-complete --station S FILE                        (FILE: the station's completion JSON)
  all of them take --json; SERIAL may also be a chip id
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
  url: { type: 'string' },
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
  const tmp = `${file}.tmp-${process.pid}`;
  const body = { schema: SERVE_SCHEMA, url: u.origin, pid: process.pid, startedAt };
  writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The URL of the running registry of this data dir, or a message saying how to get one. */
function serverUrl(dataDir: string, given: string | undefined): { url: string } | { error: string } {
  if (given) {
    try {
      return { url: new URL(given).origin };
    } catch {
      return { error: `--url ${given} is not a URL` };
    }
  }
  const file = resolve(dataDir, SERVE_FILE);
  const how =
    `the escrow transport key is a session object of the SERVING registry's HSM token: start ` +
    `"registry serve --data-dir ${dataDir}" and keep it running from escrow-begin to escrow-complete ` +
    `(or give --url of the serving registry)`;
  if (!existsSync(file)) return { error: `no running registry for ${dataDir}: ${how}` };
  try {
    const s = ServeFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    if (!alive(s.pid)) return { error: `the registry that wrote ${file} (pid ${s.pid}) is not running: ${how}` };
    return { url: s.url };
  } catch {
    return { error: `${file} is unreadable: ${how}` };
  }
}

// ---------------------------------------------------------------- escrow files

/** `registry escrow-begin --out` file (docs/lifecycle.md "Escrow files"). */
export const ESCROW_BEGIN_SCHEMA = 'line-station/ca-escrow-begin/v1';
/** The station's answer, read by `registry escrow-complete` (docs/lifecycle.md "Escrow files"). */
export const ESCROW_COMPLETE_SCHEMA = 'line-station/ca-escrow-complete/v1';

const B64U = z.string().regex(/^[A-Za-z0-9_-]+$/, 'base64url without padding');
const CompletionFileSchema = z
  .object({
    schema: z.literal(ESCROW_COMPLETE_SCHEMA).optional(),
    stationId: z.string().optional(),
    ephemeralPublicKeySpki: B64U,
    wrappedKey: B64U,
    publicKeySpki: B64U,
    transportKeySpki: B64U,
    signature: B64U,
  })
  .strip(); // other metadata a station may add is ignored: only the five fields above are sent on

// ---------------------------------------------------------------- running a command

export interface LifecycleCliEnv {
  readonly ctx: LifecycleContext;
  readonly dataDir: string;
  readonly adminToken?: string;
  readonly out: { log: (s: string) => void; err: (s: string) => void };
}

type Values = Record<string, string | boolean | undefined>;

/** A hint telling the operator what to do about a refusal. */
function guidance(e: { code: string; message: string }): string | null {
  switch (e.code) {
    case 'LIFECYCLE_TRANSITION_INVALID':
    case 'AUTH_FORBIDDEN':
      return '"registry history SERIAL" shows the current state; the allowed transitions are in docs/lifecycle.md';
    case 'NOT_FOUND':
      if (/not escrowed/.test(e.message))
        return 'escrow the station issuing CA key first: registry escrow-begin, then escrow-complete';
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

function writeAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, file);
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

  switch (cmd) {
    case 'activate':
    case 'suspend':
    case 'resume':
    case 'decommission':
    case 'revoke': {
      if (cmd === 'revoke' && rest.length === 0) return batch(env, v, asJson);
      const key = one();
      if (!key) return usage(env, `${cmd} needs exactly one SERIAL (serial number or chip id)`);
      if (cmd === 'revoke' && (str('work-order') || str('serial-range')))
        return usage(env, 'revoke: give either SERIAL or --work-order / --serial-range, not both');
      const reason = str('reason') ?? null;
      if (cmd === 'suspend' && !reason) return usage(env, 'suspend needs --reason R (why the device is on hold)');
      if (cmd === 'revoke') {
        if (!reason) return usage(env, `revoke needs --reason (${REVOCATION_REASONS.join('|')})`);
        if (!isRevocationReason(reason))
          return usage(env, `unknown revocation reason ${reason}: use one of ${REVOCATION_REASONS.join(', ')}`);
      }
      if (v['dry-run']) return usage(env, '--dry-run is for the batch revoke (--work-order / --serial-range)');
      const r = await applyTransition(ctx, 'admin', key, cmd, reason);
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
      const r = await releaseDevice(ctx, 'admin', key, reason);
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
        writeAtomic(file, v['pem'] ? toPem(r.value.der, 'X509 CRL') : r.value.der);
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
      const r = await setQuota(ctx, 'admin', wo, station, Number(q));
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
      const r = await revokeOperator(ctx, 'admin', id, reason);
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
      const r = await blockIdentifier(ctx, 'admin', serial ? 'serial' : 'chipId', (serial ?? chip)!, reason);
      if (!r.ok) return report(env, r.error);
      if (asJson) json(r.value);
      else out.log(`blocked ${r.value.kind} ${r.value.value}: its records are refused until "registry release"`);
      return EXIT.ok;
    }
    case 'escrow-begin':
    case 'escrow-complete':
      return escrow(cmd, rest, v, env);
    default:
      return usage(env, `unknown lifecycle command ${cmd}`);
  }
}

async function batch(env: LifecycleCliEnv, v: Values, asJson: boolean): Promise<number> {
  const wo = typeof v['work-order'] === 'string' ? v['work-order'] : undefined;
  const range = typeof v['serial-range'] === 'string' ? v['serial-range'] : undefined;
  const reason = typeof v['reason'] === 'string' ? v['reason'] : undefined;
  if (!wo && !range)
    return usage(env, 'revoke needs a SERIAL, or --work-order W / --serial-range A..B for a batch revoke');
  if (!reason || !isRevocationReason(reason))
    return usage(env, `revoke needs --reason, one of ${REVOCATION_REASONS.join(', ')}`);
  let serialRange: [string, string] | undefined;
  if (range) {
    const m = /^([^.]+)\.\.([^.]+)$/.exec(range);
    if (!m || m[1]! > m[2]!) return usage(env, '--serial-range must be A..B with A <= B (inclusive, string order)');
    serialRange = [m[1]!, m[2]!];
  }
  const dryRun = v['dry-run'] === true;
  const r = await batchRevoke(
    env.ctx,
    'admin',
    { ...(wo ? { workOrder: wo } : {}), ...(serialRange ? { serialRange } : {}) },
    reason,
    dryRun,
  );
  if (!r.ok) return report(env, r.error);
  if (asJson) env.out.log(JSON.stringify(r.value, null, 2));
  else {
    env.out.log(
      `${dryRun ? 'dry run: would revoke' : 'revoked'} ${r.value.changed.length} device(s)${r.value.skipped.length ? `, ${r.value.skipped.length} skipped` : ''}`,
    );
    for (const s of r.value.changed) env.out.log(`  ${s}`);
    for (const s of r.value.skipped) env.out.log(`  skipped ${s.serialNumber} (${s.state})`);
    if (dryRun) env.out.log('nothing was changed (run again without --dry-run)');
  }
  return EXIT.ok;
}

/** POST to the serving registry with the admin token; `{error}` answers become refusals. */
async function post(
  env: LifecycleCliEnv,
  url: string,
  path: string,
  body: unknown,
): Promise<{ ok: true; value: unknown } | { ok: false; error: { code: string; message: string } }> {
  if (!env.adminToken) return { ok: false, error: { code: 'CONFIG_INVALID', message: 'no admin token' } };
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    return {
      ok: false,
      error: {
        code: 'STORE_UNAVAILABLE',
        message: `the registry at ${url} does not answer (${(e as Error).message}): is "registry serve" running?`,
      },
    };
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: { code: 'INTERNAL', message: `HTTP ${res.status} from ${url}: not JSON` } };
  }
  if (res.ok) return { ok: true, value: parsed };
  const e = (parsed as { error?: ApiError }).error;
  return {
    ok: false,
    error: { code: e?.code ?? 'INTERNAL', message: e?.message ?? `HTTP ${res.status} from ${url}` },
  };
}

async function escrow(cmd: string, rest: readonly string[], v: Values, env: LifecycleCliEnv): Promise<number> {
  const station = typeof v['station'] === 'string' ? v['station'] : undefined;
  if (!station || !/^[A-Za-z0-9._-]{1,64}$/.test(station)) return usage(env, `${cmd} needs --station S`);
  const begin = cmd === 'escrow-begin';
  const outFile = typeof v['out'] === 'string' ? v['out'] : undefined;
  if (begin ? !outFile || rest.length : rest.length !== 1)
    return usage(
      env,
      begin ? 'escrow-begin needs --station S --out transport.json' : 'escrow-complete needs --station S FILE',
    );
  const srv = serverUrl(env.dataDir, typeof v['url'] === 'string' ? v['url'] : undefined);
  if ('error' in srv) {
    env.out.err(`error CONFIG_INVALID: ${srv.error}`);
    return EXIT.notReady;
  }
  const path = `/v1/admin/stations/${encodeURIComponent(station)}/escrow/${begin ? 'begin' : 'complete'}`;
  if (begin) {
    const r = await post(env, srv.url, path, {});
    if (!r.ok) return report(env, r.error);
    const a = r.value as { stationId: string; curve: string; transportKeySpki: string };
    const file = {
      schema: ESCROW_BEGIN_SCHEMA,
      registryId: env.ctx.registryId,
      stationId: a.stationId,
      curve: a.curve,
      transportKeySpki: a.transportKeySpki,
      issuedAt: env.ctx.clock.now().toISOString(),
    };
    try {
      writeAtomic(outFile!, JSON.stringify(file, null, 2) + '\n');
    } catch (e) {
      return report(env, {
        code: 'INPUT_INVALID',
        message: `cannot write ${outFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      });
    }
    if (v['json']) env.out.log(JSON.stringify({ ...file, out: resolve(outFile!), server: srv.url }, null, 2));
    else
      env.out.log(
        `escrow begun for station ${station} (transport key ${a.curve} in the token of the registry at ${srv.url})\n` +
          `  give ${resolve(outFile!)} to the station; it wraps its issuing CA key and answers a completion file;\n` +
          `  then: registry escrow-complete --station ${station} FILE (while that registry keeps running)`,
      );
    return EXIT.ok;
  }
  const file = rest[0]!;
  let body: z.infer<typeof CompletionFileSchema>;
  try {
    const raw = readFileSync(file);
    if (raw.length > 64 * 1024) return report(env, { code: 'INPUT_INVALID', message: `${file}: larger than 64 KiB` });
    const p = CompletionFileSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!p.success)
      return report(env, {
        code: 'INPUT_INVALID',
        message: `${file}: not an escrow completion (${p.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`,
      });
    body = p.data;
  } catch (e) {
    return report(env, {
      code: 'INPUT_INVALID',
      message: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    });
  }
  if (body.stationId !== undefined && body.stationId !== station)
    return report(env, {
      code: 'INPUT_INVALID',
      message: `${file} is the completion of station ${body.stationId}, not ${station}`,
    });
  const { ephemeralPublicKeySpki, wrappedKey, publicKeySpki, transportKeySpki, signature } = body;
  const r = await post(env, srv.url, path, {
    ephemeralPublicKeySpki,
    wrappedKey,
    publicKeySpki,
    transportKeySpki,
    signature,
  });
  if (!r.ok) {
    const code = report(env, r.error);
    if (/no escrow begun/.test(r.error.message))
      env.out.err(
        '  the transport key is gone (registry restarted?): run escrow-begin again and redo the station step',
      );
    return code;
  }
  const a = r.value as { stationId: string; keyLabel: string; caSha256: string; crlNumber: number };
  if (v['json']) env.out.log(JSON.stringify(a, null, 2));
  else
    env.out.log(
      `issuing CA key of station ${a.stationId} escrowed as "${a.keyLabel}" (CA sha256 ${a.caSha256}); CRL #${a.crlNumber} signed`,
    );
  return EXIT.ok;
}
