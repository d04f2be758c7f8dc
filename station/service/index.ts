/**
 * StationService: the host side of the StationApi (core/api.ts). Validates every call against the
 * operation's schema, checks the role, runs it, and answers with a typed envelope; never throws.
 * Owns the operator sessions, the selected work order, the slots (one per detected port, provisioning
 * automatically), the supervisor queries and overrides, and pushes StationEvents to subscribers.
 *
 * Transports: Electron IPC (electron/) and the localhost HTTP bridge (station/bridge/bridge.ts).
 */
import type { z } from 'zod';
import {
  API_VERSION,
  OPERATIONS,
  isOperationName,
  type ApiResult,
  type DevicesView,
  type HsmView,
  type LogEntry,
  type LogLineView,
  type OpArgs,
  type OperationName,
  type OpResult,
  type StationEvent,
  type StationRevocation,
  type SyncView,
  type WorkOrderView,
  type YieldView,
} from '../../core/api.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import { hasLoneSurrogate } from '../../core/canonical.js';
import { STEPS, type StepName } from '../../core/model.js';
import { systemClock, type Clock, type DeviceDiscovery, type Logger } from '../../core/ports.js';
import { matchProfile } from '../../core/provisioning/profiles.js';
import { ok, type Result } from '../../core/result.js';
import type { AuditVerification } from '../../core/provisioning/store.js';
import { createDiscovery } from '../../native/discovery.js';
import type { LogRow } from '../../native/store/queries.js';
import type { StationPorts } from '../../native/store/index.js';
import { createUsbWatcher, UDEV_GUIDANCE, type UsbWatcher } from '../../native/usb.js';
import type { Engine } from '../engine.js';
import type { LogLine } from '../../native/logger.js';
import { authPolicy, createSessions, loadBadgeKey, operatorRevoked, type Sessions } from './auth.js';
import type { LogTap } from './log-tap.js';
import { buildRecordDetail } from './records.js';
import { enginePorts } from '../doctor/engine-ports.js';
import { runDoctor } from '../doctor/run.js';
import { percentile, reportFileName, writeLogReport, yieldReport } from '../reports.js';
import { recordScrap } from '../scrap.js';
import { createSlots, toApiError, type SlotManager } from './slots.js';
import { labelDueAfterPass, labelOperations, printAfterPassFor } from './labels.js';

export { createLogTap, type LogTap } from './log-tap.js';
export { hashPin, hashBadge, loadBadgeKey, verifyPin } from './auth.js';

export const LOG_RING_SIZE = 2000;
const AUDIT_CACHE_MS = 5000;

export interface StationServiceOptions {
  readonly engine: Engine;
  readonly logger: Logger;
  /** The logger's tap hub: feeds getLogLines and `log` events. */
  readonly logTap?: LogTap;
  readonly clock?: Clock;
  /** Discovery to watch (default: the engine's, i.e. serial enumeration + configured ports). */
  readonly discovery?: DeviceDiscovery;
  /** Ports to watch in addition to the configuration's `ports.extra` (paths or simple globs). */
  readonly extraPorts?: readonly string[];
  /** Check every result against its schema (a development assertion; default on under vitest). */
  readonly validateResults?: boolean;
}

export interface StationService {
  invoke(clientId: string, op: OperationName, rawArgs: unknown): Promise<ApiResult<unknown>>;
  /**
   * Subscribe to events. With `clientId`, `session` events are those of that client only and `log`
   * events come while that client has supervisor rights; without it (in-process), everything.
   */
  subscribe(cb: (e: StationEvent) => void, opts?: { clientId?: string }): () => void;
  /** Begin watching ports (and the sync loop when configured). */
  start(): Promise<void>;
  /** Stop watching, abort runs in progress (they stay resumable), stop the sync loop. Does not close the engine. */
  stop(): Promise<void>;
}

interface Sub {
  readonly cb: (e: StationEvent) => void;
  readonly clientId: string | undefined;
}

type Handler = (clientId: string, args: never) => Promise<Result<unknown>> | Result<unknown>;

