/**
 * Supervisor queries over the station database: the provisioning log (runs joined with records, and the boards
 * refused before a run: table `refusals`; keyset pagination over both), record lookup by run, per-work-order counts and yield figures. Read-only; a port of the station
 * database on its one connection (station-db.ts). The indexes they rely on are created by
 * schema version 3 (native/store/migrations.ts); docs/station-api.md lists which query uses which.
 *
 * May import: core/, better-sqlite3 types.
 */
import type Database from 'better-sqlite3';
import { fail, MAX_PARAM_LENGTH, type ErrorParams } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';

/** A run's outcome, or `refused`: a board refused before a run existed (table `refusals`, schema version 10). */
export type LogOutcome = 'provisioned' | 'failed' | 'in-progress' | 'refused';
export type SyncState = 'pending' | 'sent' | 'acknowledged' | 'failed' | 'n/a';

export interface LogFilter {
  /** Prefix of the serial number or chip id. */
  readonly text?: string;
  readonly workOrder?: string;
  readonly operator?: string;
  readonly outcome?: LogOutcome;
  /** ISO timestamps (run start), inclusive. */
  readonly from?: string;
  readonly to?: string;
}

export interface LogRow {
  readonly runId: string;
  readonly recordId: string | null;
  readonly serialNumber: string;
  readonly chipId: string;
  readonly workOrder: string;
  readonly operator: string;
  readonly kind: 'initial' | 'rotation';
  readonly outcome: LogOutcome;
  readonly errorCode: string | null;
  /**
   * The values of the error code's text placeholders (StationError `params`): a failed run's from its error, a
   * refusal's from its `board.refused` audit entry; null when none were kept (no params, or written before them).
   */
  readonly errorParams: ErrorParams | null;
  readonly step: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly durationMs: number | null;
  /** From the sync outbox (schema version 2); 'n/a' without a record or an outbox. */
  readonly syncState: SyncState;
  readonly receiptId: string | null;
  readonly acknowledgedAt: string | null;
  /** A refusal: the refused attempts it stands for (repeats coalesced, docs/audit.md "Refusals"); null for a run. */
  readonly attempts: number | null;
}

export interface LogPageRows {
  readonly items: LogRow[];
  readonly total: number;
  readonly nextCursor: string | null;
}

export interface RecordRow {
  readonly recordId: string;
  readonly runId: string;
  readonly recordJson: string;
  readonly jws: string;
  readonly createdAt: string;
}

interface RecordDbRow {
  record_id: string;
  run_id: string;
  record_json: string;
  jws: string;
  created_at: string;
}
const toRecordRow = (r: RecordDbRow | undefined): RecordRow | null =>
  r ? { recordId: r.record_id, runId: r.run_id, recordJson: r.record_json, jws: r.jws, createdAt: r.created_at } : null;

export interface YieldFilter {
  readonly workOrder?: string;
  readonly from?: string;
  readonly to?: string;
}

export interface YieldFigures {
  /** Distinct boards (chip ids) with an initial run or a refusal in the range whose first attempt has ended. */
  readonly boards: number;
  /** Refusals in the range (rows: a repeat coalesced into a refusal is not counted again). */
  readonly refused: number;
  readonly passedFirstTime: number;
  readonly provisioned: number;
  readonly failuresByCause: { code: string; count: number }[];
  /** Wall-clock durations (ms) of the completed runs, ascending. */
  readonly cycleTimesMs: number[];
  readonly boardsPerHour: { hour: string; count: number }[];
}

export interface StationQueries {
  queryLog(filter: LogFilter, page: { limit: number; cursor?: string }): Result<LogPageRows>;
  logEntry(runId: string): LogRow | null;
  recordByRun(runId: string): RecordRow | null;
  /** A record by its record id (labels: `station label --record ID`, reprintLabel). */
  recordById(recordId: string): RecordRow | null;
  /** Current (not superseded) records per work order. */
  provisionedByWorkOrder(): Map<string, number>;
  yieldFigures(filter: YieldFilter): YieldFigures;
  /** The work orders of the runs in the filter's range (started_at), sorted; at most 1000. */
  workOrders(filter: YieldFilter): string[];
}

interface LogDbRow {
  run_id: string;
  record_id: string | null;
  serial_number: string;
  chip_id: string;
  work_order: string;
  operator: string;
  kind: string;
  state: string;
  error_code: string | null;
  step: string;
  started_at: string;
  updated_at: string;
  sync_state: string | null;
  receipt_id: string | null;
  acknowledged_at: string | null;
  attempts: number | null;
  error_params: string | null;
}

