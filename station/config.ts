/**
 * Station configuration (`<data-dir>/config.json`), validated with a schema. It names where the
 * secrets come from, never the secrets themselves: the HSM user PIN comes from an environment
 * variable, or (development tokens only) from a 0600 file inside the data dir.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { fail } from '../core/errors.js';
import { ok, type Result } from '../core/result.js';
import { writeFileAtomic } from '../native/atomic-file.js';
import { checkPrivateTree, readPrivateFile, type PrivateEntry } from '../native/data-dir.js';
import { readSoftHsmTokenDir } from '../native/softhsm-dev.js';
import { RevocationUrlsSchema, type RevocationUrls } from '../core/pki/revocation-urls.js';
import { crlPath, OCSP_PATH } from '../core/hq/routes.js';
import { DEFAULT_ACTIVE_RUN_LIFETIME_S } from './lifecycle/context.js';
import { LabelsConfigSchema } from '../core/labels/config.js';

/** The `auth` section of config.json; every field has a default (station/service/auth.ts authPolicy). */
export const AuthConfigSchema = z
  .object({
    /** PIN attempts per operator id before a lock (counted before the PIN is checked). */
    maxPinAttempts: z.number().int().min(1).max(100).default(5),
    /** Failed badge scans at this station before badge sign-in is locked (the badge is the identifier). */
    maxBadgeAttempts: z.number().int().min(1).max(1000).default(10),
    /** First lock; each further lock in a row doubles it, up to maxLockSeconds. */
    lockSeconds: z.number().int().min(1).max(86_400).default(300),
    maxLockSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .default(86_400),
    /** Shortest supervisor PIN accepted by `station operator add` and at sign-in/elevation. */
    supervisorPinMinLength: z.number().int().min(6).max(12).default(6),
    /** A session ends after this long without a request from its client. */
    sessionIdleMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .default(30),
    /** ... and this long after sign-in, whatever the activity. */
    sessionMaxHours: z
      .number()
      .int()
      .min(1)
      .max(7 * 24)
      .default(12),
  })
  .strict();

