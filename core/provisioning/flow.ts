/**
 * The provisioning flow: a resumable state machine over the ports.
 *
 *   identify -> (decide) -> baseline -> key -> attest -> certify -> record
 *
 * No identity before the board passes: the baseline is measured, checked and signed before any key or certificate
 * exists. The attestation comes after the key step so that the board's attestation key signs a statement binding
 * the fresh nonce, the chip, the key the station is about to certify (on-board) or wrap to (injection: the
 * transport key), and the measurements it checked; nothing is issued or wrapped before that statement verified.
 * Injection then wraps to the attested transport key inside the certify step.
 *
 * Every step ends with a checkpoint committed to the Store in one transaction (with its audit entry),
 * and every step is idempotent, so a power loss at any instant leaves the database consistent and
 * the board either fully provisioned with a complete record or resumable from the last checkpoint:
 * plugging the board in again continues the active run.
 *
 * The decision "may I provision this board, and how?" is the pure function `decide()` below.
 *
 * What a step does on the board is the board driver's (core/provisioning/driver.ts; the drivers are in
 * core/boards/): the profile matched from the board's identify answer names it, `deps.driverFor` resolves it. The
 * flow keeps the run, its checkpoints, the gates, issuance, the manifest and the record.
 */
import { fromBase64Url, sha256Hex, toBase64, toBase64Url } from '../bytes.js';
import { isResumable, stationError, type StationError } from '../errors.js';
import type { BoardIdentity, ProgressEvent, StepName } from '../model.js';
import type { BoardClient, CallOptions, Clock, DetectedPort, Hsm, Logger, Signer } from '../ports.js';
import { err, ok, type Result } from '../result.js';
import type { RunData, RunKind, RunPolicySnapshot, RunRow, Store, StoredRecord } from './store.js';
import { checkIdentityText, matchProfile, type BoardProfile } from './profiles.js';
import type { WorkOrder } from './work-order.js';
import type { BoardDriver, DriverCheckpoint, DriverContext } from './driver.js';
import { PROTOCOL_V2 } from '../protocol/messages.js';
import {
  applyProfileOverride,
  issueDeviceCertificate,
  type CertificateProfileOverride,
  type RevocationUrls,
} from '../pki/device-cert.js';
import { toPem } from '../pki/pem.js';
import { buildManifest, signManifest, verifyManifest } from './baseline.js';
import { jwsLeafSha256, signedWithHeader } from './record-manifest.js';
import { recordFormatMembers, signRecord, type ProvisioningRecord } from './record.js';
import { canonicalJson } from '../canonical.js';

/** The station's identity and CA, all keys in the HSM. */
export interface StationIdentity {
  readonly id: string;
  /** Station signing key (manifests, records). */
  readonly signer: Signer;
  /** Station certificate chain, DER, leaf first (station cert, issuing CA, root). */
  readonly chain: readonly Uint8Array[];
  /** Issuing CA key (device certificates). */
  readonly caSigner: Signer;
  /** Issuing CA chain, DER: issuing CA first, then root. */
  readonly caChain: readonly Uint8Array[];
}

export interface FlowDeps {
  readonly board: BoardClient;
  readonly hsm: Hsm;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly station: StationIdentity;
  /** Vendor attestation roots (DER). */
  readonly attestationRoots: readonly Uint8Array[];
  readonly profiles: readonly BoardProfile[];
  /** The board driver a profile names (core/boards/index.ts `driverFor`). */
  readonly driverFor: (profile: BoardProfile) => Result<BoardDriver>;
  readonly workOrder: WorkOrder;
  readonly operator: string;
  readonly port: DetectedPort;
  readonly random: (n: number) => Uint8Array;
  readonly newId: () => string;
  /** The registry's signed policy and quotas (station/lifecycle); absent = no lifecycle checks. */
  readonly gate?: FlowGate;
  /** CRL / OCSP URLs for the device certificate (station config, policy override); null/absent: none. */
  readonly revocationUrls?: RevocationUrls | null;
}

/** Lifecycle checks applied before provisioning (station/lifecycle, docs/lifecycle.md "Station side"). */
export interface FlowGate {
  /** FLOW_BLOCKED when headquarters blocked or decommissioned the board (serial or chip id), else null. */
  blocked(identity: BoardIdentity): StationError | null;
  /**
   * Before a new run starts: FLOW_QUOTA_EXHAUSTED when the work order's quota is used up (or no quota and the
   * station requires one), else null. The unit itself is reserved in the createRun transaction.
   */
  admit(run: { readonly workOrder: string; readonly kind: RunKind; readonly chipId: string }): StationError | null;
  /**
   * FLOW_STATION_REVOKED when the policy in force revokes this station (revokedAt <= now), else null: no run
   * starts or resumes, and a run in flight stops before its device key and certificate.
   */
  stationRevoked?(): StationError | null;
  /** The registry policy in force, snapshotted into every new run (its certificate profile override). */
  policy?(): RunPolicy | null;
}