const OUTCOME_STATE: Record<LogOutcome, string> = {
  provisioned: 'done',
  failed: 'failed',
  'in-progress': 'active',
  refused: 'refused',
};
const STATE_OUTCOME: Record<string, LogOutcome> = {
  done: 'provisioned',
  failed: 'failed',
  active: 'in-progress',
  refused: 'refused',
};
/** Upper bound for a prefix range (ids and serial numbers are ASCII). */
const PREFIX_END = '\uffff';

function isoMs(s: string): number {
  return Date.parse(s);
}

function toLogRow(r: LogDbRow): LogRow {
  const outcome = STATE_OUTCOME[r.state] ?? 'in-progress';
  return {
    runId: r.run_id,
    recordId: r.record_id,
    serialNumber: r.serial_number,
    chipId: r.chip_id,
    workOrder: r.work_order,
    operator: r.operator,
    kind: r.kind === 'rotation' ? 'rotation' : 'initial',
    outcome,
    errorCode: r.error_code,
    errorParams: parseErrorParams(r.error_params),
    step: r.step,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    durationMs:
      outcome === 'in-progress' || outcome === 'refused'
        ? null
        : Math.max(0, isoMs(r.updated_at) - isoMs(r.started_at)),
    syncState: SYNC_STATES.has(r.sync_state ?? '') ? (r.sync_state as SyncState) : 'n/a',
    receiptId: r.receipt_id,
    acknowledgedAt: r.acknowledged_at,
    attempts: r.attempts,
  };
}

/**
 * Stored params (JSON text) as ErrorParams: an object of at most 16 names, each a string (cut to MAX_PARAM_LENGTH)
 * or a finite number; anything else is dropped. Null for none or unreadable JSON.
 */
