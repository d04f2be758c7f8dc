/**
 * `station commission`: make a data dir a station whose issuing CA is certified by headquarters, on an existing
 * PKCS#11 token (core/hq/commission.ts is the contract). One path for every way of getting the answer:
 *
 * - `registry`: online, `POST /v1/stations/commission` with a one-time enrolment code, through the station's one
 *   registry client; then the delegated revocation signer exchange (station/revocation-signer.ts);
 * - `request` / `answer`: hand-carried: the request written to a file (its SHA-256 printed for the officer), the
 *   answer read from a file on a second run;
 * - `dev`: the development HQ of `station init` (station/commission/dev-hq.ts).
 *
 * Order (each step can be re-run: state.ts): the token checked (it can make P-256 keys; no key with the station's
 * labels unless a commissioning is being resumed) BEFORE anything is written; the state file; keys generated (or
 * found again by label); the request built once and kept; the answer obtained, VERIFIED with the pinned certificate
 * and kept; certificates, pki/, audit, config.json (finish.ts); the revocation signer; the state removed. A data dir
 * with config.json and no state is commissioned: running again changes nothing.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fail } from '../../core/errors.js';
import { DEFAULT_ORGANIZATION, type CommissionTokenInfo } from '../../core/hq/commission.js';
import { StationIdSchema } from '../../core/hq/protocol.js';
import type { UnsupportedProfile } from '../../core/hsm/requirements.js';
import { fromPem, fromPemChain } from '../../core/pki/pem.js';
import { systemClock, type Clock, type Logger, type Signer } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import { packagePath } from '../../native/package-root.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { preparePrivateDir, PRIVATE_DIR_MODE } from '../../native/data-dir.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { loadProfilesFromDir } from '../../native/profiles-fs.js';
import { openStore } from '../../native/store/index.js';
import { checkStationDataDir, CONFIG_FILE, readStationConfig, type StationConfig } from '../config.js';
import { createRegistryClient } from '../hq/client.js';
import { delegateRevocationSigner, type DelegationOutcome } from '../revocation-signer.js';
import { buildRequest, requestSha256, requestStationCertificate, verifyAnswer } from './documents.js';
import { finishCommissioning, type RegistrySettings } from './finish.js';
import { clearCommissionState, readCommissionState, writeCommissionState, type CommissionState } from './state.js';
import {
  checkTokenFitness,
  ensureStationKeys,
  existingKeys,
  openCommissionToken,
  type CommissionTokenRef,
  type StationKeyLabels,
} from './token.js';

/** The default labels of the station's keys in its token. */
export const DEFAULT_KEY_LABELS: StationKeyLabels = { issuingCa: 'issuing-ca', station: 'station-signing' };

/** Where the answer comes from. */
export type CommissionAuthority =
  | {
      readonly kind: 'registry';
      readonly url: string;
      /** The registry certificate the station pins: the answer must verify with it. */
      readonly registryCertificate: Uint8Array;
      readonly tlsCertificate: Uint8Array | null;
      /** The one-time enrolment code (normalised or as typed: the registry normalises). */
      readonly code: string;
      /** Run the delegated revocation signer exchange once commissioned (device CRL and OCSP at the registry). */
      readonly revocationSigner: boolean;
      readonly hqRoot: Uint8Array | null;
      readonly timeoutMs?: number;
    }
  | { readonly kind: 'request'; readonly out: string }
  | {
      readonly kind: 'answer';
      readonly answerJws: string;
      readonly registryCertificate: Uint8Array;
      readonly hqRoot: Uint8Array | null;
    }
  | {
      readonly kind: 'dev';
      /** The development HQ root: the answer is signed with its key, and the station pins it. */
      readonly pinned: Uint8Array;
      answer(requestJws: string): Promise<Result<string>>;
    };

