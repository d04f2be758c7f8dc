/**
 * `station init`: a development station in a data dir, made by the same path as `station commission`
 * (station/commission/): a SoftHSM2 token "LS Station" for the issuing CA key and the station signing key (generated
 * inside it, sensitive and never extractable: docs/hsm.md), commissioned by
 *
 * - a development headquarters (station/commission/dev-hq.ts): an HQ root key in a second SoftHSM2 token, "LS Offline
 *   Root" (in production the HQ root is offline at headquarters and never attached to a station), which issues the
 *   station CA and signs the answer; the station pins that root. The chain is station -> station CA -> dev HQ root;
 * - or, given a registry (URL, pinned certificate, one-time enrolment code from `registry commission-station`), that
 *   registry, online, with the delegated revocation signer exchange (as `station commission --registry`).
 *
 * Development PINs are random and kept in 0600 files under secrets/; production stations use their vendor token
 * with `station commission` and take the PIN from the environment or a file (docs/deployment.md). Re-running is
 * safe: an initialised data dir is left as it is; an interrupted one resumes with the tokens it made.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../../core/errors.js';
import { PACKAGE_ROOT } from '../../native/package-root.js';
import type { Clock, Logger } from '../../core/ports.js';
import { systemClock } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { preparePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, readPrivateFile } from '../../native/data-dir.js';
import { createSoftHsmEnv, findSoftHsmModule, initToken, type SoftHsmEnv } from '../../native/softhsm-dev.js';
import { commissionStation, DEFAULT_KEY_LABELS, type CommissionAuthority } from './commission.js';
import { openDevHq, type DevHq } from './dev-hq.js';
import { readCommissionState } from './state.js';
import { checkStationDataDir, CONFIG_FILE, type StationConfig } from '../config.js';

export const REPO_ROOT = PACKAGE_ROOT;

export const ROOT_TOKEN = 'LS Offline Root';
export const STATION_TOKEN = 'LS Station';
export const KEY_LABELS = { root: 'root-ca', ...DEFAULT_KEY_LABELS } as const;

/**
 * Certificate lifetimes of a development station (docs/formats.md "Device certificate profile"). Device certificates
 * are valid `validityDays` of their board profile (3,650 days for the bundled ones) but never past the issuing CA's
 * notAfter (core/pki/device-cert.ts caps them). The issuing CA lives 20 years so that a board certified in its first
 * 10 years gets its full 10 years. The dev HQ root outlives it (30 years); the station's own signing certificate is
 * short (825 days) and rotated (`station rotate-key`). A registry issues with its own policy's lifetimes.
 */
export const ROOT_CA_DAYS = 30 * 365;
export const ISSUING_CA_DAYS = 20 * 365;
export { STATION_CERT_DAYS } from '../config.js';

/** A registry to commission against instead of the development HQ. */
export interface InitRegistry {
  readonly url: string;
  readonly registryCertificate: Uint8Array;
  readonly tlsCertificate: Uint8Array | null;
  /** The one-time enrolment code (`registry commission-station --id S`). */
  readonly code: string;
  readonly hqRoot?: Uint8Array | null;
}

export interface InitOptions {
  readonly dataDir: string;
  readonly stationId?: string;
  /** Vendor attestation root certificates (PEM files) to trust. */
  readonly attestationRoots: readonly string[];
  readonly extraPorts?: readonly string[];
  /** Commission against this registry (online, revocation signer included) instead of the development HQ. */
  readonly registry?: InitRegistry;
  readonly logger: Logger;
  readonly clock?: Clock;
}

const SECRET = {
  rootUser: 'secrets/root-user.pin',
  rootSo: 'secrets/root-so.pin',
  so: 'secrets/hsm-so.pin',
  user: 'secrets/hsm-user.pin',
} as const;

