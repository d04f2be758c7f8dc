/**
 * Slots: one per detected port. A board attached while a work order is selected and someone is signed in
 * is provisioned automatically (one AbortController per port); progress becomes slot updates. A detach
 * aborts the run and leaves the slot `disconnected`; re-attaching resumes it (the flow resumes the active
 * run of the chip). Finished slots (pass / already / fail) wait for the board to be removed, a retry or a
 * supervisor override.
 */
import { basename } from 'node:path';
import type { ApiError, SlotView } from '../../core/api.js';
import { stationError, type StationError } from '../../core/errors.js';
import type { FlowOutcome } from '../../core/provisioning/flow.js';
import type { ProgressEvent, StepName, StepStatus } from '../../core/model.js';
import type { ByteLinkOpener, Clock, DetectedPort, Logger } from '../../core/ports.js';
import { connectBoard } from '../../core/protocol/client.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Engine } from '../engine.js';

/** The steps a slot shows (sync is reported by the sync view, not per board). */
export const SLOT_STEPS = ['detect', 'identify', 'baseline', 'key', 'attest', 'certify', 'record'] as const;

interface Slot {
  port: DetectedPort;
  state: SlotView['state'];
  chipId: string | null;
  serialNumber: string | null;
  model: string | null;
  steps: Map<StepName, { status: StepStatus; elapsedMs: number | null; startedAt: number }>;
  currentStep: StepName | null;
  startedAt: string | null;
  startMono: number | null;
  endMono: number | null;
  error: ApiError | null;
  recordId: string | null;
  canRetry: boolean;
  attached: boolean;
  ac: AbortController | null;
  running: Promise<void> | null;
  /** Do not start automatically until the board is re-attached (finished, scrapped, or refused). */
  hold: boolean;
}

export function toApiError(e: StationError): ApiError {
  return {
    code: e.code,
    message: e.message,
    kind: e.kind,
    action: e.action,
    guidance: e.guidance,
    ...(e.details ? { details: { ...e.details } } : {}),
  };
}

export interface SlotManager {
  attach(port: DetectedPort): void;
  detach(path: string): void;
  list(): SlotView[];
  get(path: string): SlotView | null;
  /** Start every idle attached slot that may start (after sign-in or a work order change). */
  kick(): void;
  retry(path: string): Result<SlotView>;
  reprovision(path: string, operator: string): Result<SlotView>;
  scrap(path: string): Promise<Result<{ chipId: string; serialNumber: string; slot: SlotView }>>;
  /** Abort all runs and wait for them to stop. */
  stop(): Promise<void>;
}

