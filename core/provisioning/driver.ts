/**
 * Board drivers: what one board family does at each provisioning step (docs/architecture.md "Board drivers").
 *
 * This is the flow's port for a board family, defined beside the flow like the `Store` port: the drivers live in
 * core/boards/ (which imports core/provisioning), and the station passes the registry in (`FlowDeps.driverFor`,
 * core/boards/index.ts), so core/provisioning never imports core/boards. Drivers import it as core/boards/driver.ts.
 *
 * The flow (core/provisioning/flow.ts) owns everything that is the same for every board: the run and its store
 * checkpoints (each with its audit entry), the lifecycle gates (blocked boards, quotas, a revoked station), the
 * decision to start/resume/skip/refuse, issuing the device certificate from the station CA, the baseline manifest
 * and the signed record. A driver owns the board-specific part of each step and returns data; it never writes the
 * store and never issues anything. The board profile's `driver` chooses it (core/boards/index.ts `driverFor`).
 * Board calls carry `ctx.call`: the profile's `timeouts.defaultMs`; a driver uses `keygenMs` for key generation
 * and injection and `flashMs` where the board writes its flash (certificate, lock, erase).
 *
 *   identify  claimed identity (LS `identify`)  -> driver.identify   (check / derive the hardware identity)
 *   baseline  driver.measure   -> measurements, their digest and the verdict against the work order's baseline
 *   key       driver.key       -> the key the attestation binds (a device key, or an injection transport key)
 *   attest    driver.attest    -> verified evidence as the record carries it (nothing issued before it passed)
 *   certify   driver.completeKey (injection only) -> certificate issued by the flow -> driver.install (+ read back)
 *   record    driver.lock      -> the flow signs and commits the record
 *   rotation  driver.zeroize   (supervisor-approved re-provisioning erases the old identity first)
 *
 * Every method is idempotent for a resumed run: it receives the run's data (what earlier invocations checkpointed)
 * and may return `checkpoint`, a JSON object the flow merges into `run.data.driver` in the step's transaction.
 */
import type { AttestKeyRole, BoardIdentity } from '../model.js';
import type { BoardClient, CallOptions, Clock, Hsm, Logger } from '../ports.js';
import type { Result } from '../result.js';
import type { buildManifest, Verdict } from './baseline.js';
import type { BoardProfile, DriverId } from './profiles.js';
import type { AttestationEvidenceRecord } from './record.js';
import type { RunData } from './store.js';
import type { WorkOrder } from './work-order.js';

export { DRIVER_IDS, type DriverId } from './profiles.js';

/** What the baseline manifest's `measurements` holds: exactly what `buildManifest` (core/provisioning/baseline.ts) takes. */
export type ManifestMeasurements = Parameters<typeof buildManifest>[0]['measurements'];

/** JSON a driver keeps in its run between invocations (`run.data.driver`). */
export type DriverCheckpoint = Readonly<Record<string, unknown>>;

/** What every driver call gets: the board link, the station's ports and the run's fixed inputs. */
export interface DriverContext {
  /** The board's link (LS protocol). A TPM board relays TPM 2.0 commands over it (`tpmTransmit`). */
  readonly board: BoardClient;
  readonly hsm: Hsm;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: (n: number) => Uint8Array;
  readonly profile: BoardProfile;
  readonly workOrder: WorkOrder;
  /** Vendor roots the board's hardware identity must chain to, DER (LS attestation CAs, TPM EK manufacturer CAs). */
  readonly attestationRoots: readonly Uint8Array[];
  /** Cancellation and the per-request timeout (from the profile's `timeouts`). */
  readonly call: CallOptions;
  /** The run's data as last checkpointed (empty object before the run exists, in `identify`). */
  readonly runData: RunData;
  /**
   * A finer progress line inside the current step for the operator (e.g. "EK certificate verified"); the flow
   * forwards it as the step's `running` progress message.
   */
  readonly note: (message: string) => void;
}

export interface IdentifyResult {
  /**
   * The identity the run is keyed by: the claim, checked (for a TPM, the chip id derived from the EK must equal the
   * claim's, else the driver answers BOARD_IDENTITY_INVALID). Its chip id, serial number and model are the claim's
   * (the flow matched the profile with them; anything else is a bug); `state` may be what the hardware says.
   */
  readonly identity: BoardIdentity;
}

export interface MeasureResult {
  /** What the baseline manifest's `measurements` holds (plain JSON; docs/formats.md). */
  readonly measurements: ManifestMeasurements;
  /** SHA-256 (hex) of the canonical JSON of `measurements`: what the attestation binds. */
  readonly measurementsSha256: string;
  /** The measurements checked against the work order's baseline. */
  readonly verdict: Verdict;
  readonly checkpoint?: DriverCheckpoint;
}

/** The key the attestation binds, and the device key the key step created (to checkpoint), if any. */
export interface BoundKey {
  readonly role: AttestKeyRole;
  /** SPKI DER of the bound key. */
  readonly key: Uint8Array;
  readonly created: NonNullable<RunData['key']> | null;
  readonly checkpoint?: DriverCheckpoint;
}

export interface AttestInput {
  readonly identity: BoardIdentity;
  /** A fresh 32-byte nonce from the flow (new at every invocation, also when resumed). */
  readonly nonce: Uint8Array;
  readonly bound: BoundKey;
  readonly measurementsSha256: string;
}

export interface AttestResult {
  /** SHA-256 (hex) of the leaf certificate of the hardware identity the evidence verified against. */
  readonly leafSha256: string;
  readonly evidence: AttestationEvidenceRecord;
  readonly checkpoint?: DriverCheckpoint;
}

export interface BoardDriver {
  readonly id: DriverId;
  /** identify step, after the board's claim: check it (and derive what the hardware proves) before any decision. */
  identify(ctx: DriverContext, claimed: BoardIdentity): Promise<Result<IdentifyResult>>;
  /** baseline step: measure the board and check it against `ctx.workOrder.baseline`. */
  measure(ctx: DriverContext, identity: BoardIdentity): Promise<Result<MeasureResult>>;
  /** key step: the run's device key if it already has one, else a new on-board key or an injection transport key. */
  key(ctx: DriverContext, identity: BoardIdentity): Promise<Result<BoundKey>>;
  /** attest step: challenge with the nonce and verify; an error result when anything does not verify. */
  attest(ctx: DriverContext, input: AttestInput): Promise<Result<AttestResult>>;
  /** certify step, injection only (`bound.role === 'transport'`): make the device key and give it to the board. */
  completeKey?(
    ctx: DriverContext,
    identity: BoardIdentity,
    bound: BoundKey,
  ): Promise<Result<NonNullable<RunData['key']>>>;
  /** certify step: store the chain (DER, leaf first) on the board and read it back; the SHA-256 of the leaf stored. */
  install(
    ctx: DriverContext,
    identity: BoardIdentity,
    chain: readonly Uint8Array[],
  ): Promise<Result<{ readonly certificateSha256: string }>>;
  /** record step: lock the identity (no new key or certificate without zeroize). Already locked is success. */
  lock(ctx: DriverContext, identity: BoardIdentity): Promise<Result<void>>;
  /** Rotation: erase the board's identity (key and certificate); `identity.chipId` is the guard. */
  zeroize(ctx: DriverContext, identity: BoardIdentity): Promise<Result<void>>;
}