/** Initialise a development station (idempotent: an initialised data dir is left as it is). */
export async function initStation(o: InitOptions): Promise<Result<{ created: boolean; config: StationConfig }>> {
  const clock = o.clock ?? systemClock;
  const dir = resolve(o.dataDir);
  const state = readCommissionState(dir);
  if (!state.ok) return state;
  if (existsSync(join(dir, CONFIG_FILE)) && !state.value) {
    const insecure = checkStationDataDir(dir);
    if (!insecure.ok) return insecure;
    return ok({ created: false, config: JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')) as StationConfig });
  }
  if (!state.value) {
    if (o.attestationRoots.length === 0)
      return fail('CONFIG_INVALID', 'at least one --attestation-root (vendor root PEM) is required');
    for (const f of o.attestationRoots)
      if (!existsSync(f)) return fail('CONFIG_INVALID', `attestation root ${f} not found`);
  }
  const log = o.logger.child('[init]');
  // Private from the first write (docs/architecture.md "Data directory permissions"): a folder made by hand for the
  // station (e.g. 0755) is tightened to 0700; another user's folder is refused.
  const own = preparePrivateDir(dir);
  if (!own.ok) return own;
  for (const d of ['', 'secrets', 'pki', 'pki/attestation-roots', 'logs']) {
    mkdirSync(join(dir, d), { recursive: true, mode: PRIVATE_DIR_MODE });
    chmodSync(join(dir, d), PRIVATE_DIR_MODE);
  }
  const env = await devTokens(dir, !o.registry, log);
  if (!env.ok) return env;
  const stationId = state.value?.stationId ?? o.stationId ?? `station-${randomBytes(3).toString('hex')}`;

  let hq: DevHq | null = null;
  let authority: CommissionAuthority;
  if (o.registry) {
    authority = {
      kind: 'registry',
      url: o.registry.url,
      registryCertificate: o.registry.registryCertificate,
      tlsCertificate: o.registry.tlsCertificate,
      code: o.registry.code,
      revocationSigner: true,
      hqRoot: o.registry.hqRoot ?? null,
    };
  } else {
    const rootPin = readPrivateFile(join(dir, SECRET.rootUser), 'CONFIG_INVALID');
    if (!rootPin.ok) return rootPin;
    const opened = await openDevHq({
      module: env.value.module,
      tokenLabel: ROOT_TOKEN,
      pin: rootPin.value.trim(),
      keyLabel: KEY_LABELS.root,
      rootFile: join(dir, 'pki', 'root.pem'),
      subject: { commonName: `Line Station Dev Root CA (${stationId})`, organization: 'Line Station' },
      rootDays: ROOT_CA_DAYS,
      issuingCaDays: ISSUING_CA_DAYS,
      logger: log,
      clock,
    });
    if (!opened.ok) return opened;
    hq = opened.value;
    authority = { kind: 'dev', pinned: hq.root, answer: (req) => hq!.answer(req) };
  }
  try {
    const r = await commissionStation({
      dataDir: dir,
      stationId,
      token: { module: env.value.module, tokenLabel: STATION_TOKEN, softhsmConf: env.value.conf },
      pinSource: { file: SECRET.user },
      pin: async () => {
        const p = readPrivateFile(join(dir, SECRET.user), 'CONFIG_INVALID');
        return p.ok ? ok(p.value.trim()) : p;
      },
      attestationRoots: o.attestationRoots,
      extraPorts: o.extraPorts ?? [],
      authority,
      logger: o.logger,
      clock,
    });
    if (!r.ok) return r;
    if (r.value.status === 'request-written')
      return fail('INTERNAL', 'station init wrote a request instead of an answer');
    log.log('info', 'station initialised', { stationId, dataDir: dir });
    return ok({ created: r.value.status === 'commissioned', config: r.value.config });
  } finally {
    await hq?.close();
  }
}

/**
 * The SoftHSM2 environment of the data dir with its tokens: made once (random PINs in secrets/, 0600), then reused
 * (an interrupted init resumes with them). `withRoot`: also the dev HQ root token.
 */
async function devTokens(dir: string, withRoot: boolean, log: Logger): Promise<Result<SoftHsmEnv>> {
  const module = findSoftHsmModule();
  if (!module) return fail('HSM_MODULE_LOAD_FAILED', 'SoftHSM2 is not installed (apt-get install softhsm2)');
  const base = join(dir, 'hsm');
  if (existsSync(join(base, 'softhsm2.conf')) && existsSync(join(dir, SECRET.user))) {
    process.env['SOFTHSM2_CONF'] = join(base, 'softhsm2.conf');
    return ok({ conf: join(base, 'softhsm2.conf'), tokenDir: join(base, 'tokens'), module });
  }
  const env = await createSoftHsmEnv(base);
  const pin = () => randomBytes(12).toString('hex');
  const tokens: [string, string, string][] = [[STATION_TOKEN, SECRET.so, SECRET.user]];
  if (withRoot) tokens.unshift([ROOT_TOKEN, SECRET.rootSo, SECRET.rootUser]);
  for (const [label, soFile, userFile] of tokens) {
    const so = pin();
    const user = pin();
    const t = await initToken(env, { label, soPin: so, pin: user });
    if (!t.ok) return t;
    writeFileSync(join(dir, soFile), so, { mode: PRIVATE_FILE_MODE });
    // The station token comes last: secrets/hsm-user.pin present says every token is made (see above).
    writeFileSync(join(dir, userFile), user, { mode: PRIVATE_FILE_MODE });
  }
  log.log('info', 'SoftHSM2 tokens created', { tokens: tokens.map((t) => t[0]) });
  return ok(env);
}
