/**
 * One open token: the main R/W session and its login, transparent recovery after session loss, the pool of signing
 * sessions, and close. The operations (objects.ts, keys.ts, signing.ts, injection.ts, mechanisms.ts) run on it.
 *
 * - The main session serves object management and key injection; pkcs11js calls are synchronous, so each sequence
 *   under `run()` is atomic with respect to other JS code.
 * - Session loss (CKR_SESSION_HANDLE_INVALID / _CLOSED / USER_NOT_LOGGED_IN): re-open and re-login once.
 * - The PIN is kept in memory only for that re-login and dropped on close(); it is never logged.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../core/ports.js';
import { fail, stationError } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { HANDLE_STALE_CKR, SESSION_LOST_CKR, ckrOf, mapPkcs11Error } from './errors.js';
import { pinDigest, releaseModule, type LoadedModule } from './module-registry.js';
import { P, StationErrorBox, ulong, type Handle, type PKCS11 } from './pkcs11.js';

/** A checked-out signing session and the recovery generation it belongs to. */
export interface SignSession {
  readonly handle: Handle;
  readonly generation: number;
}

export class TokenSession {
  private pin: string | null;
  private session: Handle | null = null;
  /** Incremented on every recovery: sessions and handles of an older generation are stale. */
  generation = 0;
  closed = false;
  /** Private key handles by label (dropped on recovery and on stale-handle errors). */
  readonly keyHandles = new Map<string, Handle>();
  /** Idle signing sessions (of the current generation). */
  private idle: SignSession[] = [];
  private openSignSessions = 0;
  private readonly waiters: (() => void)[] = [];
  /** Signing sessions currently checked out (a worker thread may be inside C_Sign on them). */
  private busy = 0;
  private readonly idleWaiters: (() => void)[] = [];
  readonly lib: PKCS11;
  /** Decimal slot id (as softhsm2-util prints it). */
  readonly slotKey: string;

  constructor(
    readonly mod: LoadedModule,
    readonly slot: Handle,
    pin: string,
    readonly log: Logger | undefined,
    private readonly maxSignSessions: number,
  ) {
    this.lib = mod.lib;
    this.pin = pin;
    this.slotKey = String(ulong(slot));
  }

