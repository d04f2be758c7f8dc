/**
 * The per-board lifecycle of one board position (a port): a pure reducer `(position, event) => position` over what
 * happens there — a board attached, a run started (automatically, by Retry, or by a supervisor's re-provision), the
 * flow's progress, the run's outcome, the board removed, a scrap. The UI service's slots (station/service/slots.ts)
 * and `station watch` (station/cli/watch.ts) both drive their ports with it: they keep only the effects (starting
 * and aborting runs, timers, output), so a board that does the same thing ends the same way in both.
 *
 * The states (`BoardPosition.state`, SlotView's `state`):
 *   connected     a board is attached and may start (`mayStart`)
 *   running       a run is in progress
 *   pass/already  provisioned now / it was already; waits for the board to be removed (or a supervisor override)
 *   fail          the run failed (its run is failed in the store); waits for removal, Retry (`canRetry`) or override
 *   identity-lost the board was provisioned here but no longer holds the certificate of its record (erased, scrapped,
 *                 reflashed: `isIdentityLost`). Not a PASS and not a FAIL of a run (none was written; the station
 *                 records a refusal): the board is set aside, or a supervisor re-provisions it (override). Waits for
 *                 removal or the override; never retried by itself
 *   disconnected  the run stopped because the link went away; its run stays active: re-plugging resumes it. A board
 *                 still attached (a quick re-plug discovery did not see) resumes by itself (`wantsRelink`, `relinked`)
 *   interrupted   the run stopped with the board attached and silent (`PROTOCOL_TIMEOUT`); its run stays active:
 *                 re-seating the board (detach + attach) or Retry resumes it. Never restarted by itself
 *
 * Which failures leave the run active is ONE rule, `isResumable` (core/errors.ts), that the flow uses too.
 */
import { isResumable, stationError, type ErrorCode, type StationError } from '../errors.js';
import type { ProgressEvent, StepName, StepStatus } from '../model.js';

export { isResumable, RESUMABLE_CODES } from '../errors.js';

/** The steps a board position shows (sync is reported by the sync view, not per board). */
export const POSITION_STEPS = ['detect', 'identify', 'baseline', 'key', 'attest', 'certify', 'record'] as const;

export type PositionState =
  'connected' | 'running' | 'pass' | 'already' | 'fail' | 'identity-lost' | 'disconnected' | 'interrupted';

/**
 * The codes that say the board lost the identity this station gave it (erased, scrapped, reflashed): the position
 * shows `identity-lost` (not `fail`), `station provision` and `station watch` exit `identityLost`.
 */
export const IDENTITY_LOST_CODES = ['BOARD_CERT_MISSING'] as const satisfies readonly ErrorCode[];

/** The failure says the board no longer holds the identity of its record here (`identity-lost`). */
export function isIdentityLost(code: string): boolean {
  return (IDENTITY_LOST_CODES as readonly string[]).includes(code);
}

/** One step of the current (or last) run. */
export interface PositionStep {
  readonly step: StepName;
  readonly status: StepStatus;
  /** How long the step took (done or failed), ms. */
  readonly elapsedMs: number | null;
  /** The run's elapsed ms when the step started running. */
  readonly startedAtMs: number;
}

/** Everything known about one board position. Immutable: the reducer returns a new one. */
export interface BoardPosition {
  readonly state: PositionState;
  /** A board is on the port (discovery says so). */
  readonly attached: boolean;
  /** A run is in flight (between `started` and `outcome`), whatever `state` shows (a detach shows disconnected). */
  readonly running: boolean;
  readonly chipId: string | null;
  readonly serialNumber: string | null;
  readonly model: string | null;
  readonly steps: readonly PositionStep[];
  readonly currentStep: StepName | null;
  /** The latest `running` message of the current step (a finer step, e.g. "EK certificate verified"). */
  readonly note: string | null;
  /** ISO time the last run started. */
  readonly startedAt: string | null;
  /** Monotonic ms the last run started and ended. */
  readonly startMs: number | null;
  readonly endMs: number | null;
  readonly error: StationError | null;
  readonly recordId: string | null;
  /** Retrying is safe (the failure is not a policy or attestation verdict). */
  readonly canRetry: boolean;
}

