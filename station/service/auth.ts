/**
 * Operator sessions: PIN and badge sign-in against the operators table, attempt accounting with lockout and
 * exponential back-off, supervisor elevation, idle and absolute session timeouts.
 *
 * - PINs are hashed with salted scrypt and compared in constant time. Badge codes are stored as HMAC-SHA-256 under
 *   a per-station key (`secrets/badge.key`, 0600): sign-in looks the operator up by the keyed hash (an index
 *   lookup, where a salted hash would need one scrypt per enrolled operator per scan), and a copy of station.db
 *   alone does not allow guessing badge codes offline.
 * - Every attempt is counted in the database (auth_attempts, one IMMEDIATE transaction) before the credential is
 *   checked, and attempts on one subject are serialised in this process, so parallel guesses cannot outrun the
 *   lock; a lock survives restarts and a right PIN during a lock is refused unchecked. Subjects: `operator:<id>`
 *   (PIN sign-in and elevation) and `badge` (every badge scan at this station: the badge is the identifier).
 * - Neither a PIN nor a badge code is ever logged, stored plain, or kept in memory past the call.
 */
import { createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { SessionView } from '../../core/api.js';
import { fail, type StationError } from '../../core/errors.js';
import type { Clock, Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { readPrivateFile } from '../../native/data-dir.js';
import type {
  AttemptLimit,
  AttemptStore,
  OperatorRow,
  OperatorRole,
  OperatorStore,
} from '../../native/store/operators.js';
import { AuthConfigSchema, type StationConfig } from '../config.js';

export const ELEVATION_MS = 5 * 60_000;

/** The sign-in rules in force (config.json `auth`, defaults in station/config.ts AuthConfigSchema). */
export interface AuthPolicy {
  readonly pin: AttemptLimit;
  readonly badge: AttemptLimit;
  readonly supervisorPinMinLength: number;
  readonly sessionIdleMs: number;
  readonly sessionMaxMs: number;
}

/** The policy from a station configuration's `auth` section (all defaults when absent). */
export function authPolicy(auth?: StationConfig['auth']): AuthPolicy {
  const a = auth ?? AuthConfigSchema.parse({});
  const lock = { lockMs: a.lockSeconds * 1000, maxLockMs: Math.max(a.lockSeconds, a.maxLockSeconds) * 1000 };
  return {
    pin: { maxAttempts: a.maxPinAttempts, ...lock },
    badge: { maxAttempts: a.maxBadgeAttempts, ...lock },
    supervisorPinMinLength: a.supervisorPinMinLength,
    sessionIdleMs: a.sessionIdleMinutes * 60_000,
    sessionMaxMs: a.sessionMaxHours * 3_600_000,
  };
}

export const DEFAULT_AUTH_POLICY: AuthPolicy = authPolicy();

/** Whether `pin` is long enough for `role` (operators 4, supervisors the configured minimum). */
export function pinLengthError(role: OperatorRole, pin: string, policy: AuthPolicy): string | null {
  if (!/^[0-9]{4,12}$/.test(pin)) return 'the PIN must be 4 to 12 digits';
  if (role === 'supervisor' && pin.length < policy.supervisorPinMinLength)
    return `a supervisor PIN must have at least ${policy.supervisorPinMinLength} digits (config.json auth.supervisorPinMinLength)`;
  return null;
}

const SCRYPT = { N: 1 << 14, r: 8, p: 1, keyLen: 32 } as const;

function scrypt(pin: string, salt: Buffer, n: number, r: number, p: number, keyLen: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: n, r, p, maxmem: 64 * 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCb(pin, salt, keyLen, opts, (e, key) => (e ? reject(e) : resolve(key))),
  );
}

/** Hash a PIN: `scrypt$N$r$p$salt$hash` (base64url salt and hash). */
export async function hashPin(pin: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(pin, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLen);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** A well-formed hash that matches no PIN: verified against for unknown ids so timing does not tell. */
const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString('base64url')}$${Buffer.alloc(32).toString('base64url')}`;

/** Verify a PIN against a stored hash in constant time (false on a malformed hash). */
export async function verifyPin(pin: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const want = Buffer.from(parts[5]!, 'base64url');
  if (want.length < 16 || want.length > 64) return false;
  const got = await scrypt(pin, salt, n, r, p, want.length);
  return timingSafeEqual(got, want);
}

/** The station's badge key, relative to the data dir. */
export const BADGE_KEY_FILE = join('secrets', 'badge.key');

/**
 * The station's badge key (32 random bytes), created 0600 on first use (exclusive create: two processes starting
 * together agree on one key), read through one descriptor (readPrivateFile): CONFIG_INSECURE_PERMISSIONS when it is a
 * symbolic link, not a regular file, another user's or readable by group or others; CONFIG_INVALID when malformed.
 */
export function loadBadgeKey(dataDir: string): Result<Buffer> {
  const file = join(dataDir, BADGE_KEY_FILE);
  mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(32).toString('base64url') + '\n');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const text = readPrivateFile(file, 'CONFIG_INVALID');
  if (!text.ok) return text;
  const key = Buffer.from(text.value.trim(), 'base64url');
  if (key.length !== 32) return fail('CONFIG_INVALID', `${file}: not a badge key (32 bytes, base64url)`);
  return ok(key);
}

/** The stored form of a badge code: `hmac-sha256$<hex>` under the station's badge key. */
export function hashBadge(key: Uint8Array, badge: string): string {
  return `hmac-sha256$${createHmac('sha256', key).update(`line-station-badge:${badge}`, 'utf8').digest('hex')}`;
}

/**
 * Whether an operator has been revoked since signing in: by the registry policy in force (`checkOperator`) or at this
 * station (`station operator revoke`, read from the database, so a revocation by another process counts at once).
 * The one rule for ending UI sessions (`endRevoked`) and for `station watch` before each new board.
 */
export function operatorRevoked(
  lifecycle: { checkOperator(operatorId: string): Result<void> },
  operators: OperatorStore | null,
  operatorId: string,
): boolean {
  return !lifecycle.checkOperator(operatorId).ok || operators?.get(operatorId)?.revoked === true;
}

/** Why a session ended on its own. */
export type SessionEnd = 'idle' | 'absolute';

interface Session {
  readonly operatorId: string;
  readonly name: string;
  readonly role: 'operator' | 'supervisor';
  readonly signedInAt: string;
  readonly startedMs: number;
  lastActiveMs: number;
  elevation: { operatorId: string; name: string; until: number } | null;
}

export interface Sessions {
  signIn(clientId: string, args: { operatorId: string; pin: string } | { badge: string }): Promise<Result<SessionView>>;
  signOut(clientId: string): boolean;
  elevate(clientId: string, args: { operatorId: string; pin: string }): Promise<Result<SessionView>>;
  view(clientId: string): SessionView | null;
  /** A request of this client's session: resets its idle timer. */
  touch(clientId: string): void;
  /** Why this client's last session ended on its own (until it signs in or out again), or null. */
  ended(clientId: string): SessionEnd | null;
  /** Whether this client may act as a supervisor now (supervisor session or unexpired elevation). */
  isSupervisor(clientId: string): boolean;
  /** Who approves as supervisor for this client (the elevating supervisor, or the signed-in supervisor). */
  supervisorOf(clientId: string): { operatorId: string; name: string } | null;
  operatorOf(clientId: string): string | null;
  /** The most recently signed-in session's operator (who the line's automatic provisioning is attributed to). */
  currentOperator(): string | null;
  /** End idle and too-old sessions and drop expired elevations; returns the client ids whose view changed. */
  expire(): string[];
  /**
   * End the sessions of operators revoked since they signed in and withdraw elevations granted by supervisors
   * revoked since; returns what changed: the client, the revoked operator, and whether the session ended (else the
   * elevation was withdrawn).
   */
  endRevoked(
    isRevoked: (operatorId: string) => boolean,
  ): { clientId: string; operatorId: string; sessionEnded: boolean }[];
}

export interface SessionsDeps {
  readonly operators: OperatorStore;
  readonly attempts: AttemptStore;
  /** The station's badge key (loadBadgeKey). */
  readonly badgeKey: Uint8Array;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly policy?: AuthPolicy;
}

const MAX_ENDED = 1000;

export function createSessions(deps: SessionsDeps): Sessions {
  const { operators, attempts, clock, badgeKey } = deps;
  const policy = deps.policy ?? DEFAULT_AUTH_POLICY;
  const log = deps.logger;
  const sessions = new Map<string, Session>();
  const endedBy = new Map<string, SessionEnd>();
  const order: string[] = [];
  const queues = new Map<string, Promise<unknown>>();
  const nowMs = () => clock.now().getTime();

  /** Run attempts on one subject one after another (the database count is the cross-process guard). */
  function serial<T>(subject: string, fn: () => Promise<T>): Promise<T> {
    const prev = queues.get(subject) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    queues.set(subject, tail);
    void tail.then(() => {
      if (queues.get(subject) === tail) queues.delete(subject);
    });
    return run;
  }

  const view = (s: Session): SessionView => ({
    operatorId: s.operatorId,
    name: s.name,
    role: s.role,
    signedInAt: s.signedInAt,
    supervisor:
      s.elevation && s.elevation.until > nowMs()
        ? {
            operatorId: s.elevation.operatorId,
            name: s.elevation.name,
            until: new Date(s.elevation.until).toISOString(),
          }
        : null,
  });

  const lockedError = (subject: string, untilMs: number): StationError => {
    const lockedUntil = new Date(untilMs).toISOString();
    return subject === 'badge'
      ? fail('AUTH_LOCKED', `badge sign-in at this station is locked until ${lockedUntil}; use operator id and PIN`, {
          lockedUntil,
        }).error
      : fail('AUTH_LOCKED', `operator ${subject.slice('operator:'.length)} is locked until ${lockedUntil}`, {
          operatorId: subject.slice('operator:'.length),
          lockedUntil,
        }).error;
  };

  /** Count, then check id + PIN; the shared path of signIn and elevate. */
  function checkPin(operatorId: string, pin: string, purpose: string): Promise<Result<OperatorRow>> {
    const subject = `operator:${operatorId}`;
    return serial(subject, async (): Promise<Result<OperatorRow>> => {
      const op = operators.get(operatorId);
      if (!op) {
        // Unknown ids are not counted (no row for every guessed id), but cost the same scrypt.
        await verifyPin(pin, DUMMY_HASH);
        log.log('warn', `${purpose} failed: unknown id or wrong PIN`, { operatorId });
        return fail('AUTH_INVALID_CREDENTIALS', 'operator id or PIN not recognised');
      }
      const adm = attempts.admit(subject, nowMs(), policy.pin);
      if (!adm.ok) {
        log.log('warn', `${purpose} refused: operator locked (PIN not checked)`, { operatorId });
        return { ok: false, error: lockedError(subject, adm.lockedUntilMs) };
      }
      const good = await verifyPin(pin, op.pinHash);
      if (!good) {
        if (adm.admission.lockedUntilMs !== null) {
          log.log('warn', `${purpose} failed: operator locked after ${adm.admission.attempt} attempts`, {
            operatorId,
            lockedUntil: new Date(adm.admission.lockedUntilMs).toISOString(),
          });
          return { ok: false, error: lockedError(subject, adm.admission.lockedUntilMs) };
        }
        log.log('warn', `${purpose} failed: unknown id or wrong PIN`, { operatorId });
        return fail('AUTH_INVALID_CREDENTIALS', 'operator id or PIN not recognised');
      }
      if (op.revoked) {
        log.log('warn', `${purpose} refused: operator revoked`, { operatorId });
        return fail('AUTH_REVOKED', `operator ${operatorId} has been revoked`, { operatorId });
      }
      attempts.clear(subject, nowMs());
      if (op.role === 'supervisor' && pin.length < policy.supervisorPinMinLength) {
        log.log('warn', `${purpose} refused: supervisor PIN shorter than the station requires`, { operatorId });
        return fail(
          'AUTH_PIN_POLICY',
          `supervisor ${operatorId}: the PIN is shorter than ${policy.supervisorPinMinLength} digits`,
          { operatorId, minLength: policy.supervisorPinMinLength },
        );
      }
      return ok(op);
    });
  }

  /** Count, then look the badge up (station-wide: a badge guess names no operator). */
  function checkBadge(badge: string): Promise<Result<OperatorRow>> {
    return serial('badge', async (): Promise<Result<OperatorRow>> => {
      const adm = attempts.admit('badge', nowMs(), policy.badge);
      if (!adm.ok) {
        log.log('warn', 'badge sign-in refused: badge sign-in locked (badge not checked)');
        return { ok: false, error: lockedError('badge', adm.lockedUntilMs) };
      }
      const op = operators.findByBadge(hashBadge(badgeKey, badge));
      if (!op) {
        if (adm.admission.lockedUntilMs !== null) {
          log.log('warn', `badge sign-in failed: locked after ${adm.admission.attempt} unknown badges`, {
            lockedUntil: new Date(adm.admission.lockedUntilMs).toISOString(),
          });
          return { ok: false, error: lockedError('badge', adm.admission.lockedUntilMs) };
        }
        log.log('warn', 'badge sign-in failed: unknown badge');
        return fail('AUTH_INVALID_CREDENTIALS', 'badge not recognised');
      }
      // A known badge takes its attempt back: only unknown badges fill the station's window.
      attempts.undo(adm.admission, nowMs());
      const pinLock = attempts.get(`operator:${op.operatorId}`);
      if (pinLock?.lockedUntilMs != null && pinLock.lockedUntilMs > nowMs())
        return { ok: false, error: lockedError(`operator:${op.operatorId}`, pinLock.lockedUntilMs) };
      if (op.revoked) return fail('AUTH_REVOKED', `operator ${op.operatorId} has been revoked`);
      return ok(op);
    });
  }

  const start = (clientId: string, op: OperatorRow): SessionView => {
    const t = nowMs();
    const s: Session = {
      operatorId: op.operatorId,
      name: op.name,
      role: op.role,
      signedInAt: new Date(t).toISOString(),
      startedMs: t,
      lastActiveMs: t,
      elevation: null,
    };
    sessions.set(clientId, s);
    endedBy.delete(clientId);
    const i = order.indexOf(clientId);
    if (i >= 0) order.splice(i, 1);
    order.push(clientId);
    log.log('info', 'signed in', { operatorId: op.operatorId, role: op.role });
    return view(s);
  };

  const drop = (clientId: string): Session | undefined => {
    const s = sessions.get(clientId);
    sessions.delete(clientId);
    const i = order.indexOf(clientId);
    if (i >= 0) order.splice(i, 1);
    return s;
  };

  const liveElevation = (s: Session) => s.elevation !== null && s.elevation.until > nowMs();

  return {
    async signIn(clientId, args) {
      const r = 'badge' in args ? await checkBadge(args.badge) : await checkPin(args.operatorId, args.pin, 'sign-in');
      if (!r.ok) return r;
      return ok(start(clientId, r.value));
    },
    signOut(clientId) {
      endedBy.delete(clientId);
      const s = drop(clientId);
      if (s) log.log('info', 'signed out', { operatorId: s.operatorId });
      return s !== undefined;
    },
    async elevate(clientId, args) {
      if (!sessions.get(clientId)) return fail('AUTH_REQUIRED', 'sign in first');
      const op = await checkPin(args.operatorId, args.pin, 'supervisor confirmation');
      if (!op.ok) return op;
      if (op.value.role !== 'supervisor')
        return fail('AUTH_FORBIDDEN', `${args.operatorId} is not a supervisor`, { operatorId: args.operatorId });
      // The session may have ended while the PIN was checked.
      const s = sessions.get(clientId);
      if (!s) return fail('AUTH_REQUIRED', 'sign in first');
      s.elevation = { operatorId: op.value.operatorId, name: op.value.name, until: nowMs() + ELEVATION_MS };
      log.log('info', 'supervisor elevation granted', {
        operatorId: s.operatorId,
        supervisor: op.value.operatorId,
        minutes: ELEVATION_MS / 60_000,
      });
      return ok(view(s));
    },
    view(clientId) {
      const s = sessions.get(clientId);
      return s ? view(s) : null;
    },
    touch(clientId) {
      const s = sessions.get(clientId);
      if (s) s.lastActiveMs = nowMs();
    },
    ended: (clientId) => endedBy.get(clientId) ?? null,
    isSupervisor(clientId) {
      const s = sessions.get(clientId);
      return s !== undefined && (s.role === 'supervisor' || liveElevation(s));
    },
    supervisorOf(clientId) {
      const s = sessions.get(clientId);
      if (!s) return null;
      if (s.elevation && liveElevation(s)) return { operatorId: s.elevation.operatorId, name: s.elevation.name };
      return s.role === 'supervisor' ? { operatorId: s.operatorId, name: s.name } : null;
    },
    operatorOf: (clientId) => sessions.get(clientId)?.operatorId ?? null,
    currentOperator() {
      const id = order[order.length - 1];
      return id !== undefined ? (sessions.get(id)?.operatorId ?? null) : null;
    },
    expire() {
      const changed: string[] = [];
      const t = nowMs();
      for (const [id, s] of [...sessions]) {
        const why: SessionEnd | null =
          t - s.startedMs >= policy.sessionMaxMs
            ? 'absolute'
            : t - s.lastActiveMs >= policy.sessionIdleMs
              ? 'idle'
              : null;
        if (why) {
          drop(id);
          if (endedBy.size >= MAX_ENDED) endedBy.delete(endedBy.keys().next().value!);
          endedBy.set(id, why);
          log.log('info', `session ended: ${why === 'idle' ? 'idle timeout' : 'longest session time reached'}`, {
            operatorId: s.operatorId,
          });
          changed.push(id);
        } else if (s.elevation && s.elevation.until <= t) {
          s.elevation = null;
          changed.push(id);
        }
      }
      return changed;
    },
    endRevoked(isRevoked) {
      const changed: { clientId: string; operatorId: string; sessionEnded: boolean }[] = [];
      for (const [id, s] of [...sessions]) {
        if (isRevoked(s.operatorId)) {
          drop(id);
          endedBy.delete(id);
          log.log('warn', 'session ended: operator revoked', { operatorId: s.operatorId });
          changed.push({ clientId: id, operatorId: s.operatorId, sessionEnded: true });
        } else if (s.elevation && isRevoked(s.elevation.operatorId)) {
          log.log('warn', 'supervisor elevation withdrawn: supervisor revoked', {
            operatorId: s.operatorId,
            supervisor: s.elevation.operatorId,
          });
          changed.push({ clientId: id, operatorId: s.elevation.operatorId, sessionEnded: false });
          s.elevation = null;
        }
      }
      return changed;
    },
  };
}
