/**
 * Station side of the identity lifecycle (schema version 4, docs/lifecycle.md "Station side"): the registry's
 * signed policy and quotas as last verified, the quota-unit ledger, the revocation request queue (written through
 * revocations.ts) and this station's own revocation. A port of the station database (station-db.ts).
 *
 * The unit ledger itself is kept by triggers on `runs` (reserve in the createRun transaction, commit with the
 * record, release on failure, refuse past the quota); this module reads it, replaces the quotas and marks scraps.
 * Operators a policy names as revoked are revoked through the operators port (operators.ts writes that table).
 *
 * May import: core/, better-sqlite3 types, the sibling modules of native/store.
 */
import type Database from 'better-sqlite3';
import type { StepName } from '../../core/model.js';
import type { OperatorStore } from './operators.js';
import type {
  NewRevocation,
  RevocationKind,
  RevocationQueue,
  RevocationRequest,
  RevocationState,
} from './revocations.js';

/** The revocation queue's types (revocations.ts), for callers that import them from here. */
export type { RevocationKind, RevocationRequest, RevocationState } from './revocations.js';

/** The registry's signed documents the station keeps. */
export type LifecycleDocumentKind = 'policy' | 'quotas';

/** A signed document as last verified and stored. */
export interface LifecycleDocument {
  readonly kind: LifecycleDocumentKind;
  readonly version: number;
  readonly jws: string;
  readonly payloadJson: string;
  readonly issuedAt: string;
  readonly fetchedAt: string;
}

/** Units of a work order's quota: reserved, committed, released, scrapped, remaining. */
export interface QuotaUsage {
  readonly workOrder: string;
  /** null: no quota from the registry for this work order. */
  readonly quantity: number | null;
  readonly reserved: number;
  readonly committed: number;
  readonly released: number;
  /** Committed units whose board was scrapped afterwards (they stay used). */
  readonly scrapped: number;
  /** quantity - reserved - committed (null without a quota). */
  readonly remaining: number | null;
}

/** A station revocation kept at the station (schema version 8): the registry's signed station-status answer. */
export interface StationRevocationRow {
  readonly stationId: string;
  readonly revokedAt: string;
  /** The signed answer (core/hq/protocol.ts StationStatusPayloadSchema), verified before it was stored. */
  readonly jws: string;
  readonly recordedAt: string;
}

/** Outcome of storing a verified document: newer stored, same version (refreshed), or older (ignored). */
export type StoreDocumentOutcome = 'stored' | 'same' | 'older';

/** The lifecycle port of the station database. */
export interface LifecycleDb {
  document(kind: LifecycleDocumentKind): LifecycleDocument | null;
  /**
   * Store a verified policy (never an older version) and apply it in the same transaction: the operators it
   * names as revoked are revoked in the station's operators table.
   */
  storePolicy(
    doc: Omit<LifecycleDocument, 'kind' | 'fetchedAt'>,
    revokedOperators: readonly string[],
  ): StoreDocumentOutcome;
  /** Store verified quotas (never an older version) and replace the quota table with them. */
  storeQuotas(
    doc: Omit<LifecycleDocument, 'kind' | 'fetchedAt'>,
    quotas: readonly { workOrder: string; quantity: number }[],
  ): StoreDocumentOutcome;
  usage(workOrder: string): QuotaUsage;
  listUsage(): QuotaUsage[];
  /** A scrapped board: its committed unit stays used and is marked scrapped; returns the units marked. */
  markScrapped(chipId: string): number;
  queueRevocation(r: NewRevocation): RevocationRequest;
  /**
   * Add the station key's signature to a failed-issuance event queued by failRun (its payload is fixed; a trigger
   * refuses to replace a signature). Returns false when it was signed already.
   */
  setRevocationJws(requestId: string, jws: string): boolean;
  revocations(filter?: { state?: RevocationState; kind?: RevocationKind }): RevocationRequest[];
  /**
   * Active runs holding a certificate that no record names, issued at or before `issuedBefore` (ISO time), oldest
   * first: the runs past the active-run lifetime (station/lifecycle `expireActiveRuns`).
   */
  expiredActiveRuns(issuedBefore: string): ExpiredActiveRun[];
  setRevocationState(requestId: string, state: RevocationState, detail: string | null): void;
  /** This station's revocation as headquarters signed it (terminal), or null. */
  stationRevocation(stationId: string): StationRevocationRow | null;
  /** Keep a verified revocation (the first one stays: a revocation is terminal); answers the one in force. */
  storeStationRevocation(r: Omit<StationRevocationRow, 'recordedAt'>): StationRevocationRow;
}

/** An active run past its lifetime (`LifecycleDb.expiredActiveRuns`). */
export interface ExpiredActiveRun {
  readonly runId: string;
  readonly chipId: string;
  readonly step: StepName;
  /** Issuance time of its oldest unrecorded certificate. */
  readonly issuedAt: string;
  readonly certificateSerial: string;
}

