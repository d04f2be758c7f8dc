/**
 * The per-board lifecycle reducer: every path a board position takes (attach, run, progress with notes, pass,
 * already, fail, unplug and resume, a silent board and its re-seat, quick re-plug, retry, scrap), and the one
 * resumable rule over the whole error catalogue.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, stationError, type ErrorCode, type StationError } from '../errors.js';
import type { ProgressEvent, StepName } from '../model.js';
import {
  attachedPosition,
  IDENTITY_LOST_CODES,
  isFinished,
  isIdentityLost,
  isPaused,
  isResumable,
  mayStart,
  reduce,
  RESUMABLE_CODES,
  wantsRelink,
  type BoardPosition,
  type PositionEvent,
  type RunOutcome,
} from './lifecycle.js';

const PORT = '/dev/ttyACM0';
const start: PositionEvent = { type: 'started', at: '2026-12-05T22:00:00.000Z', monoMs: 1000 };
const prog = (step: StepName, status: ProgressEvent['status'], elapsedMs: number, extra: Partial<ProgressEvent> = {}) =>
  ({ type: 'progress', event: { port: PORT, step, status, elapsedMs, ...extra } }) as const;
const failed = (e: StationError): PositionEvent => ({
  type: 'outcome',
  outcome: { ok: false, error: e },
  monoMs: 5000,
});
const passed = (status: 'provisioned' | 'already-provisioned'): PositionEvent => ({
  type: 'outcome',
  outcome: {
    ok: true,
    value: {
      status,
      record: { recordId: 'rec-1' },
      identity: { chipId: 'c0ffee00', serialNumber: 'LS0001', model: 'LS-SIM-SE' },
    },
  } satisfies RunOutcome,
  monoMs: 5000,
});

/** Fold events from an empty position; throws if the position empties on the way (unless it is the end). */
function run(...events: PositionEvent[]): BoardPosition | null {
  let p: BoardPosition | null = null;
  for (const ev of events) p = reduce(p, ev);
  return p;
}
const must = (p: BoardPosition | null): BoardPosition => {
  expect(p).not.toBeNull();
  return p!;
};
const stepOf = (p: BoardPosition, s: StepName) => p.steps.find((x) => x.step === s)!;

