/**
 * `registry init` and the registry's keys: a SoftHSM2 token "LS Registry" holding the receipt signing key
 * (generated in the token, never exported), a self-signed registry certificate (`<data-dir>/registry.pem`,
 * what stations verify receipts with), a random admin token and a security officer token (0600 files), and
 * config.json. The same token also holds the delegated revocation signer keys (docs/lifecycle.md) and the HQ CA key
 * that certifies station CAs (./hq-ca.ts; a development root is made here, the offline-root ceremony replaces it).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { ok, type Result } from '../../core/result.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { createSoftHsmEnv, findSoftHsmModule, initToken, readSoftHsmTokenDir } from '../../native/softhsm-dev.js';
import { checkPrivateTree, readPrivateFile, type PrivateEntry } from '../../native/data-dir.js';
import { zodMessage } from '../../core/zod-message.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { DEFAULT_ORGANIZATION } from '../../core/hq/commission-defaults.js';
import { initDevHqCa, openHqCa, type HqCa } from './hq-ca.js';

/** The files of a registry data dir. */
export const REGISTRY_FILES = {
  config: 'config.json',
  certificate: 'registry.pem',
  adminToken: join('secrets', 'admin.token'),
  securityOfficerToken: join('secrets', 'security-officer.token'),
  hsmPin: join('secrets', 'hsm-user.pin'),
  hsmSoPin: join('secrets', 'hsm-so.pin'),
} as const;

export const REGISTRY_TOKEN = 'LS Registry';
export const RECEIPT_KEY_LABEL = 'registry-receipt';
export const REGISTRY_CONFIG_SCHEMA = 'line-station/registry-config/v1';