/** The registry policy as a run needs it (station/lifecycle). */
export interface RunPolicy {
  readonly version: number;
  /** SHA-256 of the policy payload JSON as signed (the `policy.applied` audit entry has the same digest). */
  readonly sha256: string;
  /** Board profile id -> certificate profile override. */
  readonly profileOverrides: Readonly<Record<string, CertificateProfileOverride>>;
}

/** Snapshot of the policy in force for a run of `profileId`. */
export function snapshotPolicy(policy: RunPolicy | null, profileId: string): RunPolicySnapshot {
  if (!policy) return { version: null, sha256: null, override: null };
  const ov = Object.prototype.hasOwnProperty.call(policy.profileOverrides, profileId)
    ? (policy.profileOverrides[profileId] ?? null)
    : null;
  return { version: policy.version, sha256: policy.sha256, override: ov };
}

export interface FlowOptions {
  /** Explicit supervisor-approved re-provisioning of an already provisioned board (recorded as a rotation). */
  readonly reprovision?: boolean;
  /** The supervisor who approved `reprovision` (kept in the rotation run: a failed rework's revocation names them). */
  readonly supervisor?: string;
  /**
   * Scan-in: the serial number scanned from the board's own barcode for this port. Checked against identify before
   * anything is written: a mismatch is refused (FLOW_SCAN_MISMATCH). Required when the work order says
   * `requireScanIn` (FLOW_SCAN_REQUIRED without it).
   */
  readonly expectSerial?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
}

export type FlowOutcome =
  | {
      readonly status: 'provisioned';
      readonly record: StoredRecord;
      readonly resumed: boolean;
      readonly identity: BoardIdentity;
    }
  | {
      readonly status: 'already-provisioned';
      readonly record: StoredRecord;
      /** The board holds the certificate of its record (one that does not is refused: BOARD_CERT_MISSING). */
      readonly identity: BoardIdentity;
    };

/** What to do with an identified board; pure. */
export type Decision =
  | { readonly action: 'skip'; readonly record: StoredRecord }
  | { readonly action: 'resume'; readonly run: RunRow }
  | { readonly action: 'start'; readonly kind: 'initial' }
  | { readonly action: 'start'; readonly kind: 'rotation'; readonly supersedes: StoredRecord }
  | { readonly action: 'refuse'; readonly error: StationError };

/**
 * May this board be provisioned, and how? Pure: decides from the board's identify response, its
 * current record and active run in the store, and whether a supervisor asked for re-provisioning.
 *
 * - An active run is always resumed (that is how a power loss or an unplug mid-step recovers).
 * - A board with a current record is skipped (never a second identity) unless re-provisioning is
 *   explicitly asked for, which is recorded as a rotation superseding that record. A board with a current record
 *   that no longer holds its certificate (erased, scrapped, reflashed) is refused (BOARD_CERT_MISSING), never
 *   reported "already provisioned".
 * - A board that is locked but unknown to this station was provisioned elsewhere: refused
 *   (a supervisor may re-provision it, which zeroizes it first).
 */
export function decide(input: {
  readonly identity: BoardIdentity;
  readonly current: StoredRecord | null;
  readonly currentCertSha256: string | null;
  readonly activeRun: RunRow | null;
  readonly reprovision: boolean;
  /** The policy blocks this board (FLOW_BLOCKED): refused whatever else holds, even a resume. */
  readonly blocked?: StationError | null;
  /** The policy revokes this station (FLOW_STATION_REVOKED): nothing starts or resumes. */
  readonly stationRevoked?: StationError | null;
}): Decision {
  const { identity, current, activeRun, reprovision } = input;
  if (input.stationRevoked) return { action: 'refuse', error: input.stationRevoked };
  if (input.blocked) return { action: 'refuse', error: input.blocked };
  if (activeRun) return { action: 'resume', run: activeRun };
  if (current) {
    if (reprovision) return { action: 'start', kind: 'rotation', supersedes: current };
    const boardMatches =
      identity.state.certificateSha256 !== null && identity.state.certificateSha256 === input.currentCertSha256;
    if (boardMatches) return { action: 'skip', record: current };
    // Never a green "already provisioned" for a board that lost its identity (erased, scrapped, reflashed).
    return {
      action: 'refuse',
      error: stationError(
        'BOARD_CERT_MISSING',
        `board ${identity.serialNumber} has record ${current.recordId} at this station but does not hold its certificate`,
        { chipId: identity.chipId, recordId: current.recordId },
      ),
    };
  }
  if (identity.state.locked && !reprovision) {
    return {
      action: 'refuse',
      error: stationError(
        'BOARD_LOCKED',
        `board ${identity.serialNumber} is locked but this station has no record of it`,
        {
          chipId: identity.chipId,
        },
      ),
    };
  }
  return { action: 'start', kind: 'initial' };
}

/** What a step's driver call needs (`identifyBoard`): the driver context of `step`, with the run's data. */
export type DriverContextOf = (step: StepName, runData: RunData, tag: Partial<ProgressEvent>) => DriverContext;

/** A board identified for a run or a scrap: its checked identity, its profile, its driver. */
export interface IdentifiedBoard {
  readonly identity: BoardIdentity;
  readonly profile: BoardProfile;
  readonly driver: BoardDriver;
  readonly context: DriverContextOf;
}