export interface CommissionOptions {
  readonly dataDir: string;
  /** The station id (required to start; a resumed commissioning takes its own and refuses another). */
  readonly stationId?: string;
  readonly organization?: string;
  /** The token (required to start; a resumed commissioning takes its own and refuses another). */
  readonly token?: CommissionTokenRef;
  /** Where the station will read its PIN (config.json `hsm.pin`): a variable name or a file, never the PIN. */
  readonly pinSource?: { readonly env: string } | { readonly file: string };
  /** The PIN, asked for only when the token must be opened. Never logged or stored. */
  readonly pin: () => Promise<Result<string>>;
  readonly keyLabels?: StationKeyLabels;
  /** Vendor attestation root PEM files (required to start). */
  readonly attestationRoots?: readonly string[];
  readonly extraPorts?: readonly string[];
  readonly authority: CommissionAuthority;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** Facts for the operator, whatever the outcome. */
export interface TokenFacts {
  readonly token: CommissionTokenInfo;
  readonly unsupportedProfiles: readonly UnsupportedProfile[];
  readonly protectionEnforced: boolean | null;
}

export type CommissionOutcome =
  | { readonly status: 'already'; readonly config: StationConfig }
  | {
      readonly status: 'request-written';
      readonly stationId: string;
      readonly requestId: string;
      readonly requestSha256: string;
      readonly out: string;
      readonly facts: TokenFacts;
    }
  | {
      readonly status: 'commissioned';
      readonly config: StationConfig;
      readonly requestId: string;
      /** True when an earlier, interrupted run had started it. */
      readonly resumed: boolean;
      readonly facts: TokenFacts | null;
      readonly revocationSigner: DelegationOutcome | null;
    };

/** Commission the station in `o.dataDir` (see the module comment). */
export async function commissionStation(o: CommissionOptions): Promise<Result<CommissionOutcome>> {
  const clock = o.clock ?? systemClock;
  const dir = resolve(o.dataDir);
  const log = o.logger.child('[commission]');
  const st = readCommissionState(dir);
  if (!st.ok) return st;
  const existing = st.value;

  if (existsSync(join(dir, CONFIG_FILE))) {
    const insecure = checkStationDataDir(dir);
    if (!insecure.ok) return insecure;
    const cfg = readStationConfig(dir);
    if (!cfg.ok) return cfg;
    if (!existing) return ok({ status: 'already', config: cfg.value.config });
    // config.json is written last: a state still there is a revocation signer exchange to run, or a state file a
    // run killed just after config.json did not remove.
    if (existing.phase !== 'signer') {
      clearCommissionState(dir);
      return ok({ status: 'already', config: cfg.value.config });
    }
    const signer = await withToken(existing, o, log, async (hsm) => runSigner(dir, existing, hsm, clock, log));
    if (!signer.ok) return signer;
    return ok({
      status: 'commissioned',
      config: cfg.value.config,
      requestId: existing.requestId,
      resumed: true,
      facts: null,
      revocationSigner: signer.value,
    });
  }

  const start = existing ? checkResume(existing, o) : checkStart(o);
  if (!start.ok) return start;
  const state0 = start.value;
  return withToken<CommissionOutcome>(state0, o, log, async (hsm) => {
    const boardProfiles = loadProfilesFromDir(boardProfilesDir());
    const fit = await checkTokenFitness(hsm, boardProfiles.ok ? boardProfiles.value : []);
    if (!fit.ok) return fit;
    const facts: TokenFacts = {
      token: fit.value.info,
      unsupportedProfiles: fit.value.unsupportedProfiles,
      protectionEnforced: fit.value.protectionEnforced,
    };
    let state = state0;
    if (!existing) {
      const taken = await existingKeys(hsm, state.keys);
      if (!taken.ok) return taken;
      if (taken.value.length > 0)
        return fail(
          'HSM_KEY_EXISTS',
          `the token already holds a key labelled ${taken.value.map((l) => `"${l}"`).join(', ')}, and no commissioning of this data dir is in progress: refusing to take it over (another station's key?)`,
          { labels: taken.value },
        );
      const prepared = prepareDataDir(dir, o.attestationRoots ?? []);
      if (!prepared.ok) return prepared;
      state = { ...state, attestationRoots: prepared.value };
      writeCommissionState(dir, state);
      log.log('info', 'commissioning started', { stationId: state.stationId, requestId: state.requestId });
    } else log.log('info', 'commissioning resumed', { requestId: state.requestId, phase: state.phase });

    const keys = await ensureStationKeys(hsm, state.keys);
    if (!keys.ok) return keys;
    if (!state.request) {
      const built = await buildRequest({
        stationId: state.stationId,
        requestId: state.requestId,
        organization: state.organization,
        caSigner: keys.value.caSigner,
        stationSigner: keys.value.stationSigner,
        token: facts.token,
        clock,
      });
      if (!built.ok) return built;
      state = { ...state, request: built.value.jws, phase: 'requested' };
      writeCommissionState(dir, state);
    }
    const requestJws = state.request!;
    const reqSha = await requestSha256(requestJws);
    const a = o.authority;

    let answerJws = state.answer ?? null;
    if (a.kind === 'request') {
      if (answerJws)
        return fail(
          'INPUT_INVALID',
          'this commissioning already has its answer: finish it with station commission --data-dir D --answer FILE --registry-cert FILE',
        );
      writeFileAtomic(resolve(a.out), requestJws, 0o644);
      log.log('info', 'commissioning request written', { out: resolve(a.out), requestSha256: reqSha });
      return ok({
        status: 'request-written',
        stationId: state.stationId,
        requestId: state.requestId,
        requestSha256: reqSha,
        out: resolve(a.out),
        facts,
      });
    }
    if (!answerJws) {
      const got = await obtainAnswer(a, state, keys.value.stationSigner, requestJws, clock);
      if (!got.ok) return got;
      answerJws = got.value;
    }
    const verified = await verifyAnswer({
      answerJws,
      pinned: a.kind === 'dev' ? a.pinned : a.registryCertificate,
      requestJws,
      caSigner: keys.value.caSigner,
      hqRoot: a.kind === 'dev' ? null : a.hqRoot,
      clock,
    });
    if (!verified.ok) {
      log.log('error', 'commissioning answer refused', { code: verified.error.code });
      return verified;
    }
    if (!state.answer) {
      state = { ...state, answer: answerJws, phase: 'answered' };
      writeCommissionState(dir, state);
    }
    const stationCert = requestStationCertificate(requestJws);
    if (!stationCert.ok) return stationCert;
    const registry: RegistrySettings =
      a.kind === 'registry'
        ? { kind: 'online', url: a.url, registryCertificate: a.registryCertificate, tlsCertificate: a.tlsCertificate }
        : a.kind === 'answer'
          ? { kind: 'offline', registryCertificate: a.registryCertificate }
          : { kind: 'none' };
    const signerNext = a.kind === 'registry' && a.revocationSigner;
    const finished = await finishCommissioning(
      {
        dataDir: dir,
        state,
        hsm,
        verified: verified.value,
        stationCertificate: stationCert.value,
        requestSha256: reqSha,
        tokenInfo: facts.token,
        registry,
        authority: a.kind === 'registry' ? 'registry' : a.kind === 'answer' ? 'hand-carried' : 'development-hq',
        logger: log,
      },
      () => {
        if (signerNext) writeCommissionState(dir, { ...state, phase: 'signer' });
      },
    );
    if (!finished.ok) return finished;
    let delegation: DelegationOutcome | null = null;
    if (signerNext) {
      const d = await runSigner(dir, { ...state, phase: 'signer' }, hsm, clock, log);
      if (!d.ok) return d;
      delegation = d.value;
    } else clearCommissionState(dir);
    return ok({
      status: 'commissioned',
      config: finished.value,
      requestId: state.requestId,
      resumed: existing !== null,
      facts,
      revocationSigner: delegation,
    });
  });
}

/** The board profiles shipped with the station (for the token's unsupported-profile list). */
function boardProfilesDir(): string {
  return packagePath('resources', 'boards');
}

/** Open the state's token with the PIN, run `fn`, close it. */
async function withToken<T>(
  state: CommissionState,
  o: CommissionOptions,
  log: Logger,
  fn: (hsm: HsmAdmin) => Promise<Result<T>>,
): Promise<Result<T>> {
  const pin = await o.pin();
  if (!pin.ok) return pin;
  const hsm = await openCommissionToken(state.token, pin.value, log);
  if (!hsm.ok) return hsm;
  try {
    return await fn(hsm.value);
  } finally {
    await hsm.value.close();
  }
}

/** A new commissioning: every input present and well-formed; the state it will write (phase `keys`). */
function checkStart(o: CommissionOptions): Result<CommissionState> {
  if (o.authority.kind === 'answer')
    return fail(
      'CONFIG_NOT_FOUND',
      `no commissioning is in progress in ${o.dataDir}: write the request first (station commission ... --out request.jws)`,
    );
  if (!o.stationId) return fail('INPUT_INVALID', 'a station id is required (--station-id ID)');
  const id = StationIdSchema.safeParse(o.stationId);
  if (!id.success)
    return fail('INPUT_INVALID', `station id ${JSON.stringify(o.stationId)}: 1..64 of A-Z a-z 0-9 . _ -`);
  if (!o.token) return fail('INPUT_INVALID', 'the token is required (--module PATH --token-label LABEL)');
  if (!o.pinSource) return fail('INPUT_INVALID', 'the PIN source is required');
  const roots = o.attestationRoots ?? [];
  if (roots.length === 0)
    return fail('CONFIG_INVALID', 'at least one --attestation-root (vendor root PEM) is required');
  for (const f of roots) {
    if (!existsSync(f)) return fail('CONFIG_INVALID', `attestation root ${f} not found`);
    const parsed = fromPemChain(readFileSync(f, 'utf8'));
    if (!parsed.ok) return fail('CONFIG_INVALID', `attestation root ${f}: ${parsed.error.message}`);
  }
  return ok({
    schema: 'line-station/commission-state/v1',
    stationId: id.data,
    requestId: randomUUID(),
    organization: o.organization ?? DEFAULT_ORGANIZATION,
    phase: 'keys',
    token: o.token,
    pin: o.pinSource,
    keys: o.keyLabels ?? DEFAULT_KEY_LABELS,
    attestationRoots: roots.map((f) => resolve(f)),
    extraPorts: [...(o.extraPorts ?? [])],
    startedAt: (o.clock ?? systemClock).now().toISOString(),
  });
}

/** A resumed commissioning: what was given must not contradict the state. */
function checkResume(s: CommissionState, o: CommissionOptions): Result<CommissionState> {
  if (o.stationId && o.stationId !== s.stationId)
    return fail(
      'INPUT_INVALID',
      `a commissioning of station ${s.stationId} is in progress in this data dir (not ${o.stationId}): finish it, or start again in another data dir`,
    );
  if (o.token && (o.token.module !== s.token.module || o.token.tokenLabel !== s.token.tokenLabel))
    return fail(
      'INPUT_INVALID',
      `the commissioning in progress uses token "${s.token.tokenLabel}" of ${s.token.module}, not "${o.token.tokenLabel}" of ${o.token.module}`,
    );
  return ok(s);
}

/** The private data dir with its folders, the attestation roots copied in (their relative paths). */
function prepareDataDir(dir: string, roots: readonly string[]): Result<string[]> {
  const own = preparePrivateDir(dir);
  if (!own.ok) return own;
  for (const d of ['', 'pki', 'pki/attestation-roots', 'logs']) {
    mkdirSync(join(dir, d), { recursive: true, mode: PRIVATE_DIR_MODE });
    chmodSync(join(dir, d), PRIVATE_DIR_MODE);
  }
  const out: string[] = [];
  for (const f of roots) {
    const text = readFileSync(f, 'utf8');
    const parsed = fromPem(text);
    if (!parsed.ok) return fail('CONFIG_INVALID', `attestation root ${f}: ${parsed.error.message}`);
    const rel = join('pki', 'attestation-roots', basename(f));
    writeFileAtomic(join(dir, rel), text); // a copy would keep the source file's mode
    out.push(rel);
  }
  return ok(out);
}

/** The answer JWS from the registry or the development HQ (verified by the caller). */
async function obtainAnswer(
  a: Exclude<CommissionAuthority, { kind: 'request' }>,
  state: CommissionState,
  stationSigner: Signer,
  requestJws: string,
  clock: Clock,
): Promise<Result<string>> {
  switch (a.kind) {
    case 'answer':
      return ok(a.answerJws.trim());
    case 'dev':
      return a.answer(requestJws);
    case 'registry': {
      const client = createRegistryClient({
        url: a.url,
        tlsCertificate: a.tlsCertificate,
        registryCertificate: a.registryCertificate,
        stationId: state.stationId,
        signer: stationSigner,
        clock,
        timeoutMs: a.timeoutMs ?? 30_000,
      });
      const r = await client.commission({ code: a.code, request: requestJws });
      return r.ok ? r : err(r.error.error);
    }
  }
}

/**
 * The delegated revocation signer exchange of an online commissioning (config.json already written), then the state
 * removed. The registry's settings come from config.json, the keys from the open token.
 */
async function runSigner(
  dir: string,
  state: CommissionState,
  hsm: HsmAdmin,
  clock: Clock,
  log: Logger,
): Promise<Result<DelegationOutcome>> {
  const cfg = readStationConfig(dir);
  if (!cfg.ok) return cfg;
  const reg = cfg.value.config.registry;
  if (!reg?.url) return fail('CONFIG_INVALID', 'the revocation signer exchange needs registry.url in config.json');
  const read = (rel: string) => fromPem(readFileSync(cfg.value.path(rel), 'utf8'), 'CERTIFICATE');
  const regCert = read(reg.certificate);
  if (!regCert.ok) return regCert;
  const tls = reg.tlsCertificate ? read(reg.tlsCertificate) : null;
  if (tls && !tls.ok) return tls;
  const caChain = fromPemChain(readFileSync(cfg.value.path(cfg.value.config.pki.caChain), 'utf8'));
  if (!caChain.ok) return caChain;
  const caSigner = await hsm.signer(state.keys.issuingCa);
  if (!caSigner.ok) return caSigner;
  const stSigner = await hsm.signer(state.keys.station);
  if (!stSigner.ok) return stSigner;
  const store = openStore(join(dir, 'station.db'));
  if (!store.ok) return store;
  try {
    const d = await delegateRevocationSigner({
      url: reg.url,
      registryCertificate: regCert.value,
      tlsCertificate: tls ? tls.value : null,
      stationId: state.stationId,
      signer: stSigner.value,
      caSigner: caSigner.value,
      caChain: caChain.value,
      clock,
      audit: (type, payload) => {
        store.value.appendAudit(type, payload);
      },
    });
    if (!d.ok) {
      log.log('error', 'revocation signer exchange failed', { code: d.error.code });
      return d;
    }
    clearCommissionState(dir);
    return d;
  } finally {
    store.value.close();
  }
}
