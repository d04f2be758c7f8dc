/**
 * Slots: one per detected port. A board attached while a work order is selected and someone is signed in
 * is provisioned automatically (one AbortController per port); progress becomes slot updates. The lifecycle of a
 * slot (pass / already / fail, disconnected and interrupted runs that stay active and resume, retry, scrap) is the
 * pure reducer of core/boards/lifecycle.ts, shared with `station watch`; this module keeps only the effects: it
 * starts and aborts runs, sets the re-link timer, has the engine zeroize a scrapped board (through its driver) and
 * emits the slot views. Scan-in: the serial number scanned for a slot (`scan`) is handed to its runs and checked
 * against identify; a work order that requires scan-in keeps an attached slot waiting until its board is scanned.
 */
import { basename } from 'node:path';
import type { ApiError, SlotLabel, SlotView } from '../../core/api.js';
import {
  mayStart,
  POSITION_STEPS,
  reduce,
  RELINK_DELAY_MS,
  wantsRelink,
  type BoardPosition,
  type PositionEvent,
  type RunOutcome,
} from '../../core/boards/lifecycle.js';
import { stationError, type StationError } from '../../core/errors.js';
import type { Clock, DetectedPort, Logger } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Engine } from '../engine.js';
import type { PrintReceipt } from '../../native/printers/send.js';

/** The steps a slot shows (sync is reported by the sync view, not per board). */
export const SLOT_STEPS = POSITION_STEPS;

/** A port's lifecycle position and the effects in flight on it. */
interface Slot {
  port: DetectedPort;
  pos: BoardPosition;
  ac: AbortController | null;
  /** A run or a scrap in progress. */
  running: Promise<void> | null;
  /** The label of the last PASS of this slot (labels), cleared when a run starts. */
  label: SlotLabel | null;
  /** The serial number scanned for the board on this port (scan-in), until the board is removed. */
  scan: string | null;
}