/** Render the first zod issue as `path: message` (unions: the closest branch). */
function describeIssues(error: z.ZodError): { message: string; path: string } {
  type Issue = z.core.$ZodIssue;
  let issues: readonly Issue[] = error.issues;
  let prefix: PropertyKey[] = [];
  for (let depth = 0; depth < 4; depth++) {
    const first = issues[0];
    if (!first || first.code !== 'invalid_union') break;
    const branches = (first as unknown as { errors: Issue[][] }).errors;
    if (!branches?.length) break;
    const best = [...branches].sort(
      (a, b) =>
        a.filter((x) => x.code === 'unrecognized_keys').length -
          b.filter((x) => x.code === 'unrecognized_keys').length || a.length - b.length,
    )[0]!;
    prefix = [...prefix, ...first.path];
    issues = best;
  }
  const i = issues[0];
  const path = [...prefix, ...(i?.path ?? [])].map(String).join('.');
  const keys = i?.code === 'unrecognized_keys' ? (i as unknown as { keys: string[] }).keys.join(', ') : '';
  return {
    path: keys && !path ? keys : path,
    message: `${path || keys || '(arguments)'}: ${i?.message ?? 'invalid'}`,
  };
}

function histogram(sorted: readonly number[], buckets = 10): YieldView['cycleTime']['histogram'] {
  if (sorted.length === 0) return [];
  const max = sorted[sorted.length - 1]!;
  const raw = Math.max(1, max / buckets);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const width = [1, 2, 5, 10].map((m) => m * mag).find((w) => w >= raw) ?? raw;
  const out = Array.from({ length: buckets }, (_, k) => ({ fromMs: k * width, toMs: (k + 1) * width, count: 0 }));
  for (const v of sorted) out[Math.min(buckets - 1, Math.floor(v / width))]!.count++;
  return out;
}

const EMPTY_SYNC: SyncView = {
  registryUrl: null,
  reachable: null,
  pending: 0,
  sent: 0,
  acknowledged: 0,
  failed: 0,
  lastReceipt: null,
  lastError: null,
  nextAttemptAt: null,
  failingBatches: [],
};

