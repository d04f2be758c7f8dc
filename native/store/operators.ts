/**
 * Operators table (schema version 3, 5): who may sign in at the station, with salted scrypt PIN hashes, a keyed
 * (HMAC-SHA-256) badge code, a role and a revoked flag; and the sign-in attempt accounting (auth_attempts, version 5):
 * attempts are counted in one transaction before the credential is verified, so parallel guesses cannot outrun
 * the lock.
 *
 * This module only stores and reads rows: hashing, verification and the lockout policy live in
 * station/service/auth.ts. No plain PIN or badge code is ever stored. The one writer of `operators` (a signed
 * policy's revocations come through `revokeNamed`) and `auth_attempts`.
 *
 * May import: better-sqlite3 types, ./store-error.
 */
import type Database from 'better-sqlite3';
import { sqliteCode, sqliteRefusal } from './store-error.js';

export type OperatorRole = 'operator' | 'supervisor';

export interface OperatorRow {
  readonly operatorId: string;
  readonly name: string;
  readonly role: OperatorRole;
  /** `scrypt$N$r$p$salt$hash` (base64url parts). */
  readonly pinHash: string;
  /** `hmac-sha256$<hex>` of the badge code under the station's badge key, or null. */
  readonly badgeHash: string | null;
  readonly revoked: boolean;
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
  /**
   * Insert or replace an operator (keeps created_at; the attempt accounting is left as it is). Throws a StoreError
   * 'duplicate-badge' when the badge is enrolled for another operator.
   */
  upsert(op: NewOperator, now: string): OperatorRow;
  setRevoked(operatorId: string, revoked: boolean, now: string): boolean;
  /** Revoke every named operator not revoked yet (a signed policy's list); the number revoked now. */
  revokeNamed(operatorIds: readonly string[], now: string): number;
  list(): OperatorRow[];
}

/** The lockout rule the attempt store applies (station/service/auth.ts fills it from the configuration). */
export interface AttemptLimit {
  /** Attempts admitted per window; the one that reaches it sets the lock. */
  readonly maxAttempts: number;
  /** The first lock; each further consecutive lock doubles it. */
  readonly lockMs: number;
  /** Cap of a lock; a lock that ended longer than this ago starts the back-off again. */
  readonly maxLockMs: number;
}

/** One admitted attempt (what `settle` needs to undo or clear it). */
export interface Admission {
  readonly subject: string;
  /** The attempt's number in the window (1-based). */
  readonly attempt: number;
  /** The lock this admission set (its attempt reached the limit), or null. */
  readonly lockedUntilMs: number | null;
}

export type AdmitResult =
  { readonly ok: true; readonly admission: Admission } | { readonly ok: false; readonly lockedUntilMs: number };

export interface AttemptState {
  readonly subject: string;
  readonly attempts: number;
  readonly lockouts: number;
  readonly lockedUntilMs: number | null;
}

/** Sign-in attempt accounting (auth_attempts): one writer, each call one IMMEDIATE transaction. */
export interface AttemptStore {
  /**
   * Count an attempt before its credential is checked: refuses (nothing counted) while the subject is locked;
   * otherwise counts it and, when it reaches the limit, sets the next lock (lockMs x 2^(lockouts), capped).
   */
  admit(subject: string, nowMs: number, limit: AttemptLimit): AdmitResult;
  /** The credential was right: clear the window and the back-off (PIN sign-in: the holder proved the secret). */
  clear(subject: string, nowMs: number): void;
  /** The attempt found a valid credential: take it back out of the window (and the lock it set, if any). */
  undo(a: Admission, nowMs: number): void;
  get(subject: string): AttemptState | null;
}