/** The lifecycle port over an open, migrated connection (schema version 8 or later). */
export function createLifecycleDb(
  db: Database.Database,
  o: { readonly now: () => string; readonly revocations: RevocationQueue; readonly operators: OperatorStore },
): LifecycleDb {
  const { now, revocations, operators } = o;
  const getDoc = db.prepare('SELECT * FROM lifecycle_documents WHERE kind = ?');
  const putDoc = db.prepare(
    `INSERT INTO lifecycle_documents (kind, version, jws, payload_json, issued_at, fetched_at)
     VALUES (@kind, @version, @jws, @payloadJson, @issuedAt, @fetchedAt)
     ON CONFLICT (kind) DO UPDATE SET version = excluded.version, jws = excluded.jws,
       payload_json = excluded.payload_json, issued_at = excluded.issued_at, fetched_at = excluded.fetched_at`,
  );
  const usageRow = db.prepare(
    `SELECT
       (SELECT quantity FROM quotas WHERE work_order = @wo) AS quantity,
       COALESCE(SUM(state = 'reserved'), 0) AS reserved,
       COALESCE(SUM(state = 'committed'), 0) AS committed,
       COALESCE(SUM(state = 'released'), 0) AS released,
       COALESCE(SUM(state = 'committed' AND scrapped_at IS NOT NULL), 0) AS scrapped
     FROM quota_units WHERE work_order = @wo`,
  );

  const getRevocation = db.prepare('SELECT * FROM station_revocation WHERE station_id = ?');
  const toStationRevocation = (row: unknown): StationRevocationRow | null => {
    const r = row as Record<string, string> | undefined;
    return r
      ? { stationId: r['station_id']!, revokedAt: r['revoked_at']!, jws: r['jws']!, recordedAt: r['recorded_at']! }
      : null;
  };
  const toDoc = (r: Record<string, unknown> | undefined): LifecycleDocument | null =>
    r
      ? {
          kind: r['kind'] as LifecycleDocumentKind,
          version: Number(r['version']),
          jws: String(r['jws']),
          payloadJson: String(r['payload_json']),
          issuedAt: String(r['issued_at']),
          fetchedAt: String(r['fetched_at']),
        }
      : null;

  /** Compare with the stored version; store when newer (or the same version: refreshed fetch time). */
  const put = (kind: LifecycleDocumentKind, doc: Omit<LifecycleDocument, 'kind' | 'fetchedAt'>) => {
    const cur = toDoc(getDoc.get(kind) as Record<string, unknown> | undefined);
    if (cur && doc.version < cur.version) return 'older' as const;
    putDoc.run({ kind, ...doc, fetchedAt: now() });
    return cur && cur.version === doc.version ? ('same' as const) : ('stored' as const);
  };

  const usage = (workOrder: string): QuotaUsage => {
    const r = usageRow.get({ wo: workOrder }) as {
      quantity: number | null;
      reserved: number;
      committed: number;
      released: number;
      scrapped: number;
    };
    return {
      workOrder,
      quantity: r.quantity,
      reserved: r.reserved,
      committed: r.committed,
      released: r.released,
      scrapped: r.scrapped,
      remaining: r.quantity === null ? null : Math.max(0, r.quantity - r.reserved - r.committed),
    };
  };

  return {
    document: (kind) => toDoc(getDoc.get(kind) as Record<string, unknown> | undefined),
    stationRevocation: (stationId) => toStationRevocation(getRevocation.get(stationId)),
    storeStationRevocation: (r) => {
      db.prepare(
        'INSERT INTO station_revocation (station_id, revoked_at, jws, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ).run(r.stationId, r.revokedAt, r.jws, now());
      return toStationRevocation(getRevocation.get(r.stationId))!;
    },
    storePolicy: (doc, revokedOperators) =>
      db
        .transaction(() => {
          const out = put('policy', doc);
          if (out === 'older') return out;
          operators.revokeNamed(revokedOperators, now());
          return out;
        })
        .immediate(),
    storeQuotas: (doc, quotas) =>
      db
        .transaction(() => {
          const out = put('quotas', doc);
          if (out === 'older') return out;
          db.prepare('DELETE FROM quotas').run();
          const ins = db.prepare('INSERT INTO quotas (work_order, quantity, version, updated_at) VALUES (?, ?, ?, ?)');
          for (const q of quotas) ins.run(q.workOrder, q.quantity, doc.version, now());
          return out;
        })
        .immediate(),
    usage,
    listUsage: () => {
      const wos = db
        .prepare('SELECT work_order FROM quotas UNION SELECT DISTINCT work_order FROM quota_units ORDER BY 1')
        .all() as { work_order: string }[];
      return wos.map((w) => usage(w.work_order));
    },
    markScrapped: (chipId) =>
      db
        .prepare(
          `UPDATE quota_units SET scrapped_at = ?, updated_at = ?
           WHERE chip_id = ? AND state = 'committed' AND scrapped_at IS NULL`,
        )
        .run(now(), now(), chipId).changes,
    queueRevocation: (r) => revocations.queue(r, now()),
    expiredActiveRuns: (issuedBefore) =>
      (
        db
          .prepare(
            `SELECT r.run_id, r.chip_id, r.step, MIN(c.issued_at) AS issued_at, MIN(c.serial) AS serial
               FROM runs r JOIN issued_certificates c ON c.run_id = r.run_id
              WHERE r.state = 'active'
                AND NOT EXISTS (SELECT 1 FROM records x WHERE x.certificate_serial = c.serial)
              GROUP BY r.run_id
             HAVING MIN(c.issued_at) <= ?
              ORDER BY issued_at, r.run_id`,
          )
          .all(issuedBefore) as { run_id: string; chip_id: string; step: string; issued_at: string; serial: string }[]
      ).map((r) => ({
        runId: r.run_id,
        chipId: r.chip_id,
        step: r.step as StepName,
        issuedAt: r.issued_at,
        certificateSerial: r.serial,
      })),
    revocations: (f = {}) => revocations.list(f),
    setRevocationJws: (requestId, jws) => revocations.setJws(requestId, jws, now()),
    setRevocationState: (requestId, state, detail) => revocations.setState(requestId, state, detail, now()),
  };
}