export function parseErrorParams(json: string | null): ErrorParams | null {
  if (json === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const out: Record<string, string | number> = {};
  for (const [k, x] of Object.entries(v).slice(0, 16)) {
    if (!/^[A-Za-z][A-Za-z0-9]{0,31}$/.test(k)) continue;
    if (typeof x === 'string') out[k] = x.slice(0, MAX_PARAM_LENGTH);
    else if (typeof x === 'number' && Number.isFinite(x)) out[k] = x;
  }
  return Object.keys(out).length ? out : null;
}

/** Normalise an ISO timestamp to the stored form (toISOString), so string comparison is time order. */
function normIso(s: string): string {
  const t = Date.parse(s);
  return Number.isNaN(t) ? s : new Date(t).toISOString();
}

function encodeCursor(startedAt: string, runId: string): string {
  return Buffer.from(JSON.stringify([startedAt, runId]), 'utf8').toString('base64url');
}

function decodeCursor(c: string): [string, string] | null {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  return null;
}

const SYNC_STATES = new Set(['pending', 'sent', 'acknowledged', 'failed']);
const BASE_COLS = `r.run_id, rec.record_id, r.serial_number, r.chip_id, r.work_order, r.operator, r.kind, r.state,
  json_extract(r.error_json, '$.code') AS error_code, r.step, r.started_at, r.updated_at`;

/** The refusals' columns as the log's rows (the second arm of the log's compound query). */
const REFUSAL_COLS = `f.refusal_id AS run_id, NULL AS record_id, f.serial_number, f.chip_id, f.work_order, f.operator,
  'initial' AS kind, 'refused' AS state, f.code AS error_code, 'identify' AS step, f.first_at AS started_at,
  f.last_at AS updated_at, NULL AS sync_state, NULL AS receipt_id, NULL AS acknowledged_at, f.count AS attempts,
  (SELECT json_extract(a.payload_json, '$.params') FROM audit_log a WHERE a.seq = f.audit_seq) AS error_params`;

/** Where the filter's fields are: in runs (`r`), or in refusals (`f`, whose time is the first refused attempt). */
type Source = 'runs' | 'refusals';
const COL: Record<Source, { a: string; time: string }> = {
  runs: { a: 'r', time: 'r.started_at' },
  refusals: { a: 'f', time: 'f.first_at' },
};

/**
 * The filter as SQL over runs or refusals; null when the source has no rows for it (an outcome of the other one).
 * An outcome filter on runs also keeps the state (`refused` selects refusals only, any other outcome runs only).
 */
function where(f: LogFilter, source: Source = 'runs'): { sql: string; params: unknown[] } | null {
  const { a, time } = COL[source];
  const conds: string[] = [];
  const params: unknown[] = [];
  if (f.outcome && (f.outcome === 'refused') !== (source === 'refusals')) return null;
  if (f.text) {
    const t = f.text.trim();
    const lower = t.toLowerCase();
    conds.push(`((${a}.serial_number >= ? AND ${a}.serial_number < ?) OR (${a}.chip_id >= ? AND ${a}.chip_id < ?))`);
    params.push(t, t + PREFIX_END, lower, lower + PREFIX_END);
  }
  if (f.workOrder) {
    conds.push(`${a}.work_order = ?`);
    params.push(f.workOrder);
  }
  if (f.operator) {
    conds.push(`${a}.operator = ?`);
    params.push(f.operator);
  }
  if (f.outcome && source === 'runs') {
    conds.push('r.state = ?');
    params.push(OUTCOME_STATE[f.outcome]);
  }
  if (f.from) {
    conds.push(`${time} >= ?`);
    params.push(normIso(f.from));
  }
  if (f.to) {
    conds.push(`${time} <= ?`);
    params.push(normIso(f.to));
  }
  return { sql: conds.join(' AND '), params };
}

/** ` WHERE a AND b` (or '') of conditions. */
const whereSql = (conds: readonly string[]): string => (conds.length ? ` WHERE ${conds.join(' AND ')}` : '');

/** Queries over an open connection to the station database (schema version 3 or later). */
export function createQueries(db: Database.Database): StationQueries {
  const hasOutbox =
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").get() !== undefined;
  const PARAMS = `json_extract(r.error_json, '$.params') AS error_params`;
  const LOG_COLS = hasOutbox
    ? `${BASE_COLS}, o.state AS sync_state, o.receipt_id, o.acknowledged_at, NULL AS attempts, ${PARAMS}`
    : `${BASE_COLS}, NULL AS sync_state, NULL AS receipt_id, NULL AS acknowledged_at, NULL AS attempts, ${PARAMS}`;
  const JOIN = `LEFT JOIN records rec ON rec.run_id = r.run_id${hasOutbox ? ' LEFT JOIN outbox o ON o.record_id = rec.record_id' : ''}`;
  const byRun = db.prepare('SELECT record_id, run_id, record_json, jws, created_at FROM records WHERE run_id = ?');
  const byId = db.prepare('SELECT record_id, run_id, record_json, jws, created_at FROM records WHERE record_id = ?');
  const entry = db.prepare(`SELECT ${LOG_COLS} FROM runs r ${JOIN} WHERE r.run_id = ?`);
  const refusalEntry = db.prepare(`SELECT ${REFUSAL_COLS} FROM refusals f WHERE f.refusal_id = ?`);
  const perWo = db.prepare(
    'SELECT work_order, COUNT(*) AS n FROM records WHERE superseded_by IS NULL GROUP BY work_order',
  );
  const stmtCache = new Map<string, Database.Statement>();
  const prep = (sql: string): Database.Statement => {
    let s = stmtCache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      if (stmtCache.size > 200) stmtCache.clear();
      stmtCache.set(sql, s);
    }
    return s;
  };

  return {
    queryLog(filter, page) {
      let cursor: [string, string] | null = null;
      if (page.cursor) {
        cursor = decodeCursor(page.cursor);
        if (!cursor) return fail('INPUT_INVALID', 'cursor: not a cursor returned by queryLog', { path: 'cursor' });
      }
      const limit = Math.max(1, Math.min(500, Math.floor(page.limit)));
      // Runs and refusals in one keyset order (time, id): each arm filtered and cut to the page, then merged.
      const arms: string[] = [];
      const params: unknown[] = [];
      let total = 0;
      for (const source of ['runs', 'refusals'] as const) {
        const w = where(filter, source);
        if (!w) continue;
        const { a, time } = COL[source];
        const conds = w.sql ? [w.sql] : [];
        const armParams = [...w.params];
        total += (prep(`SELECT COUNT(*) AS n FROM ${source} ${a}${whereSql(conds)}`).get(...armParams) as { n: number })
          .n;
        const id = source === 'runs' ? 'r.run_id' : 'f.refusal_id';
        if (cursor) {
          conds.push(`(${time} < ? OR (${time} = ? AND ${id} < ?))`);
          armParams.push(cursor[0], cursor[0], cursor[1]);
        }
        const from =
          source === 'runs' ? `SELECT ${LOG_COLS} FROM runs r ${JOIN}` : `SELECT ${REFUSAL_COLS} FROM refusals f`;
        arms.push(`SELECT * FROM (${from}${whereSql(conds)} ORDER BY ${time} DESC, ${id} DESC LIMIT ?)`);
        params.push(...armParams, limit + 1);
      }
      const rows = arms.length
        ? (prep(`${arms.join(' UNION ALL ')} ORDER BY started_at DESC, run_id DESC LIMIT ?`).all(
            ...params,
            limit + 1,
          ) as LogDbRow[])
        : [];
      const more = rows.length > limit;
      const items = rows.slice(0, limit).map(toLogRow);
      const last = items[items.length - 1];
      return ok({ items, total, nextCursor: more && last ? encodeCursor(last.startedAt, last.runId) : null });
    },

    logEntry(runId) {
      const r = (entry.get(runId) ?? refusalEntry.get(runId)) as LogDbRow | undefined;
      return r ? toLogRow(r) : null;
    },

    recordByRun(runId) {
      return toRecordRow(byRun.get(runId) as RecordDbRow | undefined);
    },

    recordById(recordId) {
      return toRecordRow(byId.get(recordId) as RecordDbRow | undefined);
    },

    provisionedByWorkOrder() {
      const m = new Map<string, number>();
      for (const r of perWo.all() as { work_order: string; n: number }[]) m.set(r.work_order, r.n);
      return m;
    },

    yieldFigures(filter) {
      const w = where(filter, 'runs')!;
      const wf = where(filter, 'refusals')!;
      const and = w.sql ? ` AND ${w.sql}` : '';
      const fWhere = wf.sql ? ` WHERE ${wf.sql}` : '';
      // A board's first attempt in the range decides: its first initial run passed, or it was refused first.
      const first = prep(
        `SELECT COUNT(*) AS boards, COALESCE(SUM(state = 'done'), 0) AS passed FROM (
           SELECT chip_id, state, MIN(at) FROM (
             SELECT r.chip_id, r.state, r.started_at AS at FROM runs r WHERE r.kind = 'initial'${and}
             UNION ALL
             SELECT f.chip_id, 'refused' AS state, f.first_at AS at FROM refusals f${fWhere}
           ) GROUP BY chip_id
         ) WHERE state <> 'active'`,
      ).get(...w.params, ...wf.params) as { boards: number; passed: number };
      const refused = (prep(`SELECT COUNT(*) AS n FROM refusals f${fWhere}`).get(...wf.params) as { n: number }).n;
      const provisioned = (
        prep(`SELECT COUNT(*) AS n FROM runs r WHERE r.state = 'done'${and}`).get(...w.params) as { n: number }
      ).n;
      // Failed runs and refusals by their code (a refusal counts once, however many repeats it coalesced).
      const failures = prep(
        `SELECT code, COUNT(*) AS count FROM (
           SELECT COALESCE(json_extract(r.error_json, '$.code'), 'UNKNOWN') AS code FROM runs r
           WHERE r.state = 'failed'${and}
           UNION ALL
           SELECT f.code FROM refusals f${fWhere}
         ) GROUP BY code ORDER BY count DESC, code`,
      ).all(...w.params, ...wf.params) as { code: string; count: number }[];
      const cycle = (
        prep(
          `SELECT CAST(ROUND((julianday(r.updated_at) - julianday(r.started_at)) * 86400000.0) AS INTEGER) AS ms
           FROM runs r WHERE r.state = 'done'${and} ORDER BY ms`,
        ).all(...w.params) as { ms: number }[]
      ).map((x) => Math.max(0, x.ms));
      const perHour = prep(
        `SELECT substr(r.updated_at, 1, 13) || ':00:00Z' AS hour, COUNT(*) AS count
         FROM runs r WHERE r.state = 'done'${and} GROUP BY hour ORDER BY hour DESC LIMIT 168`,
      ).all(...w.params) as { hour: string; count: number }[];
      return {
        boards: first.boards,
        refused,
        passedFirstTime: first.passed,
        provisioned,
        failuresByCause: failures,
        cycleTimesMs: cycle,
        boardsPerHour: perHour.reverse(),
      };
    },

    workOrders(filter) {
      const w = where(filter, 'runs')!;
      const wf = where(filter, 'refusals')!;
      const rows = prep(
        `SELECT wo FROM (SELECT r.work_order AS wo FROM runs r${whereSql(w.sql ? [w.sql] : [])}
           UNION SELECT f.work_order FROM refusals f${whereSql(wf.sql ? [wf.sql] : [])}) ORDER BY wo LIMIT 1000`,
      ).all(...w.params, ...wf.params) as { wo: string }[];
      return rows.map((r) => r.wo);
    },
  };
}