/** Create the service over an open engine. The caller owns the engine (and closes it after stop()). */
export function createStationService(o: StationServiceOptions): StationService {
  const { engine, logger } = o;
  const clock = o.clock ?? engine.clock ?? systemClock;
  const log = logger.child('[service]');
  const authRules = authPolicy(engine.config.config.auth);
  const validate = o.validateResults ?? (process.env['VITEST'] !== undefined || process.env['NODE_ENV'] === 'test');
  const subs = new Set<Sub>();
  const ring: LogLineView[] = [];
  const problems = new Map<string, DevicesView['problems'][number]>();
  let selectedWo: string | null = null;
  let sessions: Sessions | null = null;
  let slots: SlotManager | null = null;
  let stopWatch: (() => void) | null = null;
  let unTap: (() => void) | null = null;
  let unSync: (() => void) | null = null;
  let expiry: ReturnType<typeof setInterval> | null = null;
  let usbWatcher: UsbWatcher | null = null;
  let auditCache: { at: number; v: AuditVerification } | null = null;
  let started = false;

  // ------------------------------------------------------------------ events

  const emit = (e: StationEvent, only?: (s: Sub) => boolean) => {
    for (const s of subs) {
      if (only && !only(s)) continue;
      try {
        s.cb(e);
      } catch (x) {
        log.log('error', `event subscriber threw: ${(x as Error).message}`);
      }
    }
  };
  const emitSession = (clientId: string) => {
    const session = sess().view(clientId);
    const ended = session ? null : sess().ended(clientId);
    emit(
      { type: 'session', session, ...(ended ? { ended } : {}) },
      (s) => s.clientId === undefined || s.clientId === clientId,
    );
  };

  const onLogLine = (l: LogLine) => {
    const line: LogLineView = { ts: l.ts, level: l.level, subsystem: l.subsystem, msg: l.msg.slice(0, 2000) };
    ring.push(line);
    if (ring.length > LOG_RING_SIZE) ring.splice(0, ring.length - LOG_RING_SIZE);
    if (line.level === 'debug') return;
    emit({ type: 'log', line }, (s) => s.clientId === undefined || (sessions?.isSupervisor(s.clientId) ?? false));
  };
  if (o.logTap) unTap = o.logTap.subscribe(onLogLine);

  // ------------------------------------------------------------------ lazily opened parts

  /** The station database's ports: the engine's connection (the process opens the database once). */
  function open(): Result<StationPorts> {
    return ok(engine.db);
  }
  function sess(): Sessions {
    if (!sessions) {
      const d = open();
      if (!d.ok) throw new Error(`station database: ${d.error.message}`);
      const key = loadBadgeKey(engine.config.dataDir);
      if (!key.ok) throw new Error(key.error.message);
      sessions = createSessions({
        operators: d.value.operators,
        attempts: d.value.attempts,
        badgeKey: key.value,
        clock,
        logger: log,
        policy: authRules,
      });
    }
    return sessions;
  }
  function slotMgr(): SlotManager {
    slots ??= createSlots({
      engine,
      clock,
      logger: log,
      workOrder: () => selectedWo,
      operator: () => sessions?.currentOperator() ?? null,
      emit: (slot) => {
        emit({ type: 'slot', slot });
        // A record was just queued for sync: push the counts (clients do not poll getSync for them).
        if (slot.state === 'pass') emit({ type: 'sync', sync: sync()?.status() ?? EMPTY_SYNC });
      },
      removed: (port) => emit({ type: 'slotRemoved', port }),
      ...(labelDueAfterPass(engine) ? { printAfterPass: printAfterPassFor(engine, logger) } : {}),
    });
    return slots;
  }
  const sync = () => engine.sync;
  const root = (): Uint8Array => engine.station.caChain[engine.station.caChain.length - 1]!;

  function auditStatus(): AuditVerification {
    const now = clock.monotonicMs();
    if (!auditCache || now - auditCache.at > AUDIT_CACHE_MS) auditCache = { at: now, v: engine.store.verifyAudit() };
    return auditCache.v;
  }

  function workOrderView(id: string): WorkOrderView | null {
    const w = engine.workOrder(id);
    if (!w.ok) return null;
    const d = open();
    const n = d.ok ? (d.value.queries.provisionedByWorkOrder().get(id) ?? 0) : 0;
    return {
      id: w.value.id,
      product: w.value.product,
      profiles: [...w.value.profiles],
      quantity: w.value.quantity,
      provisioned: n,
      ...(w.value.requireScanIn === true ? { requireScanIn: true } : {}),
    };
  }

  const toEntry = (r: LogRow): LogEntry => ({
    runId: r.runId,
    recordId: r.recordId,
    serialNumber: r.serialNumber,
    chipId: r.chipId,
    workOrder: r.workOrder,
    operator: r.operator,
    kind: r.kind,
    outcome: r.outcome,
    errorCode: r.errorCode,
    errorParams: r.errorParams,
    step: (STEPS as readonly string[]).includes(r.step) ? (r.step as StepName) : 'identify',
    startedAt: r.startedAt,
    updatedAt: r.updatedAt,
    durationMs: r.durationMs,
    syncState: r.syncState,
    ...(r.attempts !== null ? { attempts: r.attempts } : {}),
  });

  async function usb(): Promise<UsbWatcher> {
    const fromEngine = (engine as { usb?: UsbWatcher }).usb;
    if (fromEngine) return fromEngine;
    usbWatcher ??= await createUsbWatcher({ logger });
    return usbWatcher;
  }

  /**
   * From one lifecycle status: the version of the registry policy in force, as the API shows it (a string), or
   * null; and this station's revocation by that policy (in effect now), or null.
   */
  function policyState(): { policyVersion: string | null; stationRevoked: StationRevocation | null } {
    const st = engine.lifecycle.status();
    const policyVersion = st.policyVersion === null ? null : String(st.policyVersion);
    return {
      policyVersion,
      stationRevoked: st.stationRevoked
        ? {
            revokedAt: st.stationRevokedAt,
            policyVersion: st.stationRevokedBy === 'policy' ? String(st.policyVersion) : null,
          }
        : null,
    };
  }
  /** Push a `policy` event when the policy in force or this station's revocation changes (checked every 5 s). */
  let lastPolicyKey: string | null = null;
  /**
   * End the sessions of operators revoked since they signed in, and withdraw elevations of supervisors revoked since
   * (`station operator revoke`, or the registry policy's revokedOperators): checked on every request and every 5 s.
   */
  /** Clients whose session ended (or elevation was withdrawn) by a revocation: told AUTH_REVOKED on their next call. */
  const revokedOf = new Map<string, { operatorId: string; sessionEnded: boolean }>();
  function endRevokedSessions(): void {
    if (!sessions) return;
    const d = open();
    const revoked = (id: string) => operatorRevoked(engine.lifecycle, d.ok ? d.value.operators : null, id);
    for (const r of sessions.endRevoked(revoked)) {
      if (revokedOf.size >= 1000) revokedOf.delete(revokedOf.keys().next().value!);
      revokedOf.set(r.clientId, { operatorId: r.operatorId, sessionEnded: r.sessionEnded });
      emitSession(r.clientId);
    }
  }

  function checkPolicy(): void {
    const ev = { type: 'policy' as const, ...policyState() };
    const key = JSON.stringify(ev);
    if (lastPolicyKey !== null && key !== lastPolicyKey) emit(ev);
    lastPolicyKey = key;
  }

  // ------------------------------------------------------------------ operations

  const labelOps = labelOperations(engine, logger, (clientId) => ({
    operator: sessions?.operatorOf(clientId) ?? null,
    supervisor: sessions?.supervisorOf(clientId)?.operatorId ?? null,
  }));

  const handlers: {
    [O in OperationName]: (
      clientId: string,
      args: z.output<(typeof OPERATIONS)[O]['args']>,
    ) => Promise<Result<OpResult<O>>> | Result<OpResult<O>>;
  } = {
    getStatus: (clientId) =>
      ok({
        apiVersion: API_VERSION,
        stationId: engine.station.id,
        session: sess().view(clientId),
        workOrder: selectedWo ? workOrderView(selectedWo) : null,
        ...policyState(),
      }),

    async signIn(clientId, args) {
      // The registry's policy: an operator it revokes cannot sign in (also one added here after the policy).
      if ('operatorId' in args) {
        const revoked = engine.lifecycle.checkOperator(args.operatorId);
        if (!revoked.ok) return revoked;
      }
      const r = await sess().signIn(clientId, args);
      if (r.ok) {
        revokedOf.delete(clientId);
        const revoked = engine.lifecycle.checkOperator(r.value.operatorId);
        if (!revoked.ok) {
          sess().signOut(clientId);
          return revoked;
        }
        emitSession(clientId);
        slotMgr().kick();
      }
      return r;
    },

    signOut(clientId) {
      revokedOf.delete(clientId);
      if (sess().signOut(clientId)) emitSession(clientId);
      return ok({});
    },

    async elevate(clientId, args) {
      const r = await sess().elevate(clientId, args);
      if (r.ok) {
        revokedOf.delete(clientId);
        emitSession(clientId);
      }
      return r;
    },

    listWorkOrders() {
      return ok(engine.listWorkOrders().map((w) => workOrderView(w.id)!));
    },

    selectWorkOrder(clientId, args) {
      const v = workOrderView(args.id);
      if (!v) {
        const known = engine.listWorkOrders().map((w) => w.id);
        return fail('INPUT_INVALID', `id: unknown work order ${args.id}`, { path: 'id', known });
      }
      selectedWo = v.id;
      log.log('info', `work order ${v.id} selected`, { operator: sess().operatorOf(clientId) });
      slotMgr().kick();
      return ok(v);
    },

    getSlots: () => ok(slotMgr().list()),

    retrySlot: (_c, args) => slotMgr().retry(args.port),

    scanSlot: (_c, args) => slotMgr().scan(args.port, args.serial),

    async approveOverride(clientId, args) {
      const sup = sess().supervisorOf(clientId);
      const operator = sess().operatorOf(clientId);
      if (!sup || !operator) return fail('AUTH_FORBIDDEN', 'a supervisor must confirm this override');
      const slot = slotMgr().get(args.port);
      const base = { supervisor: sup.operatorId, operator, reason: args.reason, port: args.port };
      if (args.kind === 'reprovision') {
        const r = slotMgr().reprovision(args.port, operator, sup.operatorId);
        if (!r.ok) return r;
        engine.store.appendAudit('override.reprovision', { ...base, chipId: slot?.chipId ?? null });
        log.log('info', 'override: re-provision approved', { ...base, chipId: slot?.chipId ?? null });
        return r;
      }
      const z = await slotMgr().scrap(args.port);
      if (!z.ok) {
        log.log('warn', `override: scrap failed: ${z.error.code} ${z.error.message}`, base);
        return z;
      }
      await recordScrap(
        engine,
        { chipId: z.value.chipId, serialNumber: z.value.serialNumber, ...base, supervisor: sup.operatorId },
        log,
      );
      return ok(z.value.slot);
    },

    queryLog(_c, args) {
      const d = open();
      if (!d.ok) return d;
      const { limit, cursor, ...filter } = args;
      const r = d.value.queries.queryLog(filter, { limit, ...(cursor ? { cursor } : {}) });
      if (!r.ok) return r;
      return ok({ items: r.value.items.map(toEntry), total: r.value.total, nextCursor: r.value.nextCursor });
    },

    async getRecord(_c, args) {
      const d = open();
      if (!d.ok) return d;
      const row = d.value.queries.logEntry(args.runId);
      const run = engine.store.getRun(args.runId);
      if (!row || !run) return fail('INPUT_INVALID', `runId: no run ${args.runId}`, { path: 'runId' });
      const a = auditStatus();
      return ok(
        await buildRecordDetail({
          entry: toEntry(row),
          run,
          record: d.value.queries.recordByRun(args.runId),
          root: root(),
          clock,
          audit: a.ok
            ? { ok: true, entries: a.entries, message: null }
            : { ok: false, entries: a.entries, message: `${a.reason} at ${a.at}: ${a.message}` },
          sync: { state: row.syncState, receiptId: row.receiptId, acknowledgedAt: row.acknowledgedAt },
        }),
      );
    },

    getYield(_c, args) {
      const d = open();
      if (!d.ok) return d;
      const f = d.value.queries.yieldFigures(args);
      const ct = f.cycleTimesMs;
      return ok({
        boards: f.boards,
        refused: f.refused,
        passedFirstTime: f.passedFirstTime,
        firstPassYield: f.boards === 0 ? 0 : f.passedFirstTime / f.boards,
        provisioned: f.provisioned,
        failuresByCause: f.failuresByCause,
        cycleTime: { p50: percentile(ct, 50), p95: percentile(ct, 95), histogram: histogram(ct) },
        boardsPerHour: f.boardsPerHour,
      });
    },

    async exportReport(_c, args) {
      const d = open();
      if (!d.ok) return d;
      const { report, ...filter } = args;
      const fileName = reportFileName(report, engine.config.config.stationId, filter);
      if (report === 'yield') {
        const content = yieldReport(d.value.queries, filter);
        return ok({ fileName, content, rows: content.split('\n').length - 2 });
      }
      const lines: string[] = [];
      const r = await writeLogReport(d.value.queries, filter, (l) => lines.push(l));
      if (!r.ok) return r;
      return ok({ fileName, content: lines.join(''), rows: r.value.rows });
    },

    getSync: () => ok(sync()?.status() ?? EMPTY_SYNC),

    async syncNow() {
      const s = sync();
      if (!s) return fail('SYNC_UNREACHABLE', 'no registry is configured for this station (config.json: registry)');
      return s.syncOnce();
    },

    async exportBundle() {
      const s = sync();
      if (!s) return fail('SYNC_UNREACHABLE', 'no registry is configured for this station (config.json: registry)');
      return s.exportBundle();
    },

    async importReceipt(_c, args) {
      const s = sync();
      if (!s) return fail('SYNC_UNREACHABLE', 'no registry is configured for this station (config.json: registry)');
      const r = await s.importReceipt(args.content);
      if (!r.ok) return r;
      return ok({ ...r.value });
    },

    async getHsm() {
      const c = engine.config.config.hsm;
      const info = await engine.hsm.info();
      if (!info.ok) {
        const v: HsmView = {
          present: false,
          loggedIn: false,
          module: c.module,
          slotId: null,
          tokenLabel: c.tokenLabel,
          tokenSerial: null,
          manufacturer: null,
          keys: [],
          error: toApiError(info.error),
        };
        return ok(v);
      }
      const i = info.value;
      return ok({
        present: true,
        loggedIn: i.loggedIn,
        module: i.module,
        slotId: i.slotId,
        tokenLabel: i.tokenLabel,
        tokenSerial: i.tokenSerial,
        manufacturer: i.manufacturer,
        keys: i.keys.map((k) => ({ label: k.label, class: k.class, keyType: k.keyType ?? null })),
        error: null,
      });
    },

    async getDevices() {
      const u = await usb();
      const ports = await discovery().list();
      const probs = [...problems.values()];
      return ok({
        ports: ports.map((p) => {
          const m = matchProfile(engine.profiles, { port: p });
          return {
            path: p.path,
            source: p.source,
            usb: p.usb
              ? {
                  vendorId: p.usb.vendorId,
                  productId: p.usb.productId,
                  ...(p.usb.serialNumber !== undefined ? { serialNumber: p.usb.serialNumber } : {}),
                  ...(p.usb.product !== undefined ? { product: p.usb.product } : {}),
                }
              : null,
            profileId: m.profile ? m.profile.id : null,
          };
        }),
        usb: { available: u.available, reason: u.available ? null : (u.reason ?? 'USB unavailable') },
        problems: probs,
      });
    },

    /** `station doctor`'s checks over the running engine (station/doctor). */
    doctor: async () => ok(await runDoctor(enginePorts(engine, discovery))),

    getLabel: (clientId, args) => labelOps.getLabel(clientId, args),
    reprintLabel: (clientId, args) => labelOps.reprintLabel(clientId, args),

    getLogLines(_c, args) {
      const order = { debug: 10, info: 20, warn: 30, error: 40 } as const;
      const min = order[args.minLevel ?? 'debug'];
      const lines = ring.filter((l) => order[l.level] >= min);
      return ok(lines.slice(-args.limit));
    },
  };

  // ------------------------------------------------------------------ discovery

  let disco: DeviceDiscovery | null = null;
  function discovery(): DeviceDiscovery {
    if (disco) return disco;
    if (o.discovery) disco = o.discovery;
    else if (o.extraPorts?.length) {
      const c = engine.config.config.ports;
      const u = (engine as { usb?: UsbWatcher }).usb;
      disco = createDiscovery({
        extraPorts: [...c.extra, ...o.extraPorts],
        pollMs: c.pollMs,
        logger: logger.child('[detect]'),
        ...(u ? { usb: u } : {}),
      });
    } else disco = engine.discovery();
    return disco;
  }

  // ------------------------------------------------------------------ the service

  const service: StationService = {
    async invoke(clientId, op, rawArgs) {
      try {
        if (!isOperationName(op)) {
          return { ok: false, error: toApiError(stationError('INPUT_INVALID', `unknown operation ${String(op)}`)) };
        }
        const spec = OPERATIONS[op];
        const role = spec.role as 'none' | 'operator' | 'supervisor';
        const s = sess();
        for (const id of s.expire()) emitSession(id);
        endRevokedSessions();
        if (role !== 'none') {
          // Revoked (here or by the registry policy) since this client's session signed in or was elevated.
          const rev = revokedOf.get(clientId);
          if (rev && (rev.sessionEnded || role === 'supervisor')) {
            revokedOf.delete(clientId);
            return {
              ok: false,
              error: toApiError(
                stationError('AUTH_REVOKED', `${op}: operator ${rev.operatorId} has been revoked`, {
                  operatorId: rev.operatorId,
                }),
              ),
            };
          }
          if (!s.view(clientId)) {
            const ended = s.ended(clientId);
            return {
              ok: false,
              error: toApiError(
                ended
                  ? stationError(
                      'AUTH_SESSION_EXPIRED',
                      ended === 'idle'
                        ? `${op}: the session ended after ${authRules.sessionIdleMs / 60_000} minutes without activity`
                        : `${op}: the session reached its longest time (${authRules.sessionMaxMs / 3_600_000} h)`,
                      { ended },
                    )
                  : stationError('AUTH_REQUIRED', `${op} needs a signed-in operator`),
              ),
            };
          }
          if (role === 'supervisor' && !s.isSupervisor(clientId))
            return { ok: false, error: toApiError(stationError('AUTH_FORBIDDEN', `${op} needs a supervisor`)) };
          // Only operator-initiated operations keep a session alive (OPERATIONS[op].activity): the UI's own reads of
          // the station's state after events do not.
          if (spec.activity) s.touch(clientId);
        }
        const parsed = (spec.args as z.ZodType).safeParse(rawArgs ?? {});
        if (!parsed.success) {
          const d = describeIssues(parsed.error);
          return {
            ok: false,
            error: toApiError(stationError('INPUT_INVALID', `${op}: ${d.message}`, { path: d.path })),
          };
        }
        // Text that is not Unicode (a lone surrogate, possible in JSON) cannot enter a signed or hashed document
        // (canonical JSON, RFC 8785, refuses it): refused here, before any work, with a typed error.
        if (hasLoneSurrogate(parsed.data))
          return {
            ok: false,
            error: toApiError(stationError('INPUT_INVALID', `${op}: text with a lone surrogate (not valid Unicode)`)),
          };
        const h = handlers[op] as unknown as Handler;
        const r = await h(clientId, parsed.data as never);
        if (!r.ok) return { ok: false, error: toApiError(r.error as StationError) };
        if (validate) {
          const chk = (spec.result as z.ZodType).safeParse(r.value);
          if (!chk.success) {
            const d = describeIssues(chk.error);
            log.log('error', `bug: ${op} result does not match its schema: ${d.message}`);
            return { ok: false, error: toApiError(stationError('INTERNAL', `${op}: result schema: ${d.message}`)) };
          }
        }
        return { ok: true, value: r.value };
      } catch (e) {
        log.log('error', `bug in ${String(op)}: ${(e as Error).stack ?? String(e)}`);
        return {
          ok: false,
          error: toApiError(stationError('INTERNAL', `${String(op)} failed: ${(e as Error).message}`)),
        };
      }
    },

    subscribe(cb, opts) {
      const s: Sub = { cb, clientId: opts?.clientId };
      subs.add(s);
      return () => subs.delete(s);
    },

    async start() {
      if (started) return;
      started = true;
      const d = open();
      if (!d.ok) log.log('error', `station database: ${d.error.message}`);
      sess();
      const sm = slotMgr();
      stopWatch = discovery().watch((ev) => {
        if (ev.type === 'attached') {
          sm.attach(ev.port);
        } else if (ev.type === 'detached') {
          for (const k of [...problems.keys()]) if (k.startsWith(`${ev.port.path}|`)) problems.delete(k);
          sm.detach(ev.port.path);
        } else {
          problems.set(`${ev.path}|${ev.code}`, {
            path: ev.path,
            code: ev.code === 'ACCESS_DENIED' ? 'LINK_ACCESS_DENIED' : 'ENUMERATION_FAILED',
            message: ev.message,
            // LINK_ACCESS_DENIED's text names the port (core/errors.ts params): the UI says it in its language.
            ...(ev.code === 'ACCESS_DENIED' ? { params: { path: ev.path } } : {}),
            guidance:
              ev.code === 'ACCESS_DENIED'
                ? UDEV_GUIDANCE
                : 'Port enumeration failed; the station keeps the last known ports. Check the log.',
          });
        }
      });
      const s = sync();
      if (s) {
        unSync = s.onChange((v) => emit({ type: 'sync', sync: v }));
        s.start();
      }
      // The registry's policy and quotas, pulled in the background while online (the last verified stay in force).
      engine.lifecycle.start();
      checkPolicy();
      expiry = setInterval(() => {
        if (sessions) for (const id of sessions.expire()) emitSession(id);
        endRevokedSessions();
        checkPolicy();
      }, 5000);
      expiry.unref?.();
      log.log('info', 'station service started', { stationId: engine.station.id });
    },

    async stop() {
      stopWatch?.();
      stopWatch = null;
      if (expiry) clearInterval(expiry);
      expiry = null;
      unSync?.();
      unSync = null;
      await sync()?.stop();
      engine.lifecycle.stop();
      await slots?.stop();
      unTap?.();
      unTap = null;
      usbWatcher?.close();
      usbWatcher = null;
      sessions = null;
      started = false;
      subs.clear();
    },
  };
  return service;
}

/** Helper for typed in-process calls (tests, Electron main): `call(service, clientId, 'getSlots', {})`. */
export async function call<O extends OperationName>(
  service: StationService,
  clientId: string,
  op: O,
  args: OpArgs<O>,
): Promise<ApiResult<OpResult<O>>> {
  return (await service.invoke(clientId, op, args)) as ApiResult<OpResult<O>>;
}