  /** Open the main session and log in. Used on open and on recovery. */
  openMain(): Result<void> {
    let s: Handle;
    try {
      s = this.lib.C_OpenSession(this.slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
    } catch (e) {
      return err(mapPkcs11Error(e, 'C_OpenSession'));
    }
    const login = this.login(s);
    if (!login.ok) {
      try {
        this.lib.C_CloseSession(s);
      } catch {
        /* ignore */
      }
      return login;
    }
    this.session = s;
    return ok(undefined);
  }

  private login(s: Handle): Result<void> {
    if (this.pin === null) return fail('HSM_SESSION_LOST', 'HSM adapter is closed');
    const digest = pinDigest(this.pin);
    const reg = this.mod.logins.get(this.slotKey);
    try {
      this.lib.C_Login(s, P.CKU_USER, this.pin);
    } catch (e) {
      if (ckrOf(e) !== 'CKR_USER_ALREADY_LOGGED_IN') return err(mapPkcs11Error(e, 'C_Login'));
      // Someone in this process is logged in already: we cannot re-check the PIN with the token without
      // logging them out, so check it against the PIN of the adapter that logged in.
      if (reg && reg.count > 0 && !timingSafeEqual(reg.pinDigest, digest)) {
        return fail('HSM_PIN_INCORRECT', 'C_Login: the HSM rejected the user PIN (differs from the active login)', {
          op: 'C_Login',
        });
      }
    }
    return ok(undefined);
  }

  /** Count this adapter in the slot's login (after a successful openMain). */
  registerLogin(): void {
    const reg = this.mod.logins.get(this.slotKey);
    if (reg) reg.count++;
    else if (this.pin !== null) this.mod.logins.set(this.slotKey, { count: 1, pinDigest: pinDigest(this.pin) });
  }

  /** Re-open after session loss, unless another caller already did (generation changed). */
  recover(seenGeneration: number, op: string): Result<void> {
    if (this.closed) return fail('HSM_SESSION_LOST', 'HSM adapter is closed');
    if (this.generation !== seenGeneration) return ok(undefined);
    this.log?.log('warn', 'HSM session lost; re-opening and logging in again', { op, slot: this.slotKey });
    this.generation++;
    this.keyHandles.clear();
    for (const h of [this.session, ...this.idle.map((i) => i.handle)]) {
      if (!h) continue;
      try {
        this.lib.C_CloseSession(h);
      } catch {
        /* already gone */
      }
    }
    // Sessions still checked out belong to the old generation: they are closed on release and not counted.
    this.openSignSessions = 0;
    this.idle = [];
    this.session = null;
    const r = this.openMain();
    if (!r.ok) {
      this.log?.log('error', 'HSM session recovery failed', { op, code: r.error.code });
      return err({ ...r.error, details: { ...r.error.details, recoveryOf: op } });
    }
    return r;
  }

  /**
   * Run a synchronous Cryptoki sequence on the main session, with one transparent recovery
   * (session lost -> re-open + re-login; stale object handle -> drop the handle cache).
   */
  run<T>(op: string, fn: (s: Handle) => T): Result<T> {
    if (this.closed) return fail('HSM_SESSION_LOST', 'HSM adapter is closed', { op });
    for (let attempt = 0; ; attempt++) {
      const gen = this.generation;
      if (!this.session) {
        const r = this.recover(gen, op);
        if (!r.ok) return r;
      }
      try {
        return ok(fn(this.session!));
      } catch (e) {
        if (e instanceof StationErrorBox) return err(e.error);
        const ckr = ckrOf(e);
        if (attempt === 0 && ckr && SESSION_LOST_CKR.has(ckr)) {
          const r = this.recover(gen, op);
          if (!r.ok) return r;
          continue;
        }
        if (attempt === 0 && ckr && HANDLE_STALE_CKR.has(ckr)) {
          this.keyHandles.clear();
          continue;
        }
        return err(mapPkcs11Error(e, op));
      }
    }
  }

  /** Check out a signing session (opens one up to the pool size, else waits for one). */
  async acquireSignSession(): Promise<SignSession> {
    for (;;) {
      if (this.closed) throw new StationErrorBox(stationError('HSM_SESSION_LOST', 'HSM adapter is closed'));
      const idle = this.idle.pop();
      if (idle) {
        this.busy++;
        return idle;
      }
      if (this.openSignSessions < this.maxSignSessions) {
        this.openSignSessions++;
        try {
          // Sessions of one application share the login state: no C_Login needed here.
          const handle = this.lib.C_OpenSession(this.slot, P.CKF_SERIAL_SESSION);
          this.busy++;
          return { handle, generation: this.generation };
        } catch (e) {
          this.openSignSessions--;
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Return a signing session to the pool (closed instead when broken, stale or the adapter is closed). */
  releaseSignSession(s: SignSession, broken: boolean): void {
    this.busy--;
    if (broken || s.generation !== this.generation || this.closed) {
      try {
        this.lib.C_CloseSession(s.handle);
      } catch {
        /* ignore */
      }
      if (s.generation === this.generation) this.openSignSessions--;
    } else {
      this.idle.push(s);
    }
    this.waiters.shift()?.();
    if (this.busy === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Log out (if last user of the login), close sessions, finalize the module if last user. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    // Never close sessions or finalize while a worker thread is inside C_Sign.
    while (this.busy > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const reg = this.mod.logins.get(this.slotKey);
    if (reg) reg.count--;
    const last = !reg || reg.count <= 0;
    if (last) this.mod.logins.delete(this.slotKey);
    if (this.session && last) {
      try {
        this.lib.C_Logout(this.session);
      } catch {
        /* not logged in any more */
      }
    }
    for (const h of [this.session, ...this.idle.map((i) => i.handle)]) {
      if (!h) continue;
      try {
        this.lib.C_CloseSession(h);
      } catch {
        /* ignore */
      }
    }
    this.idle = [];
    this.session = null;
    this.keyHandles.clear();
    this.pin = null;
    releaseModule(this.mod);
    this.log?.log('info', 'HSM closed', { slot: this.slotKey });
  }
}