/** What identifying a board needs from the flow's dependencies. */
export type IdentifyDeps = Pick<
  FlowDeps,
  'board' | 'hsm' | 'clock' | 'logger' | 'random' | 'profiles' | 'workOrder' | 'attestationRoots' | 'port' | 'driverFor'
>;

/**
 * The identify step: the board's claim (the LS `identify`, which every board answers), its text checked, matched to
 * a profile of the work order, then checked by the profile's driver (which derives what the hardware proves, e.g. a
 * TPM's chip id from its EK). Writes nothing; `progress` receives the driver's notes.
 */
export async function identifyBoard(
  deps: IdentifyDeps,
  signal: { readonly signal?: AbortSignal },
  progress: Progress,
): Promise<Result<IdentifiedBoard>> {
  return (await identifyClaim(deps, signal, progress)).result;
}

/**
 * `identifyBoard`, with the board's claim (its identify answer once its text checked; null before that): a board
 * refused at identify is recorded under the identity it claimed (`recordRefusal`).
 */
async function identifyClaim(
  deps: IdentifyDeps,
  signal: { readonly signal?: AbortSignal },
  progress: Progress,
): Promise<{ readonly claim: BoardIdentity | null; readonly result: Result<IdentifiedBoard> }> {
  const id = await deps.board.identify(signal);
  if (!id.ok) return { claim: null, result: id };
  const claimed = id.value;
  // Board-chosen strings are checked before anything is matched, written or shown (core/provisioning/profiles.ts).
  const badText = checkIdentityText(claimed);
  if (badText) return { claim: null, result: err(badText) };
  return { claim: claimed, result: await identifyChecked(deps, signal, progress, claimed) };
}

/** The rest of identify for a claim whose text is checked: profile, work order, protocol, the driver's check. */
async function identifyChecked(
  deps: IdentifyDeps,
  signal: { readonly signal?: AbortSignal },
  progress: Progress,
  claimed: BoardIdentity,
): Promise<Result<IdentifiedBoard>> {
  const matched = matchProfile(deps.profiles, { port: deps.port, identity: claimed });
  if (!matched.profile) {
    return err(
      stationError(matched.serialMismatch ? 'BOARD_IDENTITY_INVALID' : 'FLOW_PROFILE_UNKNOWN', matched.reason, {
        candidates: matched.candidates,
      }),
    );
  }
  const profile = matched.profile;
  if (!deps.workOrder.profiles.includes(profile.id)) {
    return err(
      stationError(
        'FLOW_WORK_ORDER_MISMATCH',
        `board profile ${profile.id} is not part of work order ${deps.workOrder.id}`,
        {
          profile: profile.id,
          workOrder: deps.workOrder.id,
        },
      ),
    );
  }
  // Protocol 1 attests nothing but the chip: refused unless the board's profile explicitly allows legacy mode.
  if (claimed.protocolVersion < PROTOCOL_V2 && profile.attestation?.allowLegacyV1 !== true) {
    return err(
      stationError(
        'ATTEST_LEGACY_REFUSED',
        `board ${claimed.serialNumber} speaks protocol ${claimed.protocolVersion} (no key-bound attestation) and profile ${profile.id} does not allow legacy mode`,
        { protocolVersion: claimed.protocolVersion, profile: profile.id },
      ),
    );
  }
  const drv = deps.driverFor(profile);
  if (!drv.ok) return drv;
  const driver = drv.value;
  // From here on every board request waits the profile's default timeout (the driver uses keygenMs and flashMs
  // where the board generates a key or writes its flash).
  const call: CallOptions = { ...signal, timeoutMs: profile.timeouts.defaultMs };
  /** What the driver gets at each call: the run's data as last checkpointed, `note` as the step's progress. */
  const driverContext = (step: StepName, runData: RunData, tag: Partial<ProgressEvent>): DriverContext => ({
    board: deps.board,
    hsm: deps.hsm,
    clock: deps.clock,
    logger: deps.logger,
    random: deps.random,
    profile,
    workOrder: deps.workOrder,
    attestationRoots: deps.attestationRoots,
    call,
    runData,
    note: (message) => progress(step, 'running', { ...tag, message }),
  });
  const checked = await driver.identify(
    driverContext('identify', {}, { chipId: claimed.chipId, serialNumber: claimed.serialNumber }),
    claimed,
  );
  if (!checked.ok) return checked;
  const identity = checked.value.identity;
  // The profile was matched and the text checked on the claim: a driver may say more (the state it reads from the
  // hardware), never that the board is another one (a mismatch is the driver's error result, not a new identity).
  const same = (k: 'chipId' | 'serialNumber' | 'model') => identity[k] === claimed[k];
  if (!same('chipId') || !same('serialNumber') || !same('model')) {
    throw new Error(`driver ${driver.id} returned another identity than the board claimed`);
  }
  return ok({ identity, profile, driver, context: driverContext });
}

