/**
 * Operator sessions: PIN and badge sign-in against the operators table, lockout after repeated failures,
 * supervisor elevation. PINs are hashed with salted scrypt and compared in constant time; badge codes are
 * stored as SHA-256. Neither a PIN nor a badge code is ever logged, stored plain, or kept in memory past
 * the call.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { SessionView } from '../../core/api.js';
import { fail, type StationError } from '../../core/errors.js';
import type { Clock, Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import type { OperatorRow, OperatorStore } from '../../native/store/operators.js';

export const MAX_FAILURES = 5;
export const LOCK_MS = 5 * 60_000;
export const ELEVATION_MS = 5 * 60_000;

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

/** SHA-256 (hex) of a badge code: the badge is a bearer credential, so only its hash is stored. */
export function hashBadge(badge: string): string {
  return createHash('sha256').update(`line-station-badge:${badge}`, 'utf8').digest('hex');
}

interface Session {
  readonly operatorId: string;
  readonly name: string;
  readonly role: 'operator' | 'supervisor';
  readonly signedInAt: string;
  elevation: { operatorId: string; name: string; until: number } | null;
}

export interface Sessions {
  signIn(clientId: string, args: { operatorId: string; pin: string } | { badge: string }): Promise<Result<SessionView>>;
  signOut(clientId: string): boolean;
  elevate(clientId: string, args: { operatorId: string; pin: string }): Promise<Result<SessionView>>;
  view(clientId: string): SessionView | null;
  /** Whether this client may act as a supervisor now (supervisor session or unexpired elevation). */
  isSupervisor(clientId: string): boolean;
  /** Who approves as supervisor for this client (the elevating supervisor, or the signed-in supervisor). */
  supervisorOf(clientId: string): { operatorId: string; name: string } | null;
  operatorOf(clientId: string): string | null;
  /** The most recently signed-in session's operator (who the line's automatic provisioning is attributed to). */
  currentOperator(): string | null;
  /** Drop expired elevations; returns the client ids whose view changed. */
  expire(): string[];
}

export function createSessions(deps: { operators: OperatorStore; clock: Clock; logger: Logger }): Sessions {
  const { operators, clock } = deps;
  const log = deps.logger;
  const sessions = new Map<string, Session>();
  const order: string[] = [];
  const now = () => clock.now();

  const view = (s: Session): SessionView => ({
    operatorId: s.operatorId,
    name: s.name,
    role: s.role,
    signedInAt: s.signedInAt,
    supervisor:
      s.elevation && s.elevation.until > now().getTime()
        ? {
            operatorId: s.elevation.operatorId,
            name: s.elevation.name,
            until: new Date(s.elevation.until).toISOString(),
          }
        : null,
  });

  const lockedError = (op: OperatorRow): StationError =>
    fail('AUTH_LOCKED', `operator ${op.operatorId} is locked until ${op.lockedUntil}`, {
      operatorId: op.operatorId,
      lockedUntil: op.lockedUntil,
    }).error;

  const isLocked = (op: OperatorRow): boolean =>
    op.lockedUntil !== null && Date.parse(op.lockedUntil) > now().getTime();

  /** Check id + PIN with lockout; the shared path of signIn and elevate. */
  async function checkPin(operatorId: string, pin: string, purpose: string): Promise<Result<OperatorRow>> {
    const op = operators.get(operatorId);
    if (op && isLocked(op)) {
      log.log('warn', `${purpose} refused: operator locked`, { operatorId });
      return { ok: false, error: lockedError(op) };
    }
    const good = await verifyPin(pin, op?.pinHash ?? DUMMY_HASH);
    const t = now();
    if (!op || !good) {
      if (op) {
        const after = operators.recordFailure(
          op.operatorId,
          MAX_FAILURES,
          new Date(t.getTime() + LOCK_MS).toISOString(),
          t.toISOString(),
        );
        if (after && isLocked(after)) {
          log.log('warn', `${purpose} failed: operator locked after ${MAX_FAILURES} failures`, { operatorId });
          return { ok: false, error: lockedError(after) };
        }
      }
      log.log('warn', `${purpose} failed: unknown id or wrong PIN`, { operatorId });
      return fail('AUTH_INVALID_CREDENTIALS', 'operator id or PIN not recognised');
    }
    if (op.revoked) {
      log.log('warn', `${purpose} refused: operator revoked`, { operatorId });
      return fail('AUTH_REVOKED', `operator ${operatorId} has been revoked`, { operatorId });
    }
    operators.recordSuccess(op.operatorId, t.toISOString());
    return ok(op);
  }

  const start = (clientId: string, op: OperatorRow): SessionView => {
    const s: Session = {
      operatorId: op.operatorId,
      name: op.name,
      role: op.role,
      signedInAt: now().toISOString(),
      elevation: null,
    };
    sessions.set(clientId, s);
    const i = order.indexOf(clientId);
    if (i >= 0) order.splice(i, 1);
    order.push(clientId);
    log.log('info', 'signed in', { operatorId: op.operatorId, role: op.role });
    return view(s);
  };

  const liveElevation = (s: Session) => s.elevation !== null && s.elevation.until > now().getTime();

  return {
    async signIn(clientId, args) {
      if ('badge' in args) {
        const op = operators.findByBadge(hashBadge(args.badge));
        if (!op) {
          log.log('warn', 'badge sign-in failed: unknown badge');
          return fail('AUTH_INVALID_CREDENTIALS', 'badge not recognised');
        }
        if (isLocked(op)) return { ok: false, error: lockedError(op) };
        if (op.revoked) return fail('AUTH_REVOKED', `operator ${op.operatorId} has been revoked`);
        operators.recordSuccess(op.operatorId, now().toISOString());
        return ok(start(clientId, op));
      }
      const op = await checkPin(args.operatorId, args.pin, 'sign-in');
      if (!op.ok) return op;
      return ok(start(clientId, op.value));
    },
    signOut(clientId) {
      const s = sessions.get(clientId);
      sessions.delete(clientId);
      const i = order.indexOf(clientId);
      if (i >= 0) order.splice(i, 1);
      if (s) log.log('info', 'signed out', { operatorId: s.operatorId });
      return s !== undefined;
    },
    async elevate(clientId, args) {
      const s = sessions.get(clientId);
      if (!s) return fail('AUTH_REQUIRED', 'sign in first');
      const op = await checkPin(args.operatorId, args.pin, 'supervisor confirmation');
      if (!op.ok) return op;
      if (op.value.role !== 'supervisor')
        return fail('AUTH_FORBIDDEN', `${args.operatorId} is not a supervisor`, { operatorId: args.operatorId });
      s.elevation = { operatorId: op.value.operatorId, name: op.value.name, until: now().getTime() + ELEVATION_MS };
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
      const t = now().getTime();
      for (const [id, s] of sessions)
        if (s.elevation && s.elevation.until <= t) {
          s.elevation = null;
          changed.push(id);
        }
      return changed;
    },
  };
}