export const StationConfigSchema = z
  .object({
    schema: z.literal('line-station/station-config/v1'),
    stationId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
    hsm: z
      .object({
        module: z.string().min(1),
        tokenLabel: z.string().min(1).max(32),
        /** SoftHSM2 development tokens: the softhsm2.conf to use (set as SOFTHSM2_CONF before loading the module). */
        softhsmConf: z.string().optional(),
        /** Token profile id (resources/tokens/<id>.json, docs/hsm.md "Token profiles"); absent: matched from the module. */
        profile: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
          .optional(),
        /** The token's own directory, relative to the data dir, for the profile's library parameters (NSS softoken). */
        tokenDir: z.string().min(1).optional(),
        pin: z.union([z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()]),
        keys: z.object({ issuingCa: z.string(), station: z.string() }).strict(),
      })
      .strict(),
    pki: z
      .object({
        /** PEM files, relative to the data dir. */
        caChain: z.string(),
        stationChain: z.string(),
        /**
         * The headquarters root the station pins (PEM, relative to the data dir), written by `station commission`
         * (and `station init`: the development HQ's root): both chains must end at it (`station doctor`
         * "certificates"). Absent (a station made before commissioning existed): the last certificate of caChain.
         */
        hqRoot: z.string().min(1).optional(),
        attestationRoots: z.array(z.string()).min(1),
      })
      .strict(),
    paths: z
      .object({
        profilesDir: z.string(),
        workOrdersDir: z.string(),
      })
      .strict(),
    ports: z
      .object({ extra: z.array(z.string()).default([]), pollMs: z.number().int().min(50).max(10_000).default(500) })
      .strict(),
    /** Sync to the headquarters registry (station/sync.ts, docs/sync.md); written by `station enroll`. */
    registry: z
      .object({
        /**
         * Base URL: https://registry.example:8443, or http only to a loopback IP literal (station/hq/transport.ts
         * `checkRegistryUrl`, docs/sync.md "Transport"); absent = offline only (bundles).
         */
        url: z.url({ protocol: /^https?$/ }).optional(),
        /** The registry certificate (PEM), relative to the data dir: every receipt must verify with it. */
        certificate: z.string().min(1),
        /** The pinned TLS certificate of an https registry (PEM), relative to the data dir: the only TLS trust. */
        tlsCertificate: z.string().min(1).optional(),
        /** False: no background sync (manual `station sync`, export and import still work). */
        enabled: z.boolean().default(true),
      })
      .strict()
      .optional(),
    /**
     * CRL distribution point and OCSP address put in every device certificate (docs/formats.md "Device
     * certificate profile"); written by `station enroll` (default: this station's CRL and the OCSP responder at the
     * registry URL), overridden by the registry policy's `revocationUrls`. Absent: certificates carry none.
     */
    revocation: RevocationUrlsSchema.optional(),
    /** Identity lifecycle at the station (station/lifecycle, docs/lifecycle.md "Station side"). */
    lifecycle: z
      .object({
        /** True: a work order without a signed quota from the registry is refused (default: unlimited, warned). */
        requireQuota: z.boolean().default(false),
        /** How often a running station pulls the policy and quotas (seconds, default 300). */
        pullIntervalS: z.number().int().min(10).max(86_400).default(300),
        /**
         * Longest an active run may hold a certificate no record names (seconds from its issuance, default 86,400 =
         * 24 h): past it the run is failed with FLOW_RUN_EXPIRED and the certificate revoked (docs/lifecycle.md
         * "Failed issuance").
         */
        activeRunLifetimeS: z.number().int().min(1).max(2_592_000).default(DEFAULT_ACTIVE_RUN_LIFETIME_S),
      })
      .strict()
      .optional(),
    /** Sign-in at the station: lockout, back-off, PIN lengths, session timeouts (docs/ui.md "Sign-in attempts"). */
    auth: AuthConfigSchema.optional(),
    /**
     * Board labels after PASS and reprints (station/labels, docs/operations.md "Label printer"): label size and dpi,
     * the printer (file, raw TCP 9100 or a CUPS queue). Absent: labels are previewed but never printed.
     */
    labels: LabelsConfigSchema.optional(),
  })
  .strict();

export type StationConfig = z.infer<typeof StationConfigSchema>;

export interface LoadedConfig {
  readonly dataDir: string;
  readonly config: StationConfig;
  /** Resolve a path from the config (relative to the data dir, or to the repo for resources). */
  readonly path: (p: string) => string;
}

export const CONFIG_FILE = 'config.json';

/** Days a station certificate is valid when the station makes it (commissioning, `station rotate-key`). */
export const STATION_CERT_DAYS = 825;

/** CONFIG_NOT_FOUND for a data dir without config.json (null: it has one). */
export function configNotFound(dataDir: string): Result<never> | null {
  const file = join(resolve(dataDir), CONFIG_FILE);
  if (existsSync(file)) return null;
  return fail('CONFIG_NOT_FOUND', `no station configuration at ${file}; run: station init --data-dir ${dataDir}`);
}

/**
 * What of a station data dir must be private (docs/architecture.md "Data directory permissions"): the dir, its
 * configuration, database (with the SQLite -wal/-shm files), logs, PIN files, PKI files, SoftHSM2 files and the
 * process markers; with `children`, what those folders hold.
 */
export const STATION_PRIVATE_ENTRIES: readonly PrivateEntry[] = [
  { path: '' },
  { path: CONFIG_FILE },
  { path: 'station.db' },
  { path: 'station.db-wal' },
  { path: 'station.db-shm' },
  { path: 'logs', children: true },
  { path: 'secrets', children: true },
  { path: 'pki', children: true },
  { path: 'hsm', children: true },
  { path: 'run', children: true },
  { path: 'commission-state.json' },
];

/**
 * CONFIG_INSECURE_PERMISSIONS when group or others can read or write the data dir or one of its sensitive entries
 * (STATION_PRIVATE_ENTRIES), or another user owns it. loadConfig also checks the SoftHSM2 token directory the
 * configuration names (wherever it is).
 */