describe('a board position', () => {
  it('attached: connected and may start; a run starts with fresh steps at detect', () => {
    const p = must(run({ type: 'attached' }));
    expect(p).toEqual(attachedPosition());
    expect(mayStart(p)).toBe(true);
    const r = must(reduce(p, start));
    expect(r).toMatchObject({ state: 'running', running: true, currentStep: 'detect', startMs: 1000 });
    expect(r.steps.every((s) => s.status === 'pending')).toBe(true);
    expect(mayStart(r)).toBe(false);
    expect(reduce(r, start)).toBe(r); // a second start while running is ignored
  });

  it('learns chip, serial and model from the flow progress (never from the store), times each step', () => {
    const p = must(
      run(
        { type: 'attached' },
        start,
        prog('detect', 'done', 0),
        prog('identify', 'running', 5),
        prog('identify', 'done', 45, { chipId: 'c0ffee00', serialNumber: 'LS0001', model: 'LS-SIM-SE' }),
        prog('baseline', 'running', 50),
      ),
    );
    expect(p).toMatchObject({
      chipId: 'c0ffee00',
      serialNumber: 'LS0001',
      model: 'LS-SIM-SE',
      currentStep: 'baseline',
    });
    expect(stepOf(p, 'identify')).toMatchObject({ status: 'done', elapsedMs: 40 });
    expect(stepOf(p, 'baseline').status).toBe('running');
  });

  it('note: the latest running message of the current step; a note keeps the step start; cleared when it ends', () => {
    let p = must(run({ type: 'attached' }, start, prog('attest', 'running', 100)));
    expect(p.note).toBeNull();
    p = must(reduce(p, prog('attest', 'running', 300, { message: 'EK certificate verified' })));
    expect(p.note).toBe('EK certificate verified');
    p = must(reduce(p, prog('attest', 'running', 700, { message: 'credential activated' })));
    expect(p.note).toBe('credential activated');
    expect(stepOf(p, 'attest').startedAtMs).toBe(100); // the notes did not restart the step
    // A progress event of the same step without a message keeps the note.
    p = must(reduce(p, prog('attest', 'running', 750)));
    expect(p.note).toBe('credential activated');
    p = must(reduce(p, prog('attest', 'done', 900)));
    expect(p.note).toBeNull();
    expect(stepOf(p, 'attest').elapsedMs).toBe(800);
    // The next step starts without a note; a note of it replaces nothing of the previous step.
    p = must(reduce(p, prog('certify', 'running', 950)));
    expect(p).toMatchObject({ currentStep: 'certify', note: null });
    p = must(reduce(p, prog('certify', 'running', 990, { message: 'certificate stored in NV' })));
    expect(p.note).toBe('certificate stored in NV');
    // A step the position does not show (sync) changes neither the current step nor its note.
    expect(reduce(p, prog('sync', 'running', 995, { message: 'queued' }))).toMatchObject({
      currentStep: 'certify',
      note: 'certificate stored in NV',
    });
    // The run's end clears it.
    expect(must(reduce(p, passed('provisioned'))).note).toBeNull();
  });

  it('pass and already wait for the board to be removed; removing it empties the position', () => {
    for (const [status, state] of [
      ['provisioned', 'pass'],
      ['already-provisioned', 'already'],
    ] as const) {
      const p = must(run({ type: 'attached' }, start, passed(status)));
      expect(p).toMatchObject({ state, recordId: 'rec-1', model: 'LS-SIM-SE', running: false, error: null });
      expect(p.endMs).toBe(5000);
      expect(isFinished(p)).toBe(true);
      expect(mayStart(p)).toBe(false);
      expect(reduce(p, { type: 'detached' })).toBeNull();
    }
  });

  it('a board that lost its identity (BOARD_CERT_MISSING): identity-lost, not fail; no Retry; finished', () => {
    const e = stationError('BOARD_CERT_MISSING', 'x', { recordId: 'rec-1', chipId: 'c0ffee00' });
    const p = must(run({ type: 'attached' }, start, prog('identify', 'done', 10), failed(e)));
    expect(p).toMatchObject({ state: 'identity-lost', canRetry: false, running: false, currentStep: null });
    expect(p.error).toEqual(e);
    expect(isFinished(p)).toBe(true);
    expect(isPaused(p)).toBe(false);
    expect(mayStart(p)).toBe(false);
    // A supervisor's re-provision starts a run on it; removing the board empties the position.
    expect(must(reduce(p, start)).state).toBe('running');
    expect(reduce(p, { type: 'detached' })).toBeNull();
    // A new board on the port starts clean.
    expect(reduce({ ...p, attached: false }, { type: 'attached' })).toEqual(attachedPosition());
  });

  it('a failed run: fail, the running step marked failed, Retry only for retry/reseat actions', () => {
    const p = must(
      run({ type: 'attached' }, start, prog('baseline', 'running', 10), failed(stationError('POLICY_VIOLATION', 'x'))),
    );
    expect(p).toMatchObject({ state: 'fail', canRetry: false, currentStep: null });
    expect(p.error?.code).toBe('POLICY_VIOLATION');
    expect(stepOf(p, 'baseline').status).toBe('failed');
    expect(mayStart(p)).toBe(false);
    const busy = must(run({ type: 'attached' }, start, failed(stationError('PROTOCOL_CRC', 'x'))));
    expect(busy).toMatchObject({ state: 'fail', canRetry: true });
    // Retry starts it again (the shell checks the board is attached and idle).
    expect(must(reduce(p, start)).state).toBe('running');
  });

  it('unplugged mid-run: disconnected, kept; the run outcome keeps it; re-plugging resumes it', () => {
    let p = must(run({ type: 'attached' }, start, prog('key', 'running', 10), { type: 'detached' }));
    expect(p).toMatchObject({ state: 'disconnected', attached: false, running: true });
    p = must(reduce(p, failed(stationError('FLOW_CANCELLED', 'provisioning cancelled'))));
    expect(p).toMatchObject({ state: 'disconnected', running: false, canRetry: true });
    expect(p.error?.code).toBe('LINK_DISCONNECTED');
    expect(isPaused(p)).toBe(true);
    expect(wantsRelink(p)).toBe(false); // not attached: it waits for the board
    expect(reduce(p, { type: 'detached' })).toBe(p);
    p = must(reduce(p, { type: 'attached' }));
    expect(p).toMatchObject({ state: 'connected', attached: true, chipId: p.chipId });
    expect(mayStart(p)).toBe(true);
  });

  it('the link dropped while discovery still sees the board: disconnected, relinks by itself', () => {
    const p = must(run({ type: 'attached' }, start, failed(stationError('LINK_DISCONNECTED', 'link closed'))));
    expect(p).toMatchObject({ state: 'disconnected', attached: true });
    expect(wantsRelink(p)).toBe(true);
    expect(mayStart(p)).toBe(false);
    const back = must(reduce(p, { type: 'relinked' }));
    expect(back.state).toBe('connected');
    expect(mayStart(back)).toBe(true);
    // unplugged and re-plugged before the aborted run ended: the same
    const q = must(run({ type: 'attached' }, start, { type: 'detached' }, { type: 'attached' }));
    expect(q).toMatchObject({ running: true, attached: true });
    expect(wantsRelink(must(reduce(q, failed(stationError('FLOW_CANCELLED', 'cancelled')))))).toBe(true);
  });

  it('a silent board (PROTOCOL_TIMEOUT mid-step): interrupted, never restarted by itself; re-seat or Retry resumes', () => {
    const t = stationError('PROTOCOL_TIMEOUT', 'attest: no answer within 3000 ms (after 3 attempts)');
    let p = must(run({ type: 'attached' }, start, prog('attest', 'running', 10), failed(t)));
    expect(p).toMatchObject({ state: 'interrupted', attached: true, canRetry: true, running: false });
    expect(p.error).toEqual(t);
    expect(isPaused(p)).toBe(true);
    expect(isFinished(p)).toBe(false);
    expect(mayStart(p)).toBe(false);
    expect(wantsRelink(p)).toBe(false);
    expect(reduce(p, { type: 'relinked' })).toBe(p);
    // Retry
    expect(must(reduce(p, start)).state).toBe('running');
    // Re-seat: removed (kept, the run stays active) and attached again
    p = must(reduce(p, { type: 'detached' }));
    expect(p).toMatchObject({ state: 'disconnected', attached: false });
    p = must(reduce(p, { type: 'attached' }));
    expect(mayStart(p)).toBe(true);
  });

  it('a new board on a port whose finished tile was kept starts clean', () => {
    // pass arrives after the board was pulled (the run was just committing)
    const p = must(run({ type: 'attached' }, start, { type: 'detached' }, passed('provisioned')));
    expect(p).toMatchObject({ state: 'pass', attached: false });
    expect(reduce(p, { type: 'attached' })).toEqual(attachedPosition());
  });

  it('scrapped: fail with set-aside, no retry; ignored while a run is in flight', () => {
    const scrap: PositionEvent = { type: 'scrapped', chipId: 'c0ffee00', serialNumber: 'LS0001', model: 'LS-SIM-SE' };
    const p = must(run({ type: 'attached' }, start, failed(stationError('POLICY_VIOLATION', 'x')), scrap));
    expect(p).toMatchObject({ state: 'fail', canRetry: false, serialNumber: 'LS0001', recordId: null });
    expect(p.error).toMatchObject({ code: 'FLOW_CANCELLED', action: 'set-aside' });
    expect(p.error?.message).toContain('scrapped');
    const r = must(run({ type: 'attached' }, start));
    expect(reduce(r, scrap)).toBe(r);
  });

  it('progress and outcomes of no run in flight are ignored; an empty position ignores all but attach', () => {
    const p = must(run({ type: 'attached' }));
    expect(reduce(p, prog('identify', 'done', 5, { chipId: 'aa' }))).toBe(p);
    expect(reduce(p, failed(stationError('INTERNAL', 'x')))).toBe(p);
    for (const ev of [{ type: 'detached' }, start, { type: 'relinked' }] as PositionEvent[])
      expect(reduce(null, ev)).toBeNull();
  });
});

