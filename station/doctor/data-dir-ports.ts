/**
 * The doctor ports of a data dir, for `station doctor` (the CLI): each part is opened on its own (configuration
 * without the permission check, the token with its own session, the database read-only, the registry client for the
 * public health route only), so one broken part is reported by its check and does not hide the others. Nothing here
 * writes to the data dir, and the station's engine is not opened (no instance marker: a running `station serve` is
 * not disturbed).
 *
 * May import: core/, native/, station/ (config, hq client).
 */
import { accessSync, constants, readFileSync, statfsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fail, type StationError } from '../../core/errors.js';
import type { TokenReport } from '../../core/hsm/inspection.js';
import type { Clock, DetectedPort, Signer } from '../../core/ports.js';
import { systemClock } from '../../core/ports.js';
import { fromPemChain } from '../../core/pki/pem.js';
import { err, ok, type Result } from '../../core/result.js';
import { checkPrivateTree } from '../../native/data-dir.js';
import { createDiscovery } from '../../native/discovery.js';
import { inspectToken, openHsm } from '../../native/hsm/index.js';
import { loadProfilesFromDir } from '../../native/profiles-fs.js';
import { openStationDb } from '../../native/store/index.js';
import { checkStationDataDir, checkTokenDir, readPin, readStationConfig, type LoadedConfig } from '../config.js';
import { createRegistryClient } from '../hq/client.js';
import { stationTokenConfig } from '../token-store.js';
import { readRegistryCertificate, readRegistryTlsCertificate } from '../hq/pins.js';
import { UDEV_RULES_PATH } from './checks/serial.js';
import type {
  DoctorPorts,
  DoctorRegistry,
  DoctorSerial,
  DoctorToken,
  PinSource,
  StationUser,
  TokenStage,
} from './ports.js';

/** How long the registry's health answer may take (the client caps its health route at 5 s too). */
export const DOCTOR_REGISTRY_TIMEOUT_MS = 5000;

export interface DataDirPortsOptions {
  readonly dataDir: string;
  readonly clock?: Clock;
  /** The HSM user PIN read from stdin instead of the configured source (`station doctor --pin-stdin`). */
  readonly stdinPin?: () => Promise<string>;
}

/** The stage of an openHsm failure: module load (and C_Initialize), token lookup, or login. */
function stageOf(code: string, details: Record<string, unknown> | undefined): TokenStage {
  if (code === 'HSM_MODULE_LOAD_FAILED') return 'module';
  if (code === 'HSM_TOKEN_ABSENT') return 'token';
  return details && 'module' in details ? 'module' : 'login';
}

/** The inspection report of a token whose configuration could not be resolved (its module step failed). */
function unresolved(module: string, tokenLabel: string, e: StationError): TokenReport {
  return {
    schema: 'line-station/token-report/v1',
    profile: null,
    module: { status: 'fail', path: module, error: { code: e.code, message: e.message } },
    token: { status: 'skip', label: tokenLabel, tokensPresent: [] },
    login: { status: 'skip' },
    mechanisms: { status: 'skip', listed: 0, checks: [] },
    requirements: [],
    keyProtectionEnforced: { status: 'skip', enforced: null, note: '' },
    keys: [],
    status: 'fail',
  };
}

/** The configured token inspected without a login (native/hsm `inspectToken`). */
export async function inspectConfiguredToken(cfg: LoadedConfig): Promise<TokenReport> {
  const c = cfg.config.hsm;
  const opts = stationTokenConfig(cfg);
  if (!opts.ok) return unresolved(c.module, c.tokenLabel, opts.error);
  return inspectToken({ module: c.module, tokenLabel: c.tokenLabel, pin: null, ...opts.value });
}

/** The PIN source of the configuration (or stdin). */
export function pinSourceOf(cfg: LoadedConfig, stdin: boolean): PinSource {
  const pin = cfg.config.hsm.pin;
  return stdin
    ? { kind: 'stdin' }
    : 'env' in pin
      ? { kind: 'env', name: pin.env }
      : { kind: 'file', path: cfg.path(pin.file) };
}