export function checkStationDataDir(dataDir: string): Result<void> {
  return checkPrivateTree(resolve(dataDir), STATION_PRIVATE_ENTRIES);
}

/** Load and validate `<dataDir>/config.json` (refused when the data dir is not private: checkStationDataDir). */
export function loadConfig(dataDir: string): Result<LoadedConfig> {
  const missing = configNotFound(dataDir);
  if (missing) return missing;
  const bare = checkStationDataDir(dataDir);
  if (!bare.ok) return bare;
  const cfg = readStationConfig(dataDir);
  if (!cfg.ok) return cfg;
  const tokens = checkTokenDir(cfg.value);
  return tokens.ok ? cfg : tokens;
}

/**
 * Read and validate `<dataDir>/config.json` WITHOUT the permission checks (loadConfig makes them first; `station
 * doctor` reports them as a check of their own and reads on).
 */
export function readStationConfig(dataDir: string): Result<LoadedConfig> {
  const dir = resolve(dataDir);
  const file = join(dir, CONFIG_FILE);
  const missing = configNotFound(dataDir);
  if (missing) return missing;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail('CONFIG_INVALID', `${file}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = StationConfigSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return fail('CONFIG_INVALID', `${file}: ${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'}`);
  }
  return ok({ dataDir: dir, config: parsed.data, path: (p: string) => (isAbsolute(p) ? p : join(dir, p)) });
}

/** The SoftHSM2 token directory the configuration names (wherever it is) private too (CONFIG_INSECURE_PERMISSIONS). */
export function checkTokenDir(cfg: LoadedConfig): Result<void> {
  const conf = cfg.config.hsm.softhsmConf;
  const tokenDir = conf ? readSoftHsmTokenDir(cfg.path(conf)) : null;
  return tokenDir ? checkPrivateTree(cfg.dataDir, [{ path: tokenDir, children: true }]) : ok(undefined);
}

/**
 * Change `<dataDir>/config.json`: `patch` maps the raw JSON to the new one, which must validate (CONFIG_INVALID
 * `<path>: <message>` of the first issue otherwise; nothing written). `beforeWrite` runs after the validation and
 * before the write (e.g. to put a file the new configuration names in place). Written atomically (tmp + rename).
 */
export function updateStationConfig(
  dataDir: string,
  patch: (raw: Record<string, unknown>) => Record<string, unknown>,
  beforeWrite?: (next: StationConfig) => void,
): Result<StationConfig> {
  const missing = configNotFound(dataDir);
  if (missing) return missing;
  const insecure = checkStationDataDir(dataDir);
  if (!insecure.ok) return insecure;
  const file = join(resolve(dataDir), CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return fail('CONFIG_INVALID', `${file}: not valid JSON (${(e as Error).message})`);
  }
  const next = patch(raw);
  const parsed = StationConfigSchema.safeParse(next);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return fail('CONFIG_INVALID', i ? `${i.path.join('.')}: ${i.message}` : 'invalid', { file });
  }
  beforeWrite?.(parsed.data);
  writeFileAtomic(file, JSON.stringify(next, null, 2) + '\n');
  return ok(parsed.data);
}

/** Read the HSM user PIN from its configured source. The PIN is returned to the caller only; never logged. */
export function readPin(cfg: LoadedConfig): Result<string> {
  const src = cfg.config.hsm.pin;
  if ('env' in src) {
    const v = process.env[src.env];
    if (!v) return fail('HSM_PIN_INCORRECT', `the HSM PIN is not set: export ${src.env}`);
    return ok(v);
  }
  const f = readPrivateFile(cfg.path(src.file), 'CONFIG_INVALID');
  return f.ok ? ok(f.value.trim()) : f;
}

/** The registry's CRL of `stationId` and its OCSP responder, at the registry base URL (`station enroll` default). */
export function defaultRevocationUrls(registryUrl: string, stationId: string): RevocationUrls {
  const base = registryUrl.replace(/\/+$/, '');
  return { crl: `${base}${crlPath(stationId)}`, ocsp: `${base}${OCSP_PATH}` };
}
