/**
 * What the `registry` command line opens before a command runs, as the command declares (registry/cli/command.ts):
 * the data dir (private, or refused before anything is written to it), its log, its configuration, the database and
 * the registry HSM; and closes them after. Also the lifecycle settings a data dir's configuration gives the service
 * (used by `serve` too). Imports core/, native/ (database, logger, data dir), registry/setup/keys.ts and registry/cli/:
 * no X.509 stack and no HSM adapter (registry/setup/keys.ts loads that when a command opens the HSM).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { flagOn, str, type ParsedArgs } from '../../core/cli/program.js';
import { fail } from '../../core/errors.js';
import { systemClock, type Signer } from '../../core/ports.js';
import { preparePrivateDir } from '../../native/data-dir.js';
import { createLogger } from '../../native/logger.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import {
  checkRegistryDataDir,
  openRegistryKeys,
  readRegistryConfig,
  type RegistryConfig,
  type RegistryKeys,
} from '../setup/keys.js';
import { type LifecycleConfig } from '../common/context.js';
import { DEFAULT_ORGANIZATION, DEFAULT_STATION_CA_EKU } from '../../core/hq/commission-defaults.js';
import { type RegistryContext } from '../common/context.js';
import type { ConfigEnv, DirEnv, OpenRegistryCommand, Outcome, Out, RegistryEnv } from './command.js';
import { reportError } from './report.js';

const DEFAULT_CRL_INTERVAL_S = 3600;
/** Station CA validity unless config.json `commissioning.stationCaValidityDays` says otherwise (5 years). */
const DEFAULT_STATION_CA_DAYS = 1825;

/**
 * The lifecycle settings of a data dir: the registry token, the HQ CA and the commissioning policy, the security
 * officer token (hashed), CRLs re-signed every `crlIntervalS` (config, default 1 h) and valid for two intervals (CRL
 * nextUpdate, OCSP nextUpdate).
 */
export function lifecycleSettings(
  cfg: RegistryConfig,
  keys: Pick<RegistryKeys, 'hsm' | 'securityOfficerToken' | 'hqCa'>,
): { lifecycle: LifecycleConfig; crlRefreshS: number } {
  const every = cfg.lifecycle?.crlIntervalS ?? DEFAULT_CRL_INTERVAL_S;
  return {
    crlRefreshS: every,
    lifecycle: {
      hsm: keys.hsm,
      commissioning: {
        hqCa: keys.hqCa,
        organization: cfg.commissioning?.organization ?? DEFAULT_ORGANIZATION,
        stationCaValidityDays: cfg.commissioning?.stationCaValidityDays ?? DEFAULT_STATION_CA_DAYS,
        stationCaEku: cfg.commissioning?.stationCaEku ?? DEFAULT_STATION_CA_EKU,
      },
      crlIntervalS: 2 * every,
      ...(cfg.lifecycle?.certificateLifetimeDays !== undefined
        ? { certificateLifetimeDays: cfg.lifecycle.certificateLifetimeDays }
        : {}),
      ...(cfg.lifecycle?.rotateBeforeDays !== undefined ? { rotateBeforeDays: cfg.lifecycle.rotateBeforeDays } : {}),
      securityOfficerTokenSha256: createHash('sha256').update(keys.securityOfficerToken).digest(),
    },
  };
}

/**
 * The data dir (`--data-dir`, $LINE_STATION_REGISTRY_DATA_DIR or ./.data/registry) and its log. A demo data dir
 * holds the station at its top and the registry under registry/: either is accepted, except by `init`, which takes
 * the dir as given and makes a new one private. One that others can read or write is refused before even a log line
 * is written to it.
 */
export function openDataDir(a: ParsedArgs, init: boolean, out: Out): { env: DirEnv } | { outcome: Outcome } {
  const given = resolve(str(a, 'data-dir') ?? process.env['LINE_STATION_REGISTRY_DATA_DIR'] ?? '.data/registry');
  const dataDir =
    !init && !readRegistryConfig(given).ok && existsSync(resolve(given, 'registry', 'config.json'))
      ? resolve(given, 'registry')
      : given;
  const fresh = init && !existsSync(resolve(dataDir, 'config.json'));
  const insecure = fresh ? preparePrivateDir(dataDir) : checkRegistryDataDir(dataDir);
  if (!insecure.ok) return { outcome: reportError(out, insecure.error) };
  const logger = createLogger(
    { console: true, level: flagOn(a, 'verbose') ? 'debug' : 'warn', file: resolve(dataDir, 'logs', 'registry.log') },
    'registry',
  );
  return { env: { dataDir, logger, out } };
}

/** The data dir's configuration and the database URL (`--db`, else config.json's). */
export function openConfig(a: ParsedArgs, env: DirEnv): { env: ConfigEnv } | { outcome: Outcome } {
  const cfg = readRegistryConfig(env.dataDir);
  if (!cfg.ok) return { outcome: reportError(env.out, cfg.error) };
  return { env: { ...env, config: cfg.value, dbUrl: str(a, 'db') ?? cfg.value.db } };
}

/** A signer for commands that never sign (enrol, queries): any use is a bug. */
const noSigner: Signer = {
  algorithm: 'ES256',
  curve: 'P-256',
  publicKeySpki: new Uint8Array(0),
  sign: async () => fail('INTERNAL', 'this command does not open the registry key'),
};

/**
 * Open the database (and the registry HSM when the command signs: receipts, CRLs), run `body` on that context,
 * close both whatever happens.
 */
export async function withRegistry(
  cmd: OpenRegistryCommand,
  env: ConfigEnv,
  body: (env: Omit<RegistryEnv, 'role'>) => Promise<Outcome>,
): Promise<Outcome> {
  const db = await openRegistryDb(env.dbUrl);
  if (!db.ok) return reportError(env.out, db.error);
  let keys: RegistryKeys | null = null;
  try {
    if (cmd.hsm) {
      const k = await openRegistryKeys(env.dataDir, env.logger);
      if (!k.ok) return reportError(env.out, k.error);
      keys = k.value;
    }
    const ctx: RegistryContext = {
      db: db.value,
      signer: keys?.signer ?? noSigner,
      registryChain: keys?.chain ?? [],
      registryId: env.config.registryId,
      clock: systemClock,
      logger: env.logger,
      ...(keys ? { lifecycle: lifecycleSettings(env.config, keys).lifecycle } : {}),
    };
    return await body({ ctx, dataDir: env.dataDir, out: env.out });
  } finally {
    if (keys) await keys.close();
    await db.value.close();
  }
}