/** The configured token, logged in with its own session. */
export function dataDirToken(cfg: LoadedConfig, stdinPin?: () => Promise<string>): DoctorToken {
  const c = cfg.config.hsm;
  return {
    module: c.module,
    tokenLabel: c.tokenLabel,
    pinSource: pinSourceOf(cfg, stdinPin !== undefined),
    inspect: () => inspectConfiguredToken(cfg),
    async open() {
      const pin = stdinPin ? ok((await stdinPin()).trim()) : readPin(cfg);
      if (!pin.ok) return err({ stage: 'pin', error: pin.error });
      if (pin.value === '') return err({ stage: 'pin', error: fail('HSM_PIN_INCORRECT', 'the PIN is empty').error });
      const opts = stationTokenConfig(cfg);
      if (!opts.ok) return err({ stage: 'module', error: opts.error });
      const h = await openHsm({ module: c.module, tokenLabel: c.tokenLabel, pin: pin.value, ...opts.value });
      if (!h.ok) return err({ stage: stageOf(h.error.code, h.error.details), error: h.error });
      return ok({ hsm: h.value, release: () => h.value.close() });
    },
  };
}

/** Group names by gid, and the groups /etc/group lists `user` in. */
function groupTable(): { byGid: Map<number, string>; members: Map<string, string[]> } {
  const byGid = new Map<number, string>();
  const members = new Map<string, string[]>();
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return { byGid, members };
  }
  for (const line of text.split('\n')) {
    const [name, , gid, list] = line.split(':');
    if (!name || gid === undefined) continue;
    byGid.set(Number(gid), name);
    for (const m of (list ?? '').split(',').filter(Boolean)) members.set(m, [...(members.get(m) ?? []), name]);
  }
  return { byGid, members };
}

/** The running user, its process groups and the groups of its account. */
export function stationUser(): StationUser | null {
  if (typeof process.getgroups !== 'function' || typeof process.getuid !== 'function') return null;
  const u = userInfo();
  const { byGid, members } = groupTable();
  const name = (gid: number) => byGid.get(gid) ?? String(gid);
  const primary = name(u.gid);
  return {
    name: u.username,
    uid: u.uid,
    processGroups: [...new Set([name(process.getgid?.() ?? u.gid), ...process.getgroups().map(name)])],
    accountGroups: [...new Set([primary, ...(members.get(u.username) ?? [])])],
  };
}

/** The serial side of this machine; `extraPorts` from the configuration. */
export function machineSerial(extraPorts: readonly string[]): DoctorSerial {
  return {
    udevRulesPath: UDEV_RULES_PATH,
    user: stationUser,
    udevRules() {
      try {
        return readFileSync(UDEV_RULES_PATH, 'utf8');
      } catch {
        return null;
      }
    },
    async ports(): Promise<readonly DetectedPort[]> {
      try {
        return await createDiscovery({ extraPorts }).list();
      } catch {
        return [];
      }
    },
    access(path) {
      try {
        accessSync(path, constants.R_OK | constants.W_OK);
        return null;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? 'EACCES';
      }
    },
  };
}