/** A step's progress reporter for the board on `deps.port`: elapsed time counted from now. */
type Progress = (step: StepName, status: ProgressEvent['status'], extra?: Partial<ProgressEvent>) => void;
function progressOf(deps: Pick<FlowDeps, 'clock' | 'port'>, onProgress?: (e: ProgressEvent) => void): Progress {
  const t0 = deps.clock.monotonicMs();
  return (step, status, extra = {}) =>
    onProgress?.({
      port: deps.port.path,
      step,
      status,
      elapsedMs: Math.round(deps.clock.monotonicMs() - t0),
      ...extra,
    });
}

/**
 * Erase a board's identity through its driver (a supervisor's scrap): identified as for a run (so a TPM board is
 * zeroized in its TPM, an LS board by its firmware), then `driver.zeroize`. Writes nothing; the caller audits and
 * queues the scrap event. Returns the identity the board had.
 */
export async function zeroizeBoard(
  deps: IdentifyDeps,
  opts: { readonly signal?: AbortSignal; readonly onProgress?: (e: ProgressEvent) => void } = {},
): Promise<Result<BoardIdentity>> {
  const progress = progressOf(deps, opts.onProgress);
  const found = await identifyBoard(deps, opts.signal ? { signal: opts.signal } : {}, progress);
  if (!found.ok) return found;
  const { identity, driver, context } = found.value;
  const who = { chipId: identity.chipId, serialNumber: identity.serialNumber, model: identity.model };
  const z = await driver.zeroize(context('key', {}, who), identity);
  return z.ok ? ok(identity) : z;
}

