/**
 * The controller: calls the StationApi and turns answers and pushed events into slice actions.
 * Views call these functions; they never touch the transport themselves.
 */
import type { ApiError, ApiResult, OpArgs, SessionView, SlotView, StationApi, StationEvent } from '../../core/api.js';
import { t } from './i18n/index.js';
import { sessionSlice, slotsSlice, syncSlice, uiSlice } from './store/slices.js';

let api: StationApi | null = null;
let unsubscribe: (() => void) | null = null;

/** Installs the transport and starts listening to events. */
export function connect(a: StationApi): void {
  unsubscribe?.();
  api = a;
  unsubscribe = a.subscribe(handleEvent);
}

export function station(): StationApi {
  if (!api) throw new Error('no StationApi installed');
  return api;
}

/** Unwraps a result; on error raises the error banner and returns null. */
export function unwrap<T>(r: ApiResult<T>, quiet = false): T | null {
  if (r.ok) return r.value;
  if (r.error.code === 'AUTH_SESSION_EXPIRED') {
    endSession(r.error.details?.['ended'] === 'absolute' ? 'absolute' : 'idle');
    return null;
  }
  if (!quiet) uiSlice.actions.errorRaised(r.error);
  return null;
}

/** The station ended this session: back to the sign-in screen, which says why. */
function endSession(why: 'idle' | 'absolute'): void {
  sessionSlice.actions.sessionEnded(why);
  slotsSlice.actions.slotsCleared();
  uiSlice.actions.viewChosen('slots');
  uiSlice.actions.elevationClosed();
  uiSlice.actions.errorDismissed();
}

/** True while the session may use supervisor functions (supervisor role or an unexpired elevation). */
export function hasSupervisorRights(s: SessionView | null, now = Date.now()): boolean {
  if (!s) return false;
  if (s.role === 'supervisor') return true;
  return s.supervisor !== null && Date.parse(s.supervisor.until) > now;
}

export async function loadStatus(): Promise<void> {
  const st = unwrap(await station().getStatus({}), true);
  if (!st) return;
  sessionSlice.actions.statusLoaded(st);
  if (st.session) await afterSignIn();
}

async function afterSignIn(): Promise<void> {
  const [wos, slots, sync] = await Promise.all([
    station().listWorkOrders({}),
    station().getSlots({}),
    station().getSync({}),
  ]);
  const w = unwrap(wos, true);
  if (w) sessionSlice.actions.workOrdersLoaded(w);
  const s = unwrap(slots, true);
  if (s) slotsSlice.actions.slotsLoaded(s);
  const y = unwrap(sync, true);
  if (y) syncSlice.actions.syncUpdated(y);
}

/** Signs in with operator id + PIN or a badge; returns the error to show in the form, if any. */
export async function signIn(args: OpArgs<'signIn'>): Promise<ApiError | null> {
  const r = await station().signIn(args);
  if (!r.ok) return r.error;
  sessionSlice.actions.signedIn(r.value);
  uiSlice.actions.errorDismissed();
  uiSlice.actions.viewChosen('slots');
  const st = unwrap(await station().getStatus({}), true);
  if (st) sessionSlice.actions.statusLoaded(st);
  await afterSignIn();
  return null;
}

export async function signOut(): Promise<void> {
  await station().signOut({});
  sessionSlice.actions.signedOut();
  slotsSlice.actions.slotsCleared();
  uiSlice.actions.viewChosen('slots');
  uiSlice.actions.elevationClosed();
}

export async function elevate(args: OpArgs<'elevate'>): Promise<ApiError | null> {
  const r = await station().elevate(args);
  if (!r.ok) return r.error;
  sessionSlice.actions.elevated(r.value);
  return null;
}

export async function selectWorkOrder(id: string): Promise<ApiError | null> {
  const r = await station().selectWorkOrder({ id });
  if (!r.ok) return r.error;
  sessionSlice.actions.workOrderSelected(r.value);
  await loadSlots();
  return null;
}

export async function retrySlot(port: string): Promise<void> {
  const slot = unwrap(await station().retrySlot({ port }));
  if (slot) applySlot(slot);
}

/** Scan-in: the board's barcode for a slot (typed by a keyboard-wedge scanner, then Enter). True when accepted. */
export async function scanSlot(port: string, serial: string): Promise<boolean> {
  const slot = unwrap(await station().scanSlot({ port, serial }));
  if (slot) applySlot(slot);
  return slot !== null;
}

/**
 * Slot events applied so far. A `getSlots` snapshot is taken by the station before the events that follow it but
 * may arrive after them (a board that fails 40 ms after the work order is selected): it must not overwrite them.
 */
let slotEvents = 0;

/** Reads the slots; the snapshot is used only if no slot event arrived meanwhile (the events are newer). */
async function loadSlots(): Promise<void> {
  const before = slotEvents;
  const slots = unwrap(await station().getSlots({}), true);
  if (slots && slotEvents === before) slotsSlice.actions.slotsLoaded(slots);
}

/**
 * Puts a slot into the store with the event that describes the change, announcing PASS/FAIL once. A view older than
 * the one held (SlotView `version`: an answer that arrives after an event the station made later) is dropped.
 */
export function applySlot(slot: SlotView): void {
  const before = slotsSlice.get().byPort[slot.port];
  if (before?.version !== undefined && slot.version !== undefined && slot.version <= before.version) return;
  const a = slotsSlice.actions;
  if (!before) a.boardAttached(slot);
  else if (slot.state === 'pass' || slot.state === 'already') a.provisioningPassed(slot);
  else if (slot.state === 'fail') a.provisioningFailed(slot);
  else if (slot.state === 'identity-lost') a.boardIdentityLost(slot);
  else a.stepProgressed(slot);
  if (before?.state === slot.state) return;
  const who = slot.serialNumber ?? slot.label;
  if (slot.state === 'pass' || slot.state === 'already') {
    uiSlice.actions.announced(t('announce.pass', { board: who }));
  }
  if (slot.state === 'fail') uiSlice.actions.announced(t('announce.fail', { board: who }));
  if (slot.state === 'identity-lost') uiSlice.actions.announced(t('announce.lost', { board: who }));
}

/** Handles one validated event from the station. */
export function handleEvent(ev: StationEvent): void {
  syncSlice.actions.stationConnected();
  switch (ev.type) {
    case 'slot':
      slotEvents++;
      applySlot(ev.slot);
      break;
    case 'slotRemoved':
      slotEvents++;
      slotsSlice.actions.boardDetached(ev.port);
      break;
    case 'sync':
      syncSlice.actions.syncUpdated(ev.sync);
      break;
    case 'session':
      if (!ev.session && ev.ended) endSession(ev.ended);
      else sessionSlice.actions.sessionChanged(ev.session);
      break;
    case 'log':
      break;
    case 'policy':
      sessionSlice.actions.policyChanged({ policyVersion: ev.policyVersion, stationRevoked: ev.stationRevoked });
      break;
  }
}