/** The run's result as the flow returns it (`Result<FlowOutcome>` fits). */
export type RunOutcome =
  | {
      readonly ok: true;
      readonly value: {
        readonly status: 'provisioned' | 'already-provisioned';
        readonly record: { readonly recordId: string };
        readonly identity: { readonly chipId: string; readonly serialNumber: string; readonly model: string };
      };
    }
  | { readonly ok: false; readonly error: StationError };

/** What happens at a board position. */
export type PositionEvent =
  /** Discovery sees a board on the port. */
  | { readonly type: 'attached' }
  /** Discovery no longer sees it (the shell aborts a run in flight). */
  | { readonly type: 'detached' }
  /** A run starts: automatically (`mayStart`), by Retry or by a supervisor's re-provision. */
  | { readonly type: 'started'; readonly at: string; readonly monoMs: number }
  | { readonly type: 'progress'; readonly event: ProgressEvent }
  | { readonly type: 'outcome'; readonly outcome: RunOutcome; readonly monoMs: number }
  /** The quick re-plug delay passed (`wantsRelink`): the still-attached board may resume. */
  | { readonly type: 'relinked' }
  /** A supervisor erased the board's identity (scrap override). */
  | { readonly type: 'scrapped'; readonly chipId: string; readonly serialNumber: string; readonly model: string };

/** How long a board whose link dropped but that discovery still sees waits before it resumes by itself (ms). */
export const RELINK_DELAY_MS = 1500;

const freshSteps = (): PositionStep[] =>
  POSITION_STEPS.map((step) => ({ step, status: 'pending', elapsedMs: null, startedAtMs: 0 }));

/** A board just attached to an empty position. */
export function attachedPosition(): BoardPosition {
  return {
    state: 'connected',
    attached: true,
    running: false,
    chipId: null,
    serialNumber: null,
    model: null,
    steps: freshSteps(),
    currentStep: null,
    note: null,
    startedAt: null,
    startMs: null,
    endMs: null,
    error: null,
    recordId: null,
    canRetry: false,
  };
}

/** The position may start a run by itself: a board is attached, idle, not finished and not waiting for a re-seat. */
export function mayStart(p: BoardPosition | null): boolean {
  return p !== null && p.attached && !p.running && p.state === 'connected';
}

/** The link dropped while discovery still sees the board: after RELINK_DELAY_MS send `relinked`. */
export function wantsRelink(p: BoardPosition | null): boolean {
  return p !== null && p.attached && !p.running && p.state === 'disconnected';
}

/** The position holds a finished board (counted once: pass, already, fail or identity-lost). */
export function isFinished(p: BoardPosition | null): boolean {
  return (
    p !== null && (p.state === 'pass' || p.state === 'already' || p.state === 'fail' || p.state === 'identity-lost')
  );
}

/** The position holds a run that stopped and stays active (resumes on re-plug, re-seat or Retry). */
export function isPaused(p: BoardPosition | null): boolean {
  return p !== null && !p.running && (p.state === 'disconnected' || p.state === 'interrupted');
}

/** The link itself went away (unplugged, or aborted by a detach): as opposed to a board that stopped answering. */
const linkGone = (e: StationError) => e.code === 'LINK_DISCONNECTED' || e.code === 'FLOW_CANCELLED';

/**
 * The lifecycle of one board position. `null` is an empty position (no board, nothing kept); a detach returns
 * `null` unless an active run is kept for the board's return. Events that do not apply are ignored (the position is
 * returned as it was): a progress or outcome of no run in flight, a start while one is.
 */
