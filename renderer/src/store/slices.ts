/**
 * The UI's feature slices: session, slots, sync, ui. Each action is named after what happened.
 */
import type {
  ApiError,
  SessionView,
  SlotView,
  StationRevocation,
  StationStatus,
  SyncView,
  WorkOrderView,
} from '../../../core/api.js';
import { createSlice } from './slice.js';

/** Why the station ended the last session on its own (idle, or the longest session time), until the next sign-in. */
export type SessionEnd = 'idle' | 'absolute';

export interface SessionState {
  readonly status: StationStatus | null;
  readonly session: SessionView | null;
  readonly ended: SessionEnd | null;
  readonly workOrder: WorkOrderView | null;
  readonly workOrders: readonly WorkOrderView[];
}

export const sessionSlice = createSlice(
  'session',
  { status: null, session: null, ended: null, workOrder: null, workOrders: [] } as SessionState,
  {
    statusLoaded: (s: SessionState, status: StationStatus): SessionState => ({
      ...s,
      status,
      session: status.session,
      workOrder: status.workOrder,
    }),
    signedIn: (s: SessionState, session: SessionView): SessionState => ({ ...s, session, ended: null }),
    elevated: (s: SessionState, session: SessionView): SessionState => ({ ...s, session }),
    sessionChanged: (s: SessionState, session: SessionView | null): SessionState =>
      session ? { ...s, session } : { ...s, session: null, workOrder: null },
    /** The station ended the session (no activity for a while, or its longest time): back to sign-in, saying why. */
    sessionEnded: (s: SessionState, ended: SessionEnd): SessionState => ({
      ...s,
      session: null,
      ended,
      workOrder: null,
      workOrders: [],
    }),
    signedOut: (s: SessionState): SessionState => ({
      ...s,
      session: null,
      ended: null,
      workOrder: null,
      workOrders: [],
    }),
    workOrdersLoaded: (s: SessionState, workOrders: readonly WorkOrderView[]): SessionState => ({ ...s, workOrders }),
    workOrderSelected: (s: SessionState, workOrder: WorkOrderView): SessionState => ({ ...s, workOrder }),
    workOrderCleared: (s: SessionState): SessionState => ({ ...s, workOrder: null }),
    /** The station pushed a change of the registry policy in force (version, this station's revocation). */
    policyChanged: (
      s: SessionState,
      p: { policyVersion: string | null; stationRevoked: StationRevocation | null },
    ): SessionState =>
      s.status
        ? { ...s, status: { ...s.status, policyVersion: p.policyVersion, stationRevoked: p.stationRevoked } }
        : s,
  },
);

export interface SlotsState {
  readonly byPort: Readonly<Record<string, SlotView>>;
  /** Ports in the order the boards appeared. */
  readonly order: readonly string[];
}

function putSlot(s: SlotsState, slot: SlotView): SlotsState {
  const order = s.order.includes(slot.port) ? s.order : [...s.order, slot.port];
  return { byPort: { ...s.byPort, [slot.port]: slot }, order };
}

export const slotsSlice = createSlice('slots', { byPort: {}, order: [] } as SlotsState, {
  slotsLoaded: (_s: SlotsState, slots: readonly SlotView[]): SlotsState => ({
    byPort: Object.fromEntries(slots.map((x) => [x.port, x])),
    order: slots.map((x) => x.port),
  }),
  boardAttached: putSlot,
  stepProgressed: putSlot,
  provisioningPassed: putSlot,
  provisioningFailed: putSlot,
  /** The board no longer holds the identity of its record here (BOARD_CERT_MISSING): `identity-lost`. */
  boardIdentityLost: putSlot,
  boardDetached: (s: SlotsState, port: string): SlotsState => {
    if (!s.byPort[port]) return s;
    const byPort = { ...s.byPort };
    delete byPort[port];
    return { byPort, order: s.order.filter((p) => p !== port) };
  },
  slotsCleared: (): SlotsState => ({ byPort: {}, order: [] }),
});

export interface SyncState {
  readonly view: SyncView | null;
  /** The event stream to the station is up. */
  readonly connected: boolean;
}

export const syncSlice = createSlice('sync', { view: null, connected: false } as SyncState, {
  syncUpdated: (s: SyncState, view: SyncView): SyncState => ({ ...s, view }),
  stationConnected: (s: SyncState): SyncState => (s.connected ? s : { ...s, connected: true }),
  stationDisconnected: (s: SyncState): SyncState => (s.connected ? { ...s, connected: false } : s),
});

export type ViewName = 'slots' | 'log' | 'record' | 'yield' | 'sync' | 'devices' | 'overrides';

export interface UiState {
  readonly view: ViewName;
  readonly recordRunId: string | null;
  /** Text read out by screen readers (aria-live). */
  readonly announcement: string;
  readonly error: ApiError | null;
  readonly elevateOpen: boolean;
}

export const uiSlice = createSlice(
  'ui',
  { view: 'slots', recordRunId: null, announcement: '', error: null, elevateOpen: false } as UiState,
  {
    viewChosen: (s: UiState, view: ViewName): UiState => ({ ...s, view }),
    recordOpened: (s: UiState, runId: string): UiState => ({ ...s, view: 'record', recordRunId: runId }),
    announced: (s: UiState, announcement: string): UiState => ({ ...s, announcement }),
    errorRaised: (s: UiState, error: ApiError): UiState => ({ ...s, error }),
    errorDismissed: (s: UiState): UiState => (s.error ? { ...s, error: null } : s),
    elevationRequested: (s: UiState): UiState => ({ ...s, elevateOpen: true }),
    elevationClosed: (s: UiState): UiState => ({ ...s, elevateOpen: false }),
  },
);