/** Free and total bytes where `path` lives (statfs), or null. */
export function diskSpace(path: string): { availableBytes: number; totalBytes: number } | null {
  try {
    const s = statfsSync(path);
    return { availableBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}

/**
 * A signer for a client that calls public routes only: the doctor's registry client asks for the health answer,
 * which is not signed; any signed route would be refused here before anything is sent.
 */
const PUBLIC_ROUTES_ONLY: Signer = {
  algorithm: 'ES256',
  curve: 'P-256',
  publicKeySpki: new Uint8Array(0),
  sign: async () => fail('INTERNAL', 'the doctor registry client calls public routes only'),
};

/** The configured registry through the one client (station/hq/client.ts), or null when none is configured. */
export function configuredRegistry(cfg: LoadedConfig, clock: Clock): DoctorRegistry | null {
  const r = cfg.config.registry;
  if (!r) return null;
  const certificate = readRegistryCertificate(cfg.path(r.certificate));
  const url = r.url ?? null;
  return {
    url,
    certificate,
    async health() {
      if (!url) return fail('CONFIG_INVALID', 'no registry URL is configured');
      const tls = readRegistryTlsCertificate(cfg);
      if (!tls.ok) return tls;
      const client = createRegistryClient({
        url,
        tlsCertificate: tls.value,
        registryCertificate: certificate.ok ? certificate.value : null,
        stationId: cfg.config.stationId,
        signer: PUBLIC_ROUTES_ONLY,
        clock,
        timeoutMs: DOCTOR_REGISTRY_TIMEOUT_MS,
      });
      const sentAt = clock.now();
      const h = await client.healthAnswer();
      const receivedAt = clock.now();
      return h.ok ? ok({ health: h.value, sentAt, receivedAt }) : err(h.error.error);
    },
  };
}

/** The PEM chains of the configuration. */
export function readChains(cfg: LoadedConfig): DoctorPorts['certificates'] {
  return () => {
    const read = (rel: string) => {
      const file = cfg.path(rel);
      try {
        const c = fromPemChain(readFileSync(file, 'utf8'));
        return c.ok ? c : fail('CONFIG_INVALID', `${file}: ${c.error.message}`);
      } catch (e) {
        return fail('CONFIG_INVALID', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    };
    const caChain = read(cfg.config.pki.caChain);
    if (!caChain.ok) return caChain;
    const stationChain = read(cfg.config.pki.stationChain);
    if (!stationChain.ok) return stationChain;
    const hqRoot = cfg.config.pki.hqRoot ? read(cfg.config.pki.hqRoot) : null;
    if (hqRoot && !hqRoot.ok) return hqRoot;
    if (hqRoot && hqRoot.value.length !== 1)
      return fail(
        'CONFIG_INVALID',
        `${cfg.path(cfg.config.pki.hqRoot!)}: expected exactly one certificate (the HQ root)`,
      );
    return ok({ caChain: caChain.value, stationChain: stationChain.value, hqRoot: hqRoot ? hqRoot.value[0]! : null });
  };
}

/** Data dir, token files and the PIN file (when it is a file outside the data dir) private. */
export function privatePaths(dataDir: string, cfg: LoadedConfig | null): Result<void> {
  const base = checkStationDataDir(dataDir);
  if (!base.ok || !cfg) return base;
  const tokens = checkTokenDir(cfg);
  if (!tokens.ok) return tokens;
  const pin = cfg.config.hsm.pin;
  return 'file' in pin ? checkPrivateTree(cfg.dataDir, [{ path: cfg.path(pin.file) }]) : ok(undefined);
}

/** Every doctor port of the data dir `dataDir`. */
export function dataDirPorts(o: DataDirPortsOptions): DoctorPorts {
  const dataDir = resolve(o.dataDir);
  const clock = o.clock ?? systemClock;
  const config = readStationConfig(dataDir);
  const cfg = config.ok ? config.value : null;
  return {
    dataDir,
    clock,
    config,
    profiles: () =>
      config.ok ? loadProfilesFromDir(config.value.path(config.value.config.paths.profilesDir)) : config,
    permissions: () => privatePaths(dataDir, cfg),
    diskSpace,
    token: cfg ? dataDirToken(cfg, o.stdinPin) : null,
    certificates: config.ok ? readChains(config.value) : () => config,
    serial: machineSerial(cfg?.config.ports.extra ?? []),
    registry: cfg ? configuredRegistry(cfg, clock) : null,
    backlog() {
      const db = openStationDb(join(dataDir, 'station.db'), { readonly: true, clock });
      if (!db.ok) return db;
      try {
        const c = db.value.outbox.counts();
        return ok({
          pending: c.pending,
          sent: c.sent,
          failed: c.failed,
          oldestUnacknowledgedAt: db.value.outbox.oldestUnacknowledgedAt(),
        });
      } finally {
        db.value.close();
      }
    },
  };
}