function toRow(r: OperatorDbRow): OperatorRow {
  return {
    operatorId: r.operator_id,
    name: r.name,
    role: r.role === 'supervisor' ? 'supervisor' : 'operator',
    pinHash: r.pin_hash,
    badgeHash: r.badge_hash,
    revoked: r.revoked !== 0,
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
      `INSERT INTO operators (operator_id, name, role, pin_hash, badge_hash, revoked, created_at, updated_at)
       VALUES (@operatorId, @name, @role, @pinHash, @badgeHash, 0, @now, @now)
       ON CONFLICT (operator_id) DO UPDATE SET name = excluded.name, role = excluded.role, pin_hash = excluded.pin_hash,
         badge_hash = excluded.badge_hash, updated_at = excluded.updated_at`,
    ),
    revoke: db.prepare('UPDATE operators SET revoked = ?, updated_at = ? WHERE operator_id = ?'),
    revokeActive: db.prepare('UPDATE operators SET revoked = 1, updated_at = ? WHERE operator_id = ? AND revoked = 0'),
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
      try {
        q.upsert.run({ ...op, now });
      } catch (e) {
        // The primary key is an upsert: the one unique constraint this statement can break is badge_hash.
        if (sqliteCode(e) === 'SQLITE_CONSTRAINT_UNIQUE') throw sqliteRefusal('duplicate-badge', e, 'upsert operator');
        throw e;
      }
      const r = get(op.operatorId);
      if (!r) throw new Error(`operator ${op.operatorId} vanished after insert`);
      return r;
    },
    setRevoked(id, revoked, now) {
      return q.revoke.run(revoked ? 1 : 0, now, id).changes === 1;
    },
    revokeNamed(ids, now) {
      let n = 0;
      for (const id of ids) n += q.revokeActive.run(now, id).changes;
      return n;
    },
    list: () => (q.list.all() as OperatorDbRow[]).map(toRow),
  };
}

interface AttemptDbRow {
  subject: string;
  attempts: number;
  lockouts: number;
  locked_until_ms: number | null;
}

/** The auth_attempts table over an open connection (schema version 5 or later). */
export function createAttemptStore(db: Database.Database): AttemptStore {
  const q = {
    get: db.prepare('SELECT subject, attempts, lockouts, locked_until_ms FROM auth_attempts WHERE subject = ?'),
    put: db.prepare(
      `INSERT INTO auth_attempts (subject, attempts, lockouts, locked_until_ms, updated_at)
       VALUES (@subject, @attempts, @lockouts, @lockedUntilMs, @now)
       ON CONFLICT (subject) DO UPDATE SET attempts = excluded.attempts, lockouts = excluded.lockouts,
         locked_until_ms = excluded.locked_until_ms, updated_at = excluded.updated_at`,
    ),
  };
  const get = (subject: string): AttemptState | null => {
    const r = q.get.get(subject) as AttemptDbRow | undefined;
    return r ? { subject, attempts: r.attempts, lockouts: r.lockouts, lockedUntilMs: r.locked_until_ms } : null;
  };
  const put = (s: AttemptState, nowMs: number) => q.put.run({ ...s, now: new Date(nowMs).toISOString() });
  const admit = db.transaction((subject: string, nowMs: number, limit: AttemptLimit): AdmitResult => {
    const cur = get(subject) ?? { subject, attempts: 0, lockouts: 0, lockedUntilMs: null };
    if (cur.lockedUntilMs !== null && cur.lockedUntilMs > nowMs) return { ok: false, lockedUntilMs: cur.lockedUntilMs };
    let { attempts, lockouts } = cur;
    let lockedUntilMs = cur.lockedUntilMs;
    if (lockedUntilMs !== null && attempts >= limit.maxAttempts) {
      // The window ended with a lock that is over now: a new window; after a long quiet spell the back-off restarts.
      attempts = 0;
      if (nowMs - lockedUntilMs > limit.maxLockMs) lockouts = 0;
    }
    attempts++;
    const setsLock = attempts >= limit.maxAttempts;
    if (setsLock) {
      lockedUntilMs = nowMs + Math.min(limit.lockMs * 2 ** Math.min(lockouts, 30), limit.maxLockMs);
      lockouts++;
    }
    put({ subject, attempts, lockouts, lockedUntilMs }, nowMs);
    return { ok: true, admission: { subject, attempt: attempts, lockedUntilMs: setsLock ? lockedUntilMs : null } };
  });
  const undo = db.transaction((a: Admission, nowMs: number) => {
    const cur = get(a.subject);
    if (!cur) return;
    const ownLock = a.lockedUntilMs !== null && cur.lockedUntilMs === a.lockedUntilMs;
    put(
      {
        subject: a.subject,
        attempts: Math.max(0, cur.attempts - 1),
        lockouts: ownLock ? Math.max(0, cur.lockouts - 1) : cur.lockouts,
        lockedUntilMs: ownLock ? null : cur.lockedUntilMs,
      },
      nowMs,
    );
  });
  return {
    admit: (subject, nowMs, limit) => admit.immediate(subject, nowMs, limit),
    clear(subject, nowMs) {
      put({ subject, attempts: 0, lockouts: 0, lockedUntilMs: null }, nowMs);
    },
    undo: (a, nowMs) => undo.immediate(a, nowMs),
    get,
  };
}