/** Provision one connected board (or resume its interrupted run). */
export async function provisionBoard(deps: FlowDeps, opts: FlowOptions = {}): Promise<Result<FlowOutcome>> {
  const t0 = deps.clock.monotonicMs();
  const log = deps.logger;
  const progress = progressOf(deps, opts.onProgress);
  const signal = opts.signal ? { signal: opts.signal } : {};
  const cancelled = () => opts.signal?.aborted === true;

  // ---- identify: the board's claim, checked, matched to a profile and checked by the profile's driver.
  progress('identify', 'running');
  const { claim, result: found } = await identifyClaim(deps, signal, progress);
  /**
   * A board refused at identify (before any run exists): recorded with the identity it claimed and the reason
   * (no identity is created), so the log and the yield count it; then reported like any failed step.
   */
  const refuse = (e: StationError): Result<never> => {
    if (claim && isRecordedRefusal(e)) {
      const rec = deps.store.recordRefusal({
        chipId: claim.chipId,
        serialNumber: claim.serialNumber,
        model: claim.model,
        port: deps.port.path,
        workOrder: deps.workOrder.id,
        operator: deps.operator,
        stationId: deps.station.id,
        code: e.code,
        message: e.message,
        ...(e.params ? { params: e.params } : {}),
        scanned: opts.expectSerial ?? null,
      });
      log.log('warn', `board refused at identify: ${e.code}`, {
        chipId: claim.chipId,
        serialNumber: claim.serialNumber,
        refusalId: rec.refusalId,
        ...(rec.coalesced ? { coalesced: rec.count } : {}),
      });
    }
    return failStep('identify', e);
  };
  if (!found.ok) return refuse(found.error);
  const { identity, profile, driver, context: driverContext } = found.value;
  const who = { chipId: identity.chipId, serialNumber: identity.serialNumber, model: identity.model };
  // Scan-in: the barcode scanned for this port must be this board, before anything is written.
  const scan = checkScan(deps.workOrder, identity, opts.expectSerial);
  if (scan) return refuse(scan);
  progress('identify', 'done', who);

  const current = deps.store.findCurrentRecord(identity.chipId);
  const activeRun = deps.store.findActiveRun(identity.chipId);
  const decision = decide({
    identity,
    current,
    currentCertSha256: current ? recordCertSha256(current) : null,
    activeRun,
    reprovision: opts.reprovision === true,
    blocked: deps.gate?.blocked(identity) ?? null,
    stationRevoked: deps.gate?.stationRevoked?.() ?? null,
  });

  let run: RunRow;
  let resumed = false;
  switch (decision.action) {
    case 'refuse':
      // No run is written: an interrupted run stays as it was (also when this station is revoked); the refusal is.
      return refuse(decision.error);
    case 'skip':
      // The record may come from a completeRun whose sync a crash cut short: on disk before it is reported.
      await deps.store.whenDurable();
      log.log('info', 'board already provisioned', { ...who, recordId: decision.record.recordId });
      for (const s of ['baseline', 'key', 'attest', 'certify', 'record'] as const) progress(s, 'skipped', who);
      return ok({
        status: 'already-provisioned',
        record: decision.record,
        identity,
      });
    case 'resume':
      run = decision.run;
      resumed = true;
      log.log('info', 'resuming interrupted run', { ...who, runId: run.runId, step: run.step });
      // A run from before policy snapshots: it takes the policy in force now, unless it already has its certificate.
      if (run.data.policy === undefined && run.data.certificate === undefined) {
        const snap = snapshotPolicy(deps.gate?.policy?.() ?? null, profile.id);
        run = deps.store.checkpoint(run.runId, run.step, { policy: snap }, { policyVersion: snap.version });
      }
      break;
    case 'start': {
      const refused = deps.gate?.admit({ workOrder: deps.workOrder.id, kind: decision.kind, chipId: identity.chipId });
      if (refused) return refuse(refused);
      // The policy in force when the run starts is the one its certificate is issued under (also when resumed).
      const snap = snapshotPolicy(deps.gate?.policy?.() ?? null, profile.id);
      // The run and its identify checkpoint in one transaction.
      run = deps.store.createRun(
        {
          runId: deps.newId(),
          chipId: identity.chipId,
          serialNumber: identity.serialNumber,
          port: deps.port.path,
          workOrder: deps.workOrder.id,
          operator: deps.operator,
          stationId: deps.station.id,
          kind: decision.kind,
          supersedesRecordId: decision.kind === 'rotation' ? decision.supersedes.recordId : null,
          startedAt: deps.clock.now().toISOString(),
        },
        {
          patch: {
            profileId: profile.id,
            identity: { ...identity },
            policy: snap,
            ...(decision.kind === 'rotation' && opts.supervisor ? { supervisor: opts.supervisor } : {}),
          },
          audit: {
            profileId: profile.id,
            model: identity.model,
            firmwareVersion: identity.firmwareVersion,
            policyVersion: snap.version,
          },
        },
      );
      break;
    }
  }
  const runId = run.runId;
  const ctx = { ...who, runId };
  const timings: Record<string, number> = { ...(run.data.timings ?? {}) };
  let stepStart = deps.clock.monotonicMs();
  const begin = (step: StepName) => {
    stepStart = deps.clock.monotonicMs();
    progress(step, 'running', ctx);
  };
  const done = (step: StepName) => {
    timings[step] = Math.round((timings[step] ?? 0) + deps.clock.monotonicMs() - stepStart);
    progress(step, 'done', ctx);
  };

  function failStep(step: StepName, e: StationError): Result<never> {
    progress(step, 'failed', { message: `${e.code}: ${e.message}` });
    return err(e);
  }
  /** Fail the run in the store (it stays resumable by a new run) and report. */
  function failRun(step: StepName, failure: StationError): Result<never> {
    let e = failure;
    // A disconnect, cancellation or timeout leaves the run active so that re-plugging resumes it (isResumable).
    if (!isResumable(e.code)) {
      const failed = deps.store.failRun(runId, {
        code: e.code,
        message: e.message,
        step,
        ...(e.params ? { params: e.params } : {}),
      });
      // A rework that erased the board queued its old credential's revocation in that transaction: say so.
      if (failed.reworkRevocation) e = reworkRevoked(e, failed.reworkRevocation);
    }
    log.log(e.kind === 'bug' ? 'error' : 'warn', `step ${step} failed: ${e.code} ${e.message}`, ctx);
    return failStep(step, e);
  }
  const checkCancel = (step: StepName): Result<void> =>
    cancelled() ? failRun(step, stationError('FLOW_CANCELLED', 'provisioning cancelled')) : ok(undefined);
  /** The driver's context for a call in `step`: the run's data now. */
  const dctx = (step: StepName): DriverContext => driverContext(step, run.data, ctx);
  /**
   * Commit a step (one transaction with its audit entry); the driver's checkpoint, if any, is merged into
   * `run.data.driver` in the same transaction.
   */
  const commit = (
    step: StepName,
    patch: Partial<RunData>,
    audit: Readonly<Record<string, unknown>>,
    driverCheckpoint?: DriverCheckpoint,
  ): RunRow =>
    deps.store.checkpoint(
      runId,
      step,
      driverCheckpoint ? { ...patch, driver: { ...run.data.driver, ...driverCheckpoint } } : patch,
      audit,
    );
  /** A driver checkpoint of a step that commits nothing else (audit: the keys it sets). */
  const commitDriver = (step: StepName, driverCheckpoint: DriverCheckpoint | undefined): RunRow =>
    driverCheckpoint ? commit(step, {}, { driver: Object.keys(driverCheckpoint) }, driverCheckpoint) : run;

  // ---- rotation: erase the old identity on the board first (supervisor-approved). The intent (`zeroizing`) is
  // committed durably before the board is touched: a run that then fails for good revokes the superseded record's
  // certificate unless the station saw the board keep it (docs/lifecycle.md "Failed rework").
  if (run.kind === 'rotation' && !run.data['zeroized']) {
    const superseded = current && current.recordId === run.supersedesRecordId ? recordCertSha256(current) : null;
    const holds = (state: BoardIdentity['state']) =>
      superseded !== null && state.certificateSha256 !== null && state.certificateSha256 === superseded;
    const supersedes = run.supersedesRecordId;
    if (identity.state.locked) {
      if (run.data['zeroizing'] !== true) {
        run = deps.store.checkpoint(runId, 'identify', { zeroizing: true }, { zeroizing: true, supersedes });
      }
      const z = await driver.zeroize(dctx('key'), identity);
      if (!z.ok) {
        // A refusal that ends the run: the board still holding the old certificate (read back) keeps it unrevoked.
        if (!isResumable(z.error.code)) {
          const again = await deps.board.identify(signal);
          if (again.ok && holds(again.value.state)) {
            run = deps.store.checkpoint(runId, 'identify', { zeroizing: false }, { zeroizing: false, kept: true });
          }
        }
        return failRun('key', z.error);
      }
      run = deps.store.checkpoint(runId, 'identify', { zeroized: true }, { zeroized: true, supersedes });
    } else if (resumed && !holds(identity.state)) {
      // Resumed with the board already erased (e.g. a crash between its zeroize and the checkpoint): as zeroized.
      run = deps.store.checkpoint(
        runId,
        'identify',
        { zeroized: true },
        { zeroized: true, supersedes, found: 'erased' },
      );
    }
  }

  // ---- baseline: measured and checked before any key or certificate exists. A failing board ends here with
  // its signed manifest in the run: no key, no certificate. A resumed run measures again (a read): the statement
  // must bind what the station checks now; the manifest is signed again only when the measurements or the policy
  // changed, or when the station key changed since it was signed (a run resumed across `station rotate-key`: the
  // registry takes only a manifest signed by the record's own signer).
  let c = checkCancel('baseline');
  if (!c.ok) return c;
  begin('baseline');
  const meas = await driver.measure(dctx('baseline'), identity);
  if (!meas.ok) return failRun('baseline', meas.error);
  const { measurements, measurementsSha256, verdict } = meas.value;
  const policySha256 = await sha256Hex(canonicalJson(deps.workOrder.baseline));
  const kept = run.data.manifest;
  const manifestAt = (capturedAt: string) =>
    buildManifest({
      identity,
      measurements,
      policy: deps.workOrder.baseline,
      policyRef: { workOrder: deps.workOrder.id, sha256: policySha256 },
      verdict,
      capturedAt,
    });
  const changed = !kept || kept.measurementsSha256 !== measurementsSha256 || kept.policySha256 !== policySha256;
  // Signed with a station key replaced since (`station rotate-key` while the run was stopped): signed again with the
  // current key. The payload is what the station measured now; only its `capturedAt` is the one of the manifest
  // signed before, and only when that manifest verifies (signature, chain to the station root) and the rest of it
  // is byte for byte this payload; otherwise a new manifest, captured now.
  const rekeyed =
    !changed &&
    !signedWithHeader(kept.jws, { alg: deps.station.signer.algorithm, x5c: deps.station.chain.map(toBase64) });
  if (changed || rekeyed) {
    const before = rekeyed ? await verifyManifest(kept!.jws, [deps.station.chain.at(-1)!], deps.clock) : null;
    const same =
      before?.ok === true && canonicalJson(manifestAt(before.value.capturedAt)) === canonicalJson(before.value);
    const manifest = manifestAt(same ? before.value.capturedAt : deps.clock.now().toISOString());
    const jws = await signManifest(deps.station.signer, [...deps.station.chain], manifest);
    if (!jws.ok) return failRun('baseline', jws.error);
    run = commit(
      'baseline',
      { manifest: { jws: jws.value, pass: verdict.pass, measurementsSha256, policySha256 } },
      {
        pass: verdict.pass,
        violations: verdict.violations.map((v) => v.rule),
        measurementsSha256,
        ...(rekeyed
          ? {
              resigned: 'station-key-changed',
              capturedAtKept: same,
              previousSignerSha256: await jwsLeafSha256(kept!.jws),
              signerSha256: await sha256Hex(deps.station.chain[0]!),
            }
          : {}),
      },
      meas.value.checkpoint,
    );
  } else {
    run = commitDriver('baseline', meas.value.checkpoint);
  }
  if (!verdict.pass) {
    return failRun(
      'baseline',
      stationError('POLICY_VIOLATION', verdict.violations.map((v) => v.message).join('; '), {
        violations: verdict.violations,
      }),
    );
  }
  done('baseline');

  // ---- key: the key the attestation will bind. The device key the board already holds (an earlier invocation
  // of this run), a new on-board key, or (injection) the board's ephemeral transport key the HSM will wrap to.
  c = checkCancel('key');
  if (!c.ok) return c;
  // Headquarters revoked this station while the run was in flight: no key, no certificate.
  let revoked = deps.gate?.stationRevoked?.() ?? null;
  if (revoked) return failRun('key', revoked);
  begin('key');
  const bound = await driver.key(dctx('key'), identity);
  if (!bound.ok) return failRun('key', bound.error);
  if (bound.value.created) {
    const key = bound.value.created;
    run = commit(
      'key',
      { key },
      {
        mode: key.mode,
        curve: key.curve,
        publicKeySha256: await sha256Hex(fromBase64Url(key.publicKeySpki)),
      },
      bound.value.checkpoint,
    );
  } else {
    run = commitDriver('key', bound.value.checkpoint);
  }
  done('key');

  // ---- attest: a fresh nonce every time (also when resumed); the statement must bind the chip, this nonce, the
  // key from the key step and the measurements checked above. Nothing is issued or wrapped before this passed.
  c = checkCancel('attest');
  if (!c.ok) return c;
  begin('attest');
  const nonce = deps.random(32);
  const att = await driver.attest(dctx('attest'), { identity, nonce, bound: bound.value, measurementsSha256 });
  if (!att.ok) return failRun('attest', att.error);
  const evidence = att.value.evidence;
  run = commit(
    'attest',
    {
      nonce: toBase64Url(nonce),
      attestation: { leafSha256: att.value.leafSha256, verifiedAt: deps.clock.now().toISOString(), evidence },
    },
    {
      leafSha256: att.value.leafSha256,
      mode: evidence.mode,
      ...(evidence.mode === 'key-bound-v2' ? { boundKey: evidence.boundKey.role } : {}),
    },
    att.value.checkpoint,
  );
  done('attest');

  // ---- certify: (injection) wrap to the attested transport key, inject, proof of possession; issue the
  // certificate (logged, and so revocable, BEFORE it is written to the board); install; read back.
  const cert = run.data.certificate;
  const boardHoldsRunCert = cert !== undefined && identity.state.certificateSha256 === cert.sha256;
  if (!boardHoldsRunCert) {
    c = checkCancel('certify');
    if (!c.ok) return c;
    begin('certify');
    if (bound.value.role === 'transport') {
      if (!driver.completeKey) throw new Error(`driver ${driver.id} bound a transport key but cannot inject`);
      const inj = await driver.completeKey(dctx('certify'), identity, bound.value);
      if (!inj.ok) return failRun('certify', inj.error);
      run = deps.store.checkpoint(
        runId,
        'key',
        { key: inj.value },
        {
          mode: inj.value.mode,
          curve: inj.value.curve,
          publicKeySha256: await sha256Hex(fromBase64Url(inj.value.publicKeySpki)),
        },
      );
    }
    const key = run.data.key;
    if (!key) throw new Error('certify without a device key');
    if (!cert) {
      revoked = deps.gate?.stationRevoked?.() ?? null;
      if (revoked) return failRun('certify', revoked);
      const caCert = deps.station.caChain[0];
      if (!caCert) throw new Error('station CA chain is empty');
      const snap = run.data.policy;
      const certProfile = applyProfileOverride(profile.certificate, snap?.override ?? undefined);
      const issued = await issueDeviceCertificate({
        ca: { signer: deps.station.caSigner, certificate: caCert },
        publicKeySpki: fromBase64Url(key.publicKeySpki),
        profile: certProfile,
        vars: {
          serialNumber: identity.serialNumber,
          chipId: identity.chipId,
          model: identity.model,
          workOrder: deps.workOrder.id,
        },
        clock: deps.clock,
        ...(deps.revocationUrls ? { revocationUrls: deps.revocationUrls } : {}),
      });
      if (!issued.ok) return failRun('certify', issued.error);
      const chainDer = deps.station.caChain.map((d) => toBase64Url(d));
      run = deps.store.checkpoint(
        runId,
        'certify',
        {
          certificate: {
            serialNumber: issued.value.serialNumber,
            der: toBase64Url(issued.value.der),
            chain: chainDer,
            sha256: issued.value.sha256,
          },
          certificateProfile: { sha256: await sha256Hex(canonicalJson(certProfile)) },
        },
        {
          certificateSerial: issued.value.serialNumber,
          sha256: issued.value.sha256,
          policyVersion: snap?.version ?? null,
        },
        {
          serialNumber: issued.value.serialNumber,
          sha256: issued.value.sha256,
          chipId: identity.chipId,
          runId,
          der: issued.value.der,
          notBefore: issued.value.notBefore,
          notAfter: issued.value.notAfter,
          issuedAt: deps.clock.now().toISOString(),
        },
      );
    }
    const certNow = run.data.certificate!;
    // Logged, and so revocable, on disk before the board gets it (also a certificate from an interrupted run).
    await deps.store.whenDurable();
    const chain = [fromBase64Url(certNow.der), ...deps.station.caChain.slice(0, 1)];
    // The driver writes the chain and reads it back: the board must now hold exactly this certificate.
    const inst = await driver.install(dctx('certify'), identity, chain);
    if (!inst.ok) return failRun('certify', inst.error);
    if (inst.value.certificateSha256 !== certNow.sha256) {
      return failRun(
        'certify',
        stationError('CERT_INSTALL_MISMATCH', 'the board reports a different certificate than the one written', {
          expected: certNow.sha256,
          actual: inst.value.certificateSha256,
        }),
      );
    }
    run = deps.store.checkpoint(
      runId,
      'certify',
      { installed: { certificateSha256: certNow.sha256 } },
      { installed: certNow.sha256 },
    );
    done('certify');
  } else {
    progress('certify', 'skipped', ctx);
  }

  // ---- record: lock the identity on the board, then commit the signed record
  c = checkCancel('record');
  if (!c.ok) return c;
  begin('record');
  if (!run.data.locked) {
    const lk = await driver.lock(dctx('record'), identity);
    if (!lk.ok) return failRun('record', lk.error);
    run = deps.store.checkpoint(runId, 'record', { locked: true }, { locked: true });
  }
  timings['record'] = Math.round(deps.clock.monotonicMs() - stepStart);
  const certFinal = run.data.certificate!;
  const keyFinal = run.data.key!;
  const snapFinal = run.data.policy;
  const profFinal = run.data.certificateProfile;
  const evidenceFinal = run.data.attestation?.evidence;
  if (!evidenceFinal) throw new Error('record without attestation evidence');
  const record: ProvisioningRecord = {
    // v3 (the station chain once) when the manifest rebuilds from the record's header; v2 otherwise.
    ...recordFormatMembers({
      alg: deps.station.signer.algorithm,
      stationChain: deps.station.chain,
      caChain: deps.station.caChain,
      manifestJws: run.data.manifest!.jws,
    }),
    recordId: deps.newId(),
    runId,
    kind: run.kind,
    supersedesRecordId: run.supersedesRecordId,
    station: { id: deps.station.id, certificateSha256: await sha256Hex(deps.station.chain[0]!) },
    operator: run.operator,
    workOrder: run.workOrder,
    profileId: profile.id,
    board: {
      chipId: identity.chipId,
      serialNumber: identity.serialNumber,
      model: identity.model,
      hardwareRevision: identity.hardwareRevision,
      firmwareVersion: identity.firmwareVersion,
      port: deps.port.path,
    },
    attestation: evidenceFinal,
    key: { mode: keyFinal.mode, curve: keyFinal.curve as 'P-256' | 'P-384', publicKeySpki: keyFinal.publicKeySpki },
    certificate: {
      serialNumber: certFinal.serialNumber,
      sha256: certFinal.sha256,
      pem: toPem(fromBase64Url(certFinal.der), 'CERTIFICATE'),
    },
    verdict: { pass: verdict.pass, violations: verdict.violations },
    // Which registry policy (and certificate profile) the certificate was issued under, for headquarters' audit.
    ...(snapFinal && profFinal
      ? {
          policy: {
            version: snapFinal.version,
            sha256: snapFinal.sha256,
            profileOverride: snapFinal.override,
            certificateProfileSha256: profFinal.sha256,
          },
        }
      : {}),
    timings,
    startedAt: run.startedAt,
    completedAt: deps.clock.now().toISOString(),
    outcome: 'provisioned',
  };
  const signed = await signRecord(deps.station.signer, [...deps.station.chain], record);
  if (!signed.ok) return failRun('record', signed.error);
  const stored = deps.store.completeRun(runId, {
    recordId: record.recordId,
    runId,
    chipId: identity.chipId,
    serialNumber: identity.serialNumber,
    workOrder: run.workOrder,
    operator: run.operator,
    kind: run.kind,
    supersedesRecordId: run.supersedesRecordId,
    outcome: 'provisioned',
    certificateSerial: certFinal.serialNumber,
    createdAt: record.completedAt,
    recordJson: signed.value.json,
    jws: signed.value.jws,
    recordSha256: signed.value.sha256,
  });
  // The record on disk before PASS is reported (and so before the label and the sync).
  await deps.store.whenDurable();
  progress('record', 'done', ctx);
  log.log('info', 'board provisioned', {
    ...ctx,
    recordId: stored.recordId,
    ms: Math.round(deps.clock.monotonicMs() - t0),
  });
  return ok({ status: 'provisioned', record: stored, resumed, identity });
}