export function reduce(p: BoardPosition | null, ev: PositionEvent): BoardPosition | null {
  switch (ev.type) {
    case 'attached':
      if (p === null) return attachedPosition();
      if (p.attached) return p;
      // The board of a kept run is back (or another board: the flow finds out which): resume.
      if (p.state === 'disconnected' || p.running)
        return { ...p, attached: true, state: p.running ? p.state : 'connected' };
      // A new board on a port whose finished tile was kept: start clean.
      return attachedPosition();
    case 'detached':
      if (p === null || !p.attached) return p;
      if (p.running || p.state === 'disconnected' || p.state === 'interrupted')
        return { ...p, attached: false, state: 'disconnected' };
      return null;
    case 'started':
      if (p === null || p.running) return p;
      return {
        ...p,
        state: 'running',
        running: true,
        steps: freshSteps(),
        currentStep: 'detect',
        note: null,
        error: null,
        recordId: null,
        canRetry: false,
        startedAt: ev.at,
        startMs: ev.monoMs,
        endMs: null,
      };
    case 'progress':
      return p !== null && p.running ? progressed(p, ev.event) : p;
    case 'outcome':
      return p !== null && p.running ? ended(p, ev.outcome, ev.monoMs) : p;
    case 'relinked':
      return wantsRelink(p) ? { ...p!, state: 'connected' } : p;
    case 'scrapped':
      if (p === null || p.running) return p;
      return {
        ...p,
        state: 'fail',
        chipId: ev.chipId,
        serialNumber: ev.serialNumber,
        model: ev.model,
        currentStep: null,
        note: null,
        recordId: null,
        canRetry: false,
        error: {
          ...stationError('FLOW_CANCELLED', `board ${ev.serialNumber} was scrapped: its identity is erased`),
          action: 'set-aside',
          guidance: 'Scrapped by a supervisor. Remove the board from the line and put it in the scrap bin.',
        },
      };
  }
}

/** A flow progress event: identity, step status and timing, the current step and its note. */
function progressed(p: BoardPosition, e: ProgressEvent): BoardPosition {
  const steps = p.steps.map((st): PositionStep => {
    if (st.step !== e.step) return st;
    if (e.status === 'running')
      // A note is a second `running` event of the same step: the step keeps its start.
      return st.status === 'running' ? st : { ...st, status: 'running', startedAtMs: e.elapsedMs };
    if (e.status === 'done' || e.status === 'failed')
      return { ...st, status: e.status, elapsedMs: Math.max(0, e.elapsedMs - st.startedAtMs) };
    return { ...st, status: e.status };
  });
  let { currentStep, note } = p;
  // A step the position does not show (`sync`: the sync view reports it) changes only the identity.
  const shown = p.steps.some((st) => st.step === e.step);
  if (shown && e.status === 'running') {
    note = e.message ?? (e.step === currentStep ? note : null);
    currentStep = e.step;
  } else if (shown && e.step === currentStep) note = null;
  return {
    ...p,
    chipId: e.chipId ?? p.chipId,
    serialNumber: e.serialNumber ?? p.serialNumber,
    model: e.model ?? p.model,
    steps,
    currentStep,
    note,
  };
}

/**
 * The run's outcome: pass / already / fail / identity-lost (`isIdentityLost`), or a pause whose run stays active
 * (`isResumable`).
 */
function ended(p: BoardPosition, o: RunOutcome, monoMs: number): BoardPosition {
  const base = { ...p, running: false, endMs: monoMs, currentStep: null, note: null };
  if (o.ok) {
    const v = o.value;
    return {
      ...base,
      state: v.status === 'provisioned' ? 'pass' : 'already',
      recordId: v.record.recordId,
      chipId: v.identity.chipId,
      serialNumber: v.identity.serialNumber,
      model: v.identity.model,
      error: null,
      canRetry: false,
    };
  }
  const e = o.error;
  if (isResumable(e.code)) {
    if (!p.attached || linkGone(e))
      return {
        ...base,
        state: 'disconnected',
        error: e.code === 'LINK_DISCONNECTED' ? e : stationError('LINK_DISCONNECTED', 'the board was removed mid-run'),
        canRetry: true,
      };
    // Attached and silent: the run stays active; a re-seat (or Retry) resumes it.
    return { ...base, state: 'interrupted', error: e, canRetry: true };
  }
  // Not this run's failure: the board lost its identity. Nothing to retry; set aside, or a supervisor re-provisions.
  if (isIdentityLost(e.code)) return { ...base, state: 'identity-lost', error: e, canRetry: false };
  return {
    ...base,
    state: 'fail',
    error: e,
    canRetry: e.action === 'retry' || e.action === 'reseat',
    // the step that was running failed, if the flow did not say so
    steps: p.steps.map((st) => (st.status === 'running' ? { ...st, status: 'failed' } : st)),
  };
}