describe('isResumable: the one rule (flow, UI slots, station watch)', () => {
  it('identity-lost holds exactly for BOARD_CERT_MISSING, a refusal the operator cannot retry', () => {
    expect([...IDENTITY_LOST_CODES]).toEqual(['BOARD_CERT_MISSING']);
    for (const c of IDENTITY_LOST_CODES) {
      expect(isResumable(c), c).toBe(false);
      expect(ERROR_CATALOGUE[c].action, c).toBe('set-aside');
    }
  });

  it('holds exactly for a lost link, a cancellation and a timeout', () => {
    expect([...RESUMABLE_CODES].sort()).toEqual(['FLOW_CANCELLED', 'LINK_DISCONNECTED', 'PROTOCOL_TIMEOUT']);
    for (const c of ['PROTOCOL_CRC', 'PROTOCOL_MALFORMED', 'POLICY_VIOLATION', 'ATTEST_NONCE_MISMATCH'] as const)
      expect(isResumable(c), c).toBe(false);
  });

  it('every code of the catalogue: a resumable failure pauses the position (never fail), any other fails it', () => {
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
      const p = must(run({ type: 'attached' }, start, failed(stationError(code, 'x'))));
      const ended = isIdentityLost(code) ? 'identity-lost' : 'fail';
      expect(isPaused(p), code).toBe(isResumable(code));
      expect(p.state === ended, code).toBe(!isResumable(code));
      // with the board gone, a resumable failure waits for it; any other shows its failure
      const gone = must(run({ type: 'attached' }, start, { type: 'detached' }, failed(stationError(code, 'x'))));
      expect(gone.state, code).toBe(isResumable(code) ? 'disconnected' : ended);
    }
  });
});
