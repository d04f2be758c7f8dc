/**
 * Attacks on sign-in over the real HTTP bridge (station/bridge/bridge.ts) with the real service, SQLite and SoftHSM2:
 *
 * - 500 parallel supervisor-PIN guesses (`elevate`) from an operator session: at most the configured number of
 *   attempts is verified, none succeeds, the right PIN sent in the burst and after it is refused unchecked;
 * - the lock survives a restart of the service and engine; the next lock is twice as long (back-off);
 * - 500 parallel badge guesses: badge sign-in locks station-wide after its limit, the enrolled badge then too;
 *   the database holds keyed badge hashes only;
 * - idle and absolute session timeouts answer AUTH_SESSION_EXPIRED and push a `session` event saying why.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResult, StationEvent } from '../core/api.js';
import type { Clock } from '../core/ports.js';
import { must } from '../testkit/pki/test-util.js';
import { openStationDb } from '../native/store/index.js';
import { createWorld, type World } from '../test/harness.js';
import { addOperators } from '../test/operators-fixture.js';
import { startBridge, type Bridge } from './bridge/bridge.js';
import { createLogger, type LogLine } from '../native/logger.js';
import { authPolicy, BADGE_KEY_FILE } from './service/auth.js';
import { createLogTap, createStationService, type StationService } from './service/index.js';

const SUP_PIN = '583920';
const OP_PIN = '4711';
const BADGE = 'BADGE-7Q2X-0042';
const POLICY = authPolicy();
const BURST = 500;

let w: World;
let svc: StationService;
let bridge: Bridge;
const lines: LogLine[] = [];
const events: StationEvent[] = [];
let offsetMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + offsetMs), monotonicMs: () => performance.now() };

async function startService(): Promise<void> {
  const hub = createLogTap();
  hub.subscribe((l) => lines.push(l));
  const logger = createLogger({ tap: hub.tap, level: 'debug', file: join(w.dir, 'auth.log') });
  svc = createStationService({ engine: w.engine, logger, logTap: hub, clock });
  svc.subscribe((e) => events.push(e));
  await svc.start();
  bridge = await startBridge({ service: svc, logger });
}
async function stopService(): Promise<void> {
  await bridge.close();
  await svc.stop();
}

async function api(op: string, args: unknown, tab: string): Promise<ApiResult<Record<string, unknown>>> {
  const r = await fetch(`http://127.0.0.1:${bridge.port}/api/${op}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${bridge.token}`, 'Content-Type': 'application/json', 'X-Client-Id': tab },
    body: JSON.stringify(args),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as ApiResult<Record<string, unknown>>;
}
const codeOf = (r: ApiResult<unknown>) => (r.ok ? 'ok' : r.error.code);
const tally = (codes: string[]) =>
  Object.fromEntries([...new Set(codes)].map((c) => [c, codes.filter((x) => x === c).length]));
const count = (re: RegExp) => lines.filter((l) => re.test(l.msg)).length;
const attemptsRow = (subject: string) => {
  const db = must(openStationDb(join(w.dataDir, 'station.db')));
  try {
    return db.attempts.get(subject);
  } finally {
    db.close();
  }
};

beforeAll(async () => {
  w = await createWorld({ boards: [] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: OP_PIN },
    { id: 'sup-1', role: 'supervisor', pin: SUP_PIN, badge: BADGE },
  ]);
  await startService();
}, 120_000);

afterAll(async () => {
  await stopService().catch(() => undefined);
  await w?.teardown();
});

describe('PIN lockout race', () => {
  it(`${BURST} parallel elevate guesses: at most ${POLICY.pin.maxAttempts} verified, none succeeds, the lock holds`, async () => {
    expect(codeOf(await api('signIn', { operatorId: 'op-1', pin: OP_PIN }, 'attacker'))).toBe('ok');
    // Every 6-digit guess but the right one, and the right PIN as the last request of the burst.
    const guesses = Array.from({ length: BURST - 1 }, (_, i) => String(100000 + i));
    guesses.push(SUP_PIN);
    const t0 = performance.now();
    const results = await Promise.all(guesses.map((pin) => api('elevate', { operatorId: 'sup-1', pin }, 'attacker')));
    const ms = performance.now() - t0;
    const codes = results.map(codeOf);
    const verified = count(/^supervisor confirmation failed/);
    const unchecked = count(/^supervisor confirmation refused: operator locked \(PIN not checked\)/);
    console.log(
      `[figures] ${BURST} parallel elevate guesses in ${Math.round(ms)} ms: verified ${verified}, refused unchecked ${unchecked}, answers ${JSON.stringify(tally(codes))}`,
    );
    expect(codes).not.toContain('ok');
    expect(verified).toBe(POLICY.pin.maxAttempts);
    expect(unchecked).toBe(BURST - POLICY.pin.maxAttempts);
    expect(codes.filter((c) => c === 'AUTH_INVALID_CREDENTIALS')).toHaveLength(POLICY.pin.maxAttempts - 1);
    expect(codes.filter((c) => c === 'AUTH_LOCKED')).toHaveLength(BURST - POLICY.pin.maxAttempts + 1);
    // The right PIN during the lock is refused unchecked and does not unlock; the session gained nothing.
    expect(codeOf(await api('elevate', { operatorId: 'sup-1', pin: SUP_PIN }, 'attacker'))).toBe('AUTH_LOCKED');
    expect(codeOf(await api('signIn', { operatorId: 'sup-1', pin: SUP_PIN }, 'other-tab'))).toBe('AUTH_LOCKED');
    expect(codeOf(await api('queryLog', {}, 'attacker'))).toBe('AUTH_FORBIDDEN');
    const row = attemptsRow('operator:sup-1')!;
    expect(row).toMatchObject({ attempts: POLICY.pin.maxAttempts, lockouts: 1 });
    expect(row.lockedUntilMs! - Date.now()).toBeGreaterThan(POLICY.pin.lockMs - 60_000);
    // No PIN in the log.
    for (const l of lines) expect(JSON.stringify(l)).not.toContain(SUP_PIN);
  }, 120_000);

  it('the lock survives a restart of the service and the engine; the next lock is twice as long', async () => {
    await stopService();
    await w.reopen();
    await startService();
    expect(codeOf(await api('signIn', { operatorId: 'sup-1', pin: SUP_PIN }, 'after-restart'))).toBe('AUTH_LOCKED');
    // After the first lock: a new window of attempts; when it fills, the lock doubles.
    offsetMs = POLICY.pin.lockMs + 1000;
    try {
      const codes: string[] = [];
      for (let i = 0; i < POLICY.pin.maxAttempts; i++)
        codes.push(codeOf(await api('signIn', { operatorId: 'sup-1', pin: String(200000 + i) }, 'after-restart')));
      expect(codes.at(-1)).toBe('AUTH_LOCKED');
      const row = attemptsRow('operator:sup-1')!;
      expect(row.lockouts).toBe(2);
      const lockMs = row.lockedUntilMs! - clock.now().getTime();
      expect(lockMs).toBeGreaterThan(2 * POLICY.pin.lockMs - 10_000);
      expect(lockMs).toBeLessThanOrEqual(2 * POLICY.pin.lockMs);
      // Once that lock is over the right PIN signs in and clears the back-off.
      offsetMs += 2 * POLICY.pin.lockMs + 1000;
      expect(codeOf(await api('signIn', { operatorId: 'sup-1', pin: SUP_PIN }, 'after-restart'))).toBe('ok');
      expect(attemptsRow('operator:sup-1')).toMatchObject({ attempts: 0, lockouts: 0, lockedUntilMs: null });
    } finally {
      offsetMs = 0;
    }
  }, 120_000);
});

describe('badges', () => {
  it(`${BURST} parallel badge guesses lock badge sign-in at the station; only keyed hashes are stored`, async () => {
    const before = count(/^badge sign-in failed/);
    const guesses = Array.from({ length: BURST - 1 }, (_, i) => `BADGE-${String(i).padStart(4, '0')}-0042`);
    guesses.push(BADGE);
    const results = await Promise.all(guesses.map((badge) => api('signIn', { badge }, 'badge-attacker')));
    const codes = results.map(codeOf);
    const looked = count(/^badge sign-in failed/) - before;
    console.log(
      `[figures] ${BURST} parallel badge guesses: looked up ${looked}, answers ${JSON.stringify(tally(codes))}`,
    );
    expect(codes).not.toContain('ok');
    expect(looked).toBe(POLICY.badge.maxAttempts);
    expect(codes.filter((c) => c === 'AUTH_LOCKED')).toHaveLength(BURST - POLICY.badge.maxAttempts + 1);
    expect(codeOf(await api('signIn', { badge: BADGE }, 'badge-attacker'))).toBe('AUTH_LOCKED');
    expect(codeOf(await api('getSlots', {}, 'badge-attacker'))).toBe('AUTH_REQUIRED');
    expect(attemptsRow('badge')).toMatchObject({ attempts: POLICY.badge.maxAttempts, lockouts: 1 });

    // Stored: an HMAC under the station key (0600), never the code or its plain SHA-256.
    const db = must(openStationDb(join(w.dataDir, 'station.db')));
    try {
      expect(db.operators.get('sup-1')?.badgeHash).toMatch(/^hmac-sha256\$[0-9a-f]{64}$/);
    } finally {
      db.close();
    }
    expect(statSync(join(w.dataDir, BADGE_KEY_FILE)).mode & 0o777).toBe(0o600);
    for (const f of ['station.db', 'station.db-wal'])
      expect(readFileSync(join(w.dataDir, f)).toString('latin1')).not.toContain(BADGE);

    // The lock ends; the enrolled badge signs in and takes its own attempt back.
    offsetMs = POLICY.badge.lockMs + 1000;
    try {
      expect(must(await api('signIn', { badge: BADGE }, 'badge-user'))).toMatchObject({ operatorId: 'sup-1' });
      expect(attemptsRow('badge')).toMatchObject({ attempts: 0 });
    } finally {
      offsetMs = 0;
      await api('signOut', {}, 'badge-user');
    }
  }, 120_000);
});

describe('session timeouts', () => {
  it('an idle session and a session past its longest time answer AUTH_SESSION_EXPIRED, with a session event', async () => {
    try {
      expect(codeOf(await api('signIn', { operatorId: 'op-1', pin: OP_PIN }, 'idle-tab'))).toBe('ok');
      offsetMs = POLICY.sessionIdleMs - 60_000;
      // Operator activity resets the idle timer (selectWorkOrder counts; the UI's own reads do not).
      expect(codeOf(await api('selectWorkOrder', { id: 'WO-DEMO-1' }, 'idle-tab'))).toBe('ok');
      offsetMs += POLICY.sessionIdleMs - 60_000;
      expect(codeOf(await api('selectWorkOrder', { id: 'WO-DEMO-1' }, 'idle-tab'))).toBe('ok');
      offsetMs += POLICY.sessionIdleMs + 1000;
      const r = await api('getSlots', {}, 'idle-tab');
      expect(r).toMatchObject({ ok: false, error: { code: 'AUTH_SESSION_EXPIRED', details: { ended: 'idle' } } });
      expect(events).toContainEqual({ type: 'session', session: null, ended: 'idle' });
      expect(must(await api('getStatus', {}, 'idle-tab'))['session']).toBeNull();

      offsetMs = 0;
      expect(codeOf(await api('signIn', { operatorId: 'op-1', pin: OP_PIN }, 'long-tab'))).toBe('ok');
      // Active every few minutes, for longer than the longest session time.
      const step = POLICY.sessionIdleMs / 2;
      let last: ApiResult<unknown> | null = null;
      for (let t = step; t <= POLICY.sessionMaxMs + step; t += step) {
        offsetMs = t;
        last = await api('selectWorkOrder', { id: 'WO-DEMO-1' }, 'long-tab');
        if (!last.ok) break;
      }
      expect(last).toMatchObject({
        ok: false,
        error: { code: 'AUTH_SESSION_EXPIRED', details: { ended: 'absolute' } },
      });
      expect(offsetMs).toBeGreaterThanOrEqual(POLICY.sessionMaxMs);
      // Signing in again works and clears the reason.
      expect(codeOf(await api('signIn', { operatorId: 'op-1', pin: OP_PIN }, 'long-tab'))).toBe('ok');
      expect(codeOf(await api('getSlots', {}, 'long-tab'))).toBe('ok');
    } finally {
      offsetMs = 0;
    }
  }, 60_000);
});