export function createSlots(deps: {
  engine: Engine;
  clock: Clock;
  logger: Logger;
  opener: ByteLinkOpener;
  workOrder: () => string | null;
  operator: () => string | null;
  emit: (slot: SlotView) => void;
  removed: (port: string) => void;
}): SlotManager {
  const { engine, clock } = deps;
  const log = deps.logger;
  const slots = new Map<string, Slot>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let stopped = false;

  const freshSteps = () =>
    new Map<StepName, { status: StepStatus; elapsedMs: number | null; startedAt: number }>(
      SLOT_STEPS.map((s) => [s, { status: 'pending', elapsedMs: null, startedAt: 0 }]),
    );

  const view = (s: Slot): SlotView => ({
    port: s.port.path,
    label: basename(s.port.path),
    state: s.state,
    chipId: s.chipId,
    serialNumber: s.serialNumber,
    model: s.model,
    steps: SLOT_STEPS.map((step) => {
      const x = s.steps.get(step)!;
      return { step, status: x.status, elapsedMs: x.elapsedMs };
    }),
    currentStep: s.currentStep,
    startedAt: s.startedAt,
    elapsedMs: s.startMono === null ? 0 : Math.max(0, Math.round((s.endMono ?? clock.monotonicMs()) - s.startMono)),
    error: s.error,
    recordId: s.recordId,
    canRetry: s.canRetry,
  });
  const push = (s: Slot) => deps.emit(view(s));

  const newSlot = (port: DetectedPort): Slot => ({
    port,
    state: 'connected',
    chipId: null,
    serialNumber: null,
    model: null,
    steps: freshSteps(),
    currentStep: null,
    startedAt: null,
    startMono: null,
    endMono: null,
    error: null,
    recordId: null,
    canRetry: false,
    attached: true,
    ac: null,
    running: null,
    hold: false,
  });

  function onProgress(s: Slot, e: ProgressEvent): void {
    if (e.chipId) s.chipId = e.chipId;
    if (e.serialNumber) s.serialNumber = e.serialNumber;
    if (s.model === null && s.chipId && e.step === 'identify' && e.status === 'done') {
      const run = engine.store.findActiveRun(s.chipId);
      const m = run?.data.identity?.['model'];
      if (typeof m === 'string') s.model = m;
    }
    const st = s.steps.get(e.step);
    if (st) {
      if (e.status === 'running') {
        st.startedAt = e.elapsedMs;
        s.currentStep = e.step;
      } else if (e.status === 'done' || e.status === 'failed') {
        st.elapsedMs = Math.max(0, e.elapsedMs - st.startedAt);
      }
      st.status = e.status;
    }
    push(s);
  }

  function finish(s: Slot, r: Result<FlowOutcome>): void {
    s.endMono = clock.monotonicMs();
    s.currentStep = null;
    if (r.ok) {
      const v: FlowOutcome = r.value;
      s.state = v.status === 'provisioned' ? 'pass' : 'already';
      s.recordId = v.record.recordId;
      s.chipId = v.identity.chipId;
      s.serialNumber = v.identity.serialNumber;
      s.model = v.identity.model;
      s.error = null;
      s.canRetry = false;
      s.hold = true;
      return;
    }
    const e = r.error;
    const interrupted = e.code === 'LINK_DISCONNECTED' || e.code === 'FLOW_CANCELLED';
    if (!s.attached || (interrupted && !stopped)) {
      s.state = 'disconnected';
      s.error = toApiError(
        e.code === 'LINK_DISCONNECTED'
          ? e
          : stationError('LINK_DISCONNECTED', `the board on ${s.port.path} was removed`),
      );
      s.canRetry = true;
      s.hold = false;
      // A link that dropped without discovery noticing (a quick re-plug) resumes by itself.
      if (s.attached) {
        const t = setTimeout(() => {
          timers.delete(t);
          if (s.attached && s.running === null && s.state === 'disconnected' && slots.get(s.port.path) === s) {
            s.state = 'connected';
            maybeStart(s);
          }
        }, 1500);
        timers.add(t);
      }
      return;
    }
    s.state = 'fail';
    s.error = toApiError(e);
    s.canRetry = e.action === 'retry' || e.action === 'reseat';
    s.hold = true;
    // mark the step that was running as failed if the flow did not say so
    for (const st of s.steps.values()) if (st.status === 'running') st.status = 'failed';
  }

  function run(s: Slot, opts: { reprovision: boolean; operator: string; workOrder: string }): void {
    const ac = new AbortController();
    s.ac = ac;
    s.state = 'running';
    s.steps = freshSteps();
    s.currentStep = 'detect';
    s.error = null;
    s.recordId = null;
    s.canRetry = false;
    s.startedAt = clock.now().toISOString();
    s.startMono = clock.monotonicMs();
    s.endMono = null;
    push(s);
    log.log('info', `provisioning ${opts.reprovision ? '(re-provision) ' : ''}on ${s.port.path}`, {
      port: s.port.path,
      workOrder: opts.workOrder,
      operator: opts.operator,
    });
    s.running = engine
      .provision({
        port: s.port,
        workOrder: opts.workOrder,
        operator: opts.operator,
        ...(opts.reprovision ? { reprovision: true } : {}),
        signal: ac.signal,
        onProgress: (e) => {
          try {
            onProgress(s, e);
          } catch (x) {
            log.log('error', `bug in slot progress: ${(x as Error).stack ?? String(x)}`);
          }
        },
      })
      .catch((x: unknown): Result<FlowOutcome> => {
        log.log('error', `bug: provision threw: ${(x as Error).stack ?? String(x)}`);
        return err(stationError('INTERNAL', (x as Error).message));
      })
      .then((r) => {
        s.ac = null;
        s.running = null;
        finish(s, r);
        log.log(
          r.ok ? 'info' : 'warn',
          `slot ${s.port.path}: ${s.state}${r.ok ? '' : ` ${r.error.code}`}`,
          r.ok ? { recordId: r.value.record.recordId } : { code: r.error.code },
        );
        if (slots.get(s.port.path) === s) push(s);
      });
  }

  function maybeStart(s: Slot): void {
    if (stopped || !s.attached || s.running || s.hold) return;
    const wo = deps.workOrder();
    const op = deps.operator();
    if (!wo || !op) return;
    run(s, { reprovision: false, operator: op, workOrder: wo });
  }

  const need = (path: string): Result<Slot> => {
    const s = slots.get(path);
    if (!s || !s.attached)
      return err(stationError('INPUT_INVALID', `no board is attached on ${path}`, { path: 'port', port: path }));
    if (s.running) return err(stationError('FLOW_BOARD_BUSY', `the board on ${path} is being provisioned`));
    return ok(s);
  };

  return {
    attach(port) {
      if (stopped) return;
      const existing = slots.get(port.path);
      if (existing) {
        if (existing.attached) return;
        existing.port = port;
        existing.attached = true;
        if (existing.state !== 'disconnected') {
          // a new board on a port whose tile was kept: start clean
          Object.assign(existing, { ...newSlot(port) });
        } else {
          existing.state = 'connected';
          existing.hold = false;
        }
        push(existing);
        maybeStart(existing);
        return;
      }
      const s = newSlot(port);
      slots.set(port.path, s);
      push(s);
      maybeStart(s);
    },
    detach(path) {
      const s = slots.get(path);
      if (!s) return;
      s.attached = false;
      if (s.running) {
        s.ac?.abort();
        s.state = 'disconnected';
        push(s);
        return;
      }
      if (s.state === 'disconnected') {
        push(s);
        return;
      }
      slots.delete(path);
      deps.removed(path);
    },
    list: () => [...slots.values()].sort((a, b) => a.port.path.localeCompare(b.port.path)).map(view),
    get(path) {
      const s = slots.get(path);
      return s ? view(s) : null;
    },
    kick() {
      for (const s of slots.values()) maybeStart(s);
    },
    retry(path) {
      const s = need(path);
      if (!s.ok) return s;
      const wo = deps.workOrder();
      const op = deps.operator();
      if (!wo) return err(stationError('INPUT_INVALID', 'select a work order first', { path: 'workOrder' }));
      if (!op) return err(stationError('AUTH_REQUIRED', 'sign in first'));
      s.value.hold = false;
      run(s.value, { reprovision: false, operator: op, workOrder: wo });
      return ok(view(s.value));
    },
    reprovision(path, operator) {
      const s = need(path);
      if (!s.ok) return s;
      const wo = deps.workOrder();
      if (!wo) return err(stationError('INPUT_INVALID', 'select a work order first', { path: 'workOrder' }));
      run(s.value, { reprovision: true, operator, workOrder: wo });
      return ok(view(s.value));
    },
    async scrap(path) {
      const sr = need(path);
      if (!sr.ok) return sr;
      const s = sr.value;
      const ac = new AbortController();
      s.ac = ac;
      let release!: () => void;
      s.running = new Promise<void>((r) => (release = r));
      const plog = log.child(`[serial ${path}]`);
      try {
        const link = await deps.opener.open(path);
        if (!link.ok) return link;
        const board = await connectBoard(link.value, {
          logger: plog,
          clock,
          timeoutMs: 3000,
          longTimeoutMs: 30_000,
          signal: ac.signal,
        });
        if (!board.ok) {
          await link.value.close();
          return board;
        }
        try {
          const id = await board.value.identify({ signal: ac.signal });
          if (!id.ok) return id;
          const z = await board.value.zeroize(id.value.chipId, { signal: ac.signal });
          if (!z.ok) return z;
          s.chipId = id.value.chipId;
          s.serialNumber = id.value.serialNumber;
          s.model = id.value.model;
          s.state = 'fail';
          s.currentStep = null;
          s.recordId = null;
          s.canRetry = false;
          s.hold = true;
          s.error = {
            ...toApiError(
              stationError('FLOW_CANCELLED', `board ${id.value.serialNumber} was scrapped: its identity is erased`),
            ),
            action: 'set-aside',
            guidance: 'Scrapped by a supervisor. Remove the board from the line and put it in the scrap bin.',
          };
          return ok({ chipId: id.value.chipId, serialNumber: id.value.serialNumber, slot: view(s) });
        } finally {
          await board.value.close();
        }
      } finally {
        s.ac = null;
        s.running = null;
        release();
        if (slots.get(path) === s) push(s);
      }
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const waits: Promise<void>[] = [];
      for (const s of slots.values()) {
        s.ac?.abort();
        if (s.running) waits.push(s.running);
      }
      await Promise.all(waits);
    },
  };
}