export const RegistryConfigSchema = z
  .object({
    schema: z.literal(REGISTRY_CONFIG_SCHEMA),
    registryId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    db: z.string().min(1),
    hsm: z
      .object({
        module: z.string().min(1),
        tokenLabel: z.string().min(1),
        softhsmConf: z.string().optional(),
        pin: z.object({ file: z.string().min(1) }).strict(),
        keyLabel: z.string().min(1),
      })
      .strict(),
    certificate: z.string().min(1),
    adminToken: z.object({ file: z.string().min(1) }).strict(),
    /** Bearer token of the security officer role (absent in data dirs made before the lifecycle: default file). */
    securityOfficerToken: z
      .object({ file: z.string().min(1) })
      .strict()
      .optional(),
    /** Identity lifecycle settings (all optional). */
    lifecycle: z
      .object({
        /** CRL regeneration interval in seconds (default 3600); CRL nextUpdate and OCSP validity are 2 intervals. */
        crlIntervalS: z
          .number()
          .int()
          .min(1)
          .max(7 * 86_400)
          .optional(),
        /** Lifetime of certificates issued at re-enrolment (days, default 365). */
        certificateLifetimeDays: z.number().int().min(1).max(3650).optional(),
        /** Devices re-enrol this many days before expiry (default 30). */
        rotateBeforeDays: z.number().min(0).max(3650).optional(),
      })
      .strict()
      .optional(),
    /** Station commissioning (docs/registry-api.md "Commissioning"; all optional). */
    commissioning: z
      .object({
        /** O of station CAs and station certificates (default "Line Station"); requests naming another are refused. */
        organization: z.string().min(1).max(64).optional(),
        /** Validity of a station CA certificate in days (default 1825), never beyond the HQ CA's. */
        stationCaValidityDays: z.number().int().min(1).max(7300).optional(),
        /** extendedKeyUsage of station CA certificates (default clientAuth, OCSPSigning). */
        stationCaEku: z
          .array(
            z.union([
              z.enum(['clientAuth', 'serverAuth', 'OCSPSigning']),
              z.string().regex(/^[0-2](\.(0|[1-9][0-9]*))+$/),
            ]),
          )
          .min(1)
          .max(16)
          .optional(),
      })
      .strict()
      .optional(),
    /** Front door limits and timeouts of `serve` (all optional; docs/registry-api.md, "Front door"). */
    http: z
      .object({
        maxLargeBodies: z.number().int().min(1).max(256).optional(),
        maxAnonymousBodies: z.number().int().min(1).max(4096).optional(),
        retryAfterS: z.number().int().min(1).max(3600).optional(),
        headersTimeoutMs: z.number().int().min(100).max(600_000).optional(),
        requestTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;

/**
 * Initialise a registry data dir (idempotent: an initialised dir is left as it is and `created` is false).
 * Development PINs are random and stored in 0600 files under secrets/.
 */
export async function initRegistry(o: {
  dataDir: string;
  registryId?: string;
  db?: string;
  clock: Clock;
  logger: Logger;
}): Promise<Result<{ created: boolean; config: RegistryConfig }>> {
  const dir = resolve(o.dataDir);
  const cfgFile = join(dir, REGISTRY_FILES.config);
  if (existsSync(cfgFile)) {
    const cfg = readRegistryConfig(dir);
    return cfg.ok ? ok({ created: false, config: cfg.value }) : cfg;
  }
  const registryId = o.registryId ?? `registry-${randomBytes(3).toString('hex')}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(registryId))
    return fail('CONFIG_INVALID', 'registry id: expected 1..64 of A-Z a-z 0-9 . _ -');
  const module = findSoftHsmModule();
  if (!module) return fail('HSM_MODULE_LOAD_FAILED', 'SoftHSM2 is not installed (apt-get install softhsm2)');
  for (const d of ['', 'secrets']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, 'secrets'), 0o700);
  const env = await createSoftHsmEnv(join(dir, 'hsm'));
  const pins = { so: randomBytes(12).toString('hex'), user: randomBytes(12).toString('hex') };
  writeFileSync(join(dir, REGISTRY_FILES.hsmSoPin), pins.so, { mode: 0o600 });
  writeFileSync(join(dir, REGISTRY_FILES.hsmPin), pins.user, { mode: 0o600 });
  const t = await initToken(env, { label: REGISTRY_TOKEN, soPin: pins.so, pin: pins.user });
  if (!t.ok) return t;
  // The HSM adapter, the X.509 stack and the database adapter load here, not with this module: a command that only
  // reads the configuration (registry/cli/open.ts) does not pay for them.
  const [{ openHsm }, { createRootCertificate }, { defaultDbUrl }] = await Promise.all([
    import('../../native/hsm/index.js'),
    import('../../core/pki/ca.js'),
    import('../../native/registry-store/index.js'),
  ]);
  const hsm = await openHsm({
    module: env.module,
    tokenLabel: REGISTRY_TOKEN,
    pin: pins.user,
    logger: o.logger.child('[hsm]'),
  });
  if (!hsm.ok) return hsm;
  try {
    const k = await hsm.value.generateSigningKey(RECEIPT_KEY_LABEL, 'P-256');
    if (!k.ok) return k;
    const signer = await hsm.value.signer(RECEIPT_KEY_LABEL);
    if (!signer.ok) return signer;
    const cert = await createRootCertificate({
      signer: signer.value,
      subject: { commonName: `Line Station Registry ${registryId}`, organization: 'Line Station' },
      validityDays: 3650,
      clock: o.clock,
    });
    if (!cert.ok) return cert;
    const imp = await hsm.value.importCertificate(RECEIPT_KEY_LABEL, cert.value);
    if (!imp.ok) return imp;
    writeFileAtomic(join(dir, REGISTRY_FILES.certificate), toPem(cert.value, 'CERTIFICATE'));
    const hq = await initDevHqCa({
      dataDir: dir,
      hsm: hsm.value,
      registryId,
      organization: DEFAULT_ORGANIZATION,
      clock: o.clock,
    });
    if (!hq.ok) return hq;
  } finally {
    await hsm.value.close();
  }
  writeFileSync(join(dir, REGISTRY_FILES.adminToken), randomBytes(32).toString('base64url') + '\n', { mode: 0o600 });
  writeFileSync(join(dir, REGISTRY_FILES.securityOfficerToken), randomBytes(32).toString('base64url') + '\n', {
    mode: 0o600,
  });
  const config: RegistryConfig = {
    schema: REGISTRY_CONFIG_SCHEMA,
    registryId,
    db: o.db ?? defaultDbUrl(dir),
    hsm: {
      module: env.module,
      tokenLabel: REGISTRY_TOKEN,
      softhsmConf: env.conf,
      pin: { file: REGISTRY_FILES.hsmPin },
      keyLabel: RECEIPT_KEY_LABEL,
    },
    certificate: REGISTRY_FILES.certificate,
    adminToken: { file: REGISTRY_FILES.adminToken },
    securityOfficerToken: { file: REGISTRY_FILES.securityOfficerToken },
  };
  writeFileAtomic(cfgFile, JSON.stringify(config, null, 2) + '\n');
  o.logger.log('info', 'registry initialised', { registryId, dataDir: dir });
  return ok({ created: true, config });
}

/**
 * CONFIG_INSECURE_PERMISSIONS when group or others can read or write the registry data dir or what it keeps secret
 * (tokens, PIN files, the SoftHSM2 token directory, the SQLite database, logs), or another user owns it
 * (docs/architecture.md "Data directory permissions"). The token directory and database are the ones config.json
 * names, wherever they are.
 */
export function checkRegistryDataDir(dataDir: string): Result<void> {
  const dir = resolve(dataDir);
  const entries: PrivateEntry[] = [
    { path: '' },
    { path: REGISTRY_FILES.config },
    { path: 'secrets', children: true },
    { path: 'hsm', children: true },
    { path: 'logs', children: true },
  ];
  const c = readRegistryConfig(dir);
  if (c.ok) {
    const conf = c.value.hsm.softhsmConf;
    const tokenDir = conf ? readSoftHsmTokenDir(resolve(dir, conf)) : null;
    if (tokenDir) entries.push({ path: tokenDir, children: true });
    if (c.value.db.startsWith('sqlite:') && c.value.db !== 'sqlite::memory:') {
      const db = resolve(c.value.db.slice('sqlite:'.length));
      for (const f of [db, `${db}-wal`, `${db}-shm`]) entries.push({ path: f });
    }
  }
  return checkPrivateTree(dir, entries);
}

/** Read and validate `<dataDir>/config.json` (CONFIG_NOT_FOUND / CONFIG_INVALID). */
export function readRegistryConfig(dataDir: string): Result<RegistryConfig> {
  const file = join(resolve(dataDir), REGISTRY_FILES.config);
  if (!existsSync(file)) return fail('CONFIG_NOT_FOUND', `${file} not found: run registry init --data-dir ${dataDir}`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail('CONFIG_INVALID', `${file}: not JSON (${(e as Error).message})`);
  }
  const c = RegistryConfigSchema.safeParse(json);
  return c.success ? ok(c.data) : fail('CONFIG_INVALID', `${file}: ${zodMessage(c.error)}`);
}

export interface RegistryKeys {
  readonly config: RegistryConfig;
  readonly signer: Signer;
  /** Registry certificate chain (DER). */
  readonly chain: readonly Uint8Array[];
  readonly adminToken: string;
  /** Bearer token of the security officer role (created on first use in data dirs made before it existed). */
  readonly securityOfficerToken: string;
  /** The registry token (receipt key, delegated revocation signer keys for CRL and OCSP signing). */
  readonly hsm: HsmAdmin;
  /** The HQ CA (./hq-ca.ts), or why this data dir has none (commissioning refuses then, the rest works). */
  readonly hqCa: Result<HqCa>;
  close(): Promise<void>;
}

/**
 * Read the security officer token, creating it (random, 0600, exclusive create) when the file does not exist
 * yet: data dirs initialised before the identity lifecycle get one on first use.
 */
export function ensureSecurityOfficerToken(dataDir: string, c: RegistryConfig): Result<string> {
  const file = resolve(dataDir, c.securityOfficerToken?.file ?? REGISTRY_FILES.securityOfficerToken);
  try {
    if (!existsSync(file)) {
      mkdirSync(resolve(file, '..'), { recursive: true, mode: 0o700 });
      try {
        writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // created concurrently: read that one
      }
    }
    const t = readFileSync(file, 'utf8').trim();
    if (!/^[A-Za-z0-9_-]{16,256}$/.test(t))
      return fail('CONFIG_INVALID', `${file}: expected 16..256 base64url characters (delete it to get a new one)`);
    return ok(t);
  } catch (e) {
    return fail(
      'CONFIG_INVALID',
      `cannot read the security officer token ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** Open the registry's HSM (receipt key, revocation signer keys), certificate and bearer tokens from an initialised data dir. */
export async function openRegistryKeys(dataDir: string, logger: Logger): Promise<Result<RegistryKeys>> {
  const dir = resolve(dataDir);
  const cfg = readRegistryConfig(dir);
  if (!cfg.ok) return cfg;
  const c = cfg.value;
  const p = (f: string) => resolve(dir, f);
  // Secret files are opened once without following a link and checked on that descriptor (readPrivateFile).
  const envPin = process.env['LINE_STATION_REGISTRY_PIN'];
  const pinFile = envPin === undefined ? readPrivateFile(p(c.hsm.pin.file), 'CONFIG_INVALID') : ok(envPin);
  if (!pinFile.ok) return pinFile;
  const tokenFile = readPrivateFile(p(c.adminToken.file), 'CONFIG_INVALID');
  if (!tokenFile.ok) return tokenFile;
  const pin = pinFile.value.trim();
  const adminToken = tokenFile.value.trim();
  let chain: Uint8Array[];
  try {
    const parsed = fromPemChain(readFileSync(p(c.certificate), 'utf8'));
    if (!parsed.ok) return fail('CONFIG_INVALID', `${c.certificate}: ${parsed.error.message}`);
    chain = parsed.value;
  } catch (e) {
    return fail(
      'CONFIG_INVALID',
      `cannot read the registry files: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const so = ensureSecurityOfficerToken(dir, c);
  if (!so.ok) return so;
  if (c.hsm.softhsmConf) process.env['SOFTHSM2_CONF'] = p(c.hsm.softhsmConf);
  const { openHsm } = await import('../../native/hsm/index.js');
  const hsm = await openHsm({ module: c.hsm.module, tokenLabel: c.hsm.tokenLabel, pin, logger: logger.child('[hsm]') });
  if (!hsm.ok) return hsm;
  const signer = await hsm.value.signer(c.hsm.keyLabel);
  if (!signer.ok) {
    await hsm.value.close();
    return signer;
  }
  const hqCa = await openHqCa(dir, hsm.value);
  return ok({
    config: c,
    hqCa,
    signer: signer.value,
    chain,
    adminToken,
    securityOfficerToken: so.value,
    hsm: hsm.value,
    close: () => hsm.value.close(),
  });
}
