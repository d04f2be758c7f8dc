/**
 * Operators table (schema version 3): who may sign in at the station, with salted scrypt PIN hashes,
 * a hashed badge code, a role, a revoked flag, and the sign-in lockout counters.
 *
 * This module only stores and reads rows: hashing and verification live in station/service/auth.ts.
 * No plain PIN or badge code is ever stored.
 */
import type Database from 'better-sqlite3';

export type OperatorRole = 'operator' | 'supervisor';

export interface OperatorRow {
  readonly operatorId: string;
  readonly name: string;
  readonly role: OperatorRole;
  /** `scrypt$N$r$p$salt$hash` (base64url parts). */
  readonly pinHash: string;
  /** SHA-256 (hex) of the badge code, or null. */
  readonly badgeHash: string | null;
  readonly revoked: boolean;
  readonly failedAttempts: number;
  readonly lockedUntil: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

interface OperatorDbRow {
  operator_id: string;
  name: string;
  role: string;
  pin_hash: string;
  badge_hash: string | null;
  revoked: number;
  failed_attempts: number;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface NewOperator {
  readonly operatorId: string;
  readonly name: string;
  readonly role: OperatorRole;
  readonly pinHash: string;
  readonly badgeHash: string | null;
}

export interface OperatorStore {
  get(operatorId: string): OperatorRow | null;
  findByBadge(badgeHash: string): OperatorRow | null;
  /** Insert or replace an operator (keeps created_at; clears the lockout). */
  upsert(op: NewOperator, now: string): OperatorRow;
  setRevoked(operatorId: string, revoked: boolean, now: string): boolean;
  /** Record a failed sign-in; locks (until `lockUntil`) when the count reaches `maxFailures`. Returns the new row. */
  recordFailure(operatorId: string, maxFailures: number, lockUntil: string, now: string): OperatorRow | null;
  /** Clear the failure counter and lock after a successful sign-in. */
  recordSuccess(operatorId: string, now: string): void;
  list(): OperatorRow[];
}

function toRow(r: OperatorDbRow): OperatorRow {
  return {
    operatorId: r.operator_id,
    name: r.name,
    role: r.role === 'supervisor' ? 'supervisor' : 'operator',
    pinHash: r.pin_hash,
    badgeHash: r.badge_hash,
    revoked: r.revoked !== 0,
    failedAttempts: r.failed_attempts,
    lockedUntil: r.locked_until,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The operators table over an open connection (the schema must be at version 3 or later). */
export function createOperatorStore(db: Database.Database): OperatorStore {
  const q = {
    get: db.prepare('SELECT * FROM operators WHERE operator_id = ?'),
    byBadge: db.prepare('SELECT * FROM operators WHERE badge_hash = ?'),
    upsert: db.prepare(
      `INSERT INTO operators (operator_id, name, role, pin_hash, badge_hash, revoked, failed_attempts, locked_until, created_at, updated_at)
       VALUES (@operatorId, @name, @role, @pinHash, @badgeHash, 0, 0, NULL, @now, @now)
       ON CONFLICT (operator_id) DO UPDATE SET name = excluded.name, role = excluded.role, pin_hash = excluded.pin_hash,
         badge_hash = excluded.badge_hash, failed_attempts = 0, locked_until = NULL, updated_at = excluded.updated_at`,
    ),
    revoke: db.prepare('UPDATE operators SET revoked = ?, updated_at = ? WHERE operator_id = ?'),
    fail: db.prepare(
      `UPDATE operators SET failed_attempts = failed_attempts + 1,
         locked_until = CASE WHEN failed_attempts + 1 >= @max THEN @lockUntil ELSE locked_until END,
         updated_at = @now WHERE operator_id = @id`,
    ),
    resetAfterLock: db.prepare(
      'UPDATE operators SET failed_attempts = 0, locked_until = NULL WHERE operator_id = ? AND locked_until IS NOT NULL AND locked_until <= ?',
    ),
    success: db.prepare(
      'UPDATE operators SET failed_attempts = 0, locked_until = NULL, updated_at = ? WHERE operator_id = ?',
    ),
    list: db.prepare('SELECT * FROM operators ORDER BY operator_id'),
  };
  const get = (id: string): OperatorRow | null => {
    const r = q.get.get(id) as OperatorDbRow | undefined;
    return r ? toRow(r) : null;
  };
  return {
    get,
    findByBadge(badgeHash) {
      const r = q.byBadge.get(badgeHash) as OperatorDbRow | undefined;
      return r ? toRow(r) : null;
    },
    upsert(op, now) {
      q.upsert.run({ ...op, now });
      const r = get(op.operatorId);
      if (!r) throw new Error(`operator ${op.operatorId} vanished after insert`);
      return r;
    },
    setRevoked(id, revoked, now) {
      return q.revoke.run(revoked ? 1 : 0, now, id).changes === 1;
    },
    recordFailure(id, maxFailures, lockUntil, now) {
      return db.transaction(() => {
        // An expired lock starts a fresh count.
        q.resetAfterLock.run(id, now);
        q.fail.run({ id, max: maxFailures, lockUntil, now });
        return get(id);
      })();
    },
    recordSuccess(id, now) {
      q.success.run(now, id);
    },
    list: () => (q.list.all() as OperatorDbRow[]).map(toRow),
  };
}