export function toApiError(e: StationError): ApiError {
  return {
    code: e.code,
    message: e.message,
    kind: e.kind,
    action: e.action,
    guidance: e.guidance,
    ...(e.details ? { details: { ...e.details } } : {}),
    ...(e.params ? { params: { ...e.params } } : {}),
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
  /** Scan-in: the board's own barcode for the slot on `path`; a waiting slot starts, a failed one is retried. */
  scan(path: string, serial: string): Result<SlotView>;
  reprovision(path: string, operator: string, supervisor?: string): Result<SlotView>;
  scrap(path: string): Promise<Result<{ chipId: string; serialNumber: string; slot: SlotView }>>;
  /** Abort all runs and wait for them to stop. */
  stop(): Promise<void>;
}

export function createSlots(deps: {
  engine: Engine;
  clock: Clock;
  logger: Logger;
  workOrder: () => string | null;
  operator: () => string | null;
  emit: (slot: SlotView) => void;
  removed: (port: string) => void;
  /**
   * Print the label of a record just committed (station/service/labels.ts); null: no label due. Runs after the
   * slot shows PASS; its failure is shown beside the PASS and never changes it.
   */
  printAfterPass?: (recordId: string) => Promise<Result<PrintReceipt> | null>;
}): SlotManager {
  const { engine, clock } = deps;
  const log = deps.logger;
  const slots = new Map<string, Slot>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let stopped = false;

  /** The selected work order requires scan-in. */
  const scanRequired = (): boolean => {
    const id = deps.workOrder();
    const w = id ? engine.workOrder(id) : null;
    return w?.ok === true && w.value.requireScanIn === true;
  };
  /**
   * The version of the last view made (SlotView `version`): one counter for every slot, started from the wall clock
   * in microseconds so that the views of a station service started later are newer than those of one before it.
   */
  let views = Date.now() * 1000;
  const view = (s: Slot): SlotView => {
    const p = s.pos;
    return {
      version: ++views,
      port: s.port.path,
      label: basename(s.port.path),
      state: p.state,
      chipId: p.chipId,
      serialNumber: p.serialNumber,
      model: p.model,
      steps: p.steps.map((x) => ({ step: x.step, status: x.status, elapsedMs: x.elapsedMs })),
      currentStep: p.currentStep,
      ...(p.note !== null ? { note: p.note } : {}),
      startedAt: p.startedAt,
      elapsedMs: p.startMs === null ? 0 : Math.max(0, Math.round((p.endMs ?? clock.monotonicMs()) - p.startMs)),
      error: p.error ? toApiError(p.error) : null,
      recordId: p.recordId,
      canRetry: p.canRetry,
      ...(s.label ? { boardLabel: s.label } : {}),
      scan: s.scan,
      awaitingScan: s.scan === null && s.running === null && p.attached && mayStart(p) && scanRequired(),
    };
  };
  const push = (s: Slot) => {
    if (slots.get(s.port.path) === s) deps.emit(view(s));
  };
  /** Apply a lifecycle event to a kept slot; false when the position emptied (the slot is gone). */
  const apply = (s: Slot, ev: PositionEvent): boolean => {
    const next = reduce(s.pos, ev);
    if (next === null) {
      slots.delete(s.port.path);
      deps.removed(s.port.path);
      return false;
    }
    s.pos = next;
    return true;
  };

  /** A board whose link dropped while discovery still sees it resumes by itself after a moment. */
  function relinkLater(s: Slot): void {
    if (stopped || !wantsRelink(s.pos)) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (slots.get(s.port.path) !== s || s.running !== null || !wantsRelink(s.pos)) return;
      apply(s, { type: 'relinked' });
      push(s);
      maybeStart(s);
    }, RELINK_DELAY_MS);
    timers.add(t);
  }

  function run(
    s: Slot,
    opts: { reprovision: boolean; operator: string; workOrder: string; supervisor?: string },
  ): void {
    const ac = new AbortController();
    s.ac = ac;
    s.label = null;
    apply(s, { type: 'started', at: clock.now().toISOString(), monoMs: clock.monotonicMs() });
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
        ...(opts.supervisor ? { supervisor: opts.supervisor } : {}),
        ...(s.scan !== null ? { expectSerial: s.scan } : {}),
        signal: ac.signal,
        onProgress: (e) => {
          try {
            apply(s, { type: 'progress', event: e });
            push(s);
          } catch (x) {
            log.log('error', `bug in slot progress: ${(x as Error).stack ?? String(x)}`);
          }
        },
      })
      .catch((x: unknown): RunOutcome => {
        log.log('error', `bug: provision threw: ${(x as Error).stack ?? String(x)}`);
        return err(stationError('INTERNAL', (x as Error).message));
      })
      .then((r) => {
        s.ac = null;
        s.running = null;
        apply(s, { type: 'outcome', outcome: r, monoMs: clock.monotonicMs() });
        log.log(
          r.ok ? 'info' : 'warn',
          `slot ${s.port.path}: ${s.pos.state}${r.ok ? '' : ` ${r.error.code}`}`,
          r.ok ? { recordId: r.value.record.recordId } : { code: r.error.code },
        );
        // The label is due once the record is committed: the PASS is pushed with the label `printing`.
        if (r.ok && r.value.status === 'provisioned') printLabel(s, r.value.record.recordId);
        push(s);
        relinkLater(s);
      });
  }

  /** After PASS (the record is committed): the label, shown on the slot; a printer failure leaves the PASS. */
  function printLabel(s: Slot, recordId: string): void {
    const print = deps.printAfterPass;
    if (!print) return;
    const mine = () => slots.get(s.port.path) === s && s.label?.recordId === recordId;
    s.label = { state: 'printing', recordId, target: null, error: null };
    void print(recordId)
      .catch((x: unknown) => err(stationError('INTERNAL', `label printing threw: ${(x as Error).message}`)))
      .then((r) => {
        if (!mine()) return;
        if (r === null) s.label = null;
        else if (r.ok) s.label = { state: 'printed', recordId, target: r.value.target, error: null };
        else {
          const target = typeof r.error.details?.['target'] === 'string' ? r.error.details['target'] : null;
          s.label = { state: 'failed', recordId, target, error: toApiError(r.error) };
        }
        push(s);
      });
  }

  function maybeStart(s: Slot): void {
    if (stopped || s.running || !mayStart(s.pos)) return;
    const wo = deps.workOrder();
    const op = deps.operator();
    if (!wo || !op) return;
    // Scan-in required: the slot waits for its board's barcode (scanSlot), shown as awaitingScan.
    if (s.scan === null && scanRequired()) return;
    run(s, { reprovision: false, operator: op, workOrder: wo });
  }

  const need = (path: string): Result<Slot> => {
    const s = slots.get(path);
    if (!s || !s.pos.attached)
      return err(stationError('INPUT_INVALID', `no board is attached on ${path}`, { path: 'port', port: path }));
    if (s.running) return err(stationError('FLOW_BOARD_BUSY', `the board on ${path} is being provisioned`));
    return ok(s);
  };

  return {
    attach(port) {
      if (stopped) return;
      const existing = slots.get(port.path);
      if (existing?.pos.attached) return;
      const s: Slot = existing ?? {
        port,
        pos: reduce(null, { type: 'attached' })!,
        ac: null,
        running: null,
        label: null,
        scan: null,
      };
      s.port = port;
      if (existing) apply(s, { type: 'attached' });
      else slots.set(port.path, s);
      push(s);
      maybeStart(s);
    },
    detach(path) {
      const s = slots.get(path);
      if (!s) return;
      s.ac?.abort(); // a run (it stays resumable) or a scrap in progress
      // The scan was for the board that left; one that stays paused (its run resumes on re-plug) keeps it.
      if (!s.running) s.scan = null;
      if (apply(s, { type: 'detached' })) push(s);
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
      run(s.value, { reprovision: false, operator: op, workOrder: wo });
      return ok(view(s.value));
    },
    scan(path, serial) {
      const s = need(path);
      if (!s.ok) return s;
      const slot = s.value;
      const wo = deps.workOrder();
      const op = deps.operator();
      if (!wo) return err(stationError('INPUT_INVALID', 'select a work order first', { path: 'workOrder' }));
      if (!op) return err(stationError('AUTH_REQUIRED', 'sign in first'));
      const st = slot.pos.state;
      if (st === 'pass' || st === 'already')
        return err(
          stationError('INPUT_INVALID', `the board on ${path} has finished: remove it before scanning the next one`, {
            path: 'port',
            port: path,
          }),
        );
      slot.scan = serial.trim();
      log.log('info', `scan-in on ${path}`, { port: path, scanned: slot.scan });
      // A waiting slot starts now; a failed or interrupted one is retried with the scan.
      if (mayStart(slot.pos)) maybeStart(slot);
      else run(slot, { reprovision: false, operator: op, workOrder: wo });
      push(slot);
      return ok(view(slot));
    },
    reprovision(path, operator, supervisor) {
      const s = need(path);
      if (!s.ok) return s;
      const wo = deps.workOrder();
      if (!wo) return err(stationError('INPUT_INVALID', 'select a work order first', { path: 'workOrder' }));
      run(s.value, { reprovision: true, operator, workOrder: wo, ...(supervisor ? { supervisor } : {}) });
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
      try {
        const wo = deps.workOrder();
        if (!wo) return err(stationError('INPUT_INVALID', 'select a work order first', { path: 'workOrder' }));
        // Through the board's driver: a TPM board is zeroized in its TPM, an LS board by its firmware.
        const z = await engine.zeroize({ port: path, workOrder: wo, signal: ac.signal });
        if (!z.ok) return z;
        const { chipId, serialNumber, model } = z.value;
        apply(s, { type: 'scrapped', chipId, serialNumber, model });
        return ok({ chipId, serialNumber, slot: view(s) });
      } finally {
        s.ac = null;
        s.running = null;
        release();
        push(s);
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