function recordCertSha256(r: StoredRecord): string | null {
  try {
    const parsed = JSON.parse(r.recordJson) as { certificate?: { sha256?: unknown } };
    return typeof parsed.certificate?.sha256 === 'string' ? parsed.certificate.sha256 : null;
  } catch {
    return null;
  }
}

/**
 * The refusals that are recorded (`Store.recordRefusal`): every verdict on a board that answered identify, refused
 * before a run exists. Not recorded: a conversation that stopped (resumable: the board is not refused) and bugs.
 */
export function isRecordedRefusal(e: StationError): boolean {
  return e.kind === 'user' && !isResumable(e.code);
}

/**
 * Scan-in (pure): FLOW_SCAN_MISMATCH when the serial number scanned for the port is not the board's, or
 * FLOW_SCAN_REQUIRED when the work order requires a scan and none was given; else null.
 */
export function checkScan(
  workOrder: Pick<WorkOrder, 'id' | 'requireScanIn'>,
  identity: Pick<BoardIdentity, 'serialNumber' | 'chipId'>,
  scanned: string | undefined,
): StationError | null {
  const s = scanned?.trim();
  if (!s) {
    return workOrder.requireScanIn === true
      ? stationError('FLOW_SCAN_REQUIRED', `work order ${workOrder.id} requires the board's barcode to be scanned`, {
          workOrder: workOrder.id,
        })
      : null;
  }
  if (s === identity.serialNumber) return null;
  return stationError(
    'FLOW_SCAN_MISMATCH',
    `scanned ${JSON.stringify(s.slice(0, 64))} but the board on this port is ${identity.serialNumber}`,
    { scanned: s.slice(0, 64), serialNumber: identity.serialNumber, chipId: identity.chipId },
  );
}

/** The failure of a rework that erased its board, naming the old credential's revocation its failRun queued. */
function reworkRevoked(
  e: StationError,
  queued: { readonly requestId: string; readonly certificateSerial: string },
): StationError {
  return {
    ...e,
    message: `${e.message}; the board's identity was erased, so its previous certificate ${queued.certificateSerial} is queued for revocation at headquarters`,
    details: { ...(e.details ?? {}), revocationQueued: { ...queued } },
  };
}
