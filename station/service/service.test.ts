/**
 * StationService with real parts: simulated boards on socat ptys, SoftHSM2, SQLite (createWorld).
 * Sessions (PIN, badge, lockout, revocation, elevation, roles), automatic provisioning in slots (pass,
 * policy failure, detach mid-run and resume), supervisor overrides in the audit log, and the supervisor
 * queries on the data those runs produced (certificate fields checked against `openssl x509 -text`).
 */
import { must as unwrap } from '../../testkit/pki/test-util.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResult, SlotView, StationEvent } from '../../core/api.js';
import type { Clock } from '../../core/ports.js';
import { openStationDb } from '../../native/store/index.js';
import { createWorld, type World } from '../../test/harness.js';
import { createLogger } from '../../native/logger.js';
import {
  call,
  createLogTap,
  createStationService,
  hashBadge,
  hashPin,
  loadBadgeKey,
  type StationService,
} from './index.js';
import { authPolicy } from './auth.js';
import { main as station } from '../cli/program.js';

const OP_PIN = '918273';
const SUP_PIN = '564738';
let w: World;
let svc: StationService;
const events: StationEvent[] = [];
let offsetMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + offsetMs), monotonicMs: () => performance.now() };

function must<T>(r: ApiResult<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText().slice(-4000)}`);
  return r.value;
}
function code(r: ApiResult<unknown>): string | null {
  return r.ok ? null : r.error.code;
}

async function waitSlot(port: string, pred: (s: SlotView) => boolean, ms = 30_000): Promise<SlotView> {
  const t0 = Date.now();
  for (;;) {
    const s = [...events]
      .reverse()
      .find((e): e is Extract<StationEvent, { type: 'slot' }> => e.type === 'slot' && e.slot.port === port);
    if (s && pred(s.slot)) return s.slot;
    if (Date.now() - t0 > ms)
      throw new Error(
        `timeout waiting for slot ${port}; last: ${JSON.stringify(s?.slot)}\n${w.logText().slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-BASIC', latency: { flash: 700, keygen: 700 } },
      { model: 'LS-SIM-SE', faults: { badFirmware: true } },
    ],
  });
  const db = openStationDb(join(w.dataDir, 'station.db'));
  if (!db.ok) throw new Error(db.error.message);
  const now = new Date().toISOString();
  const ops = db.value.operators;
  ops.upsert(
    {
      operatorId: 'op-1',
      name: 'Olga',
      role: 'operator',
      pinHash: await hashPin(OP_PIN),
      badgeHash: hashBadge(unwrap(loadBadgeKey(w.dataDir)), 'BADGE-0001'),
    },
    now,
  );
  ops.upsert(
    { operatorId: 'sup-1', name: 'Sam', role: 'supervisor', pinHash: await hashPin(SUP_PIN), badgeHash: null },
    now,
  );
  ops.upsert(
    { operatorId: 'lock-1', name: 'Lee', role: 'operator', pinHash: await hashPin('1111'), badgeHash: null },
    now,
  );
  ops.upsert(
    { operatorId: 'rev-1', name: 'Rex', role: 'operator', pinHash: await hashPin('2222'), badgeHash: null },
    now,
  );
  ops.setRevoked('rev-1', true, now);
  db.value.close();

  const hub = createLogTap();
  const logger = createLogger({ tap: hub.tap, level: 'debug', file: join(w.dir, 'service.log') });
  svc = createStationService({ engine: w.engine, logger, logTap: hub, clock, extraPorts: w.sim.ports });
  svc.subscribe((e) => events.push(e));
  await svc.start();
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await w?.teardown();
});

describe('sessions', () => {
  it('requires a session, checks PINs, locks after 5 failures for 5 minutes, refuses revoked operators', async () => {
    expect(code(await svc.invoke('c1', 'getSlots', {}))).toBe('AUTH_REQUIRED');
    expect(must(await call(svc, 'c1', 'getStatus', {})).session).toBeNull();
    expect(code(await svc.invoke('c1', 'signIn', { operatorId: 'op-1', pin: '000000' }))).toBe(
      'AUTH_INVALID_CREDENTIALS',
    );
    expect(code(await svc.invoke('c1', 'signIn', { operatorId: 'nobody', pin: '000000' }))).toBe(
      'AUTH_INVALID_CREDENTIALS',
    );

    const codes: (string | null)[] = [];
    for (let i = 0; i < 5; i++)
      codes.push(code(await svc.invoke('c9', 'signIn', { operatorId: 'lock-1', pin: '9999' })));
    expect(codes).toEqual([...Array(4).fill('AUTH_INVALID_CREDENTIALS'), 'AUTH_LOCKED']);
    expect(code(await svc.invoke('c9', 'signIn', { operatorId: 'lock-1', pin: '1111' }))).toBe('AUTH_LOCKED');
    offsetMs = 5 * 60_000 + 1000;
    try {
      expect(must(await call(svc, 'c9', 'signIn', { operatorId: 'lock-1', pin: '1111' })).operatorId).toBe('lock-1');
    } finally {
      offsetMs = 0;
    }
    must(await call(svc, 'c9', 'signOut', {}));

    expect(code(await svc.invoke('c9', 'signIn', { operatorId: 'rev-1', pin: '2222' }))).toBe('AUTH_REVOKED');
    expect(code(await svc.invoke('c9', 'signIn', { badge: 'BADGE-9999' }))).toBe('AUTH_INVALID_CREDENTIALS');
    const byBadge = must(await call(svc, 'c9', 'signIn', { badge: 'BADGE-0001' }));
    expect(byBadge).toMatchObject({ operatorId: 'op-1', role: 'operator', supervisor: null });
    must(await call(svc, 'c9', 'signOut', {}));
  });

  it('validates arguments with the field path', async () => {
    const r = await svc.invoke('c1', 'signIn', { operatorId: 'op-1', pin: '12ab' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('INPUT_INVALID');
      expect(r.error.details?.['path']).toBe('pin');
    }
    expect(code(await svc.invoke('c1', 'nope' as never, {}))).toBe('INPUT_INVALID');
    // Text that is not Unicode never reaches a handler (it could not be put into canonical JSON, RFC 8785).
    const lone = await svc.invoke('c1', 'signIn', { badge: 'BADGE-\ud800-1' });
    expect(code(lone)).toBe('INPUT_INVALID');
    expect(!lone.ok && lone.error.message).toMatch(/lone surrogate/);
  });

  it('operators need a supervisor elevation for supervisor operations; it expires after 5 minutes', async () => {
    const s = must(await call(svc, 'c1', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    expect(s.role).toBe('operator');
    expect(events.some((e) => e.type === 'session' && e.session?.operatorId === 'op-1')).toBe(true);
    expect(code(await svc.invoke('c1', 'queryLog', {}))).toBe('AUTH_FORBIDDEN');
    expect(code(await svc.invoke('c1', 'elevate', { operatorId: 'op-1', pin: OP_PIN }))).toBe('AUTH_FORBIDDEN');
    const el = must(await call(svc, 'c1', 'elevate', { operatorId: 'sup-1', pin: SUP_PIN }));
    expect(el.supervisor?.operatorId).toBe('sup-1');
    must(await call(svc, 'c1', 'queryLog', {}));
    offsetMs = 5 * 60_000 + 1000;
    try {
      expect(code(await svc.invoke('c1', 'queryLog', {}))).toBe('AUTH_FORBIDDEN');
    } finally {
      offsetMs = 0;
    }
    // a supervisor signed in directly has the rights without elevation
    must(await call(svc, 'c2', 'signIn', { operatorId: 'sup-1', pin: SUP_PIN }));
    must(await call(svc, 'c2', 'queryLog', {}));
  });
});

describe('slots', () => {
  it('provisions attached boards automatically once a work order is selected: pass, policy failure, detach + resume', async () => {
    // c1 (op-1) is signed in; selecting the work order starts every attached board.
    expect(must(await call(svc, 'c1', 'getSlots', {})).map((s) => s.state)).toEqual([
      'connected',
      'connected',
      'connected',
    ]);
    must(await call(svc, 'c1', 'selectWorkOrder', { id: 'WO-DEMO-1' }));
    const [p0, p1, p2] = w.sim.ports as [string, string, string];

    // detach board 1 in the middle of its run, then plug it back in: it resumes
    await waitSlot(p1, (s) => s.state === 'running' && (s.currentStep === 'key' || s.currentStep === 'certify'));
    await w.sim.unplug(1);
    const disc = await waitSlot(p1, (s) => s.state === 'disconnected');
    expect(disc.error?.code).toBe('LINK_DISCONNECTED');

    const s0 = await waitSlot(p0, (s) => s.state === 'pass');
    expect(s0.recordId).not.toBeNull();
    expect(s0.steps.every((x) => x.status === 'done')).toBe(true);
    expect(s0.serialNumber).toBe(w.sim.boards[0]!.serialNumber);

    const s2 = await waitSlot(p2, (s) => s.state === 'fail');
    expect(s2.error).toMatchObject({ code: 'POLICY_VIOLATION', action: 'set-aside' });
    expect(s2.canRetry).toBe(false);

    await w.sim.plug(1);
    const s1 = await waitSlot(p1, (s) => s.state === 'pass', 60_000);
    expect(s1.chipId).toBe(w.sim.boards[1]!.chipId);
    // resumed: one run only for that board
    const runs = must(await call(svc, 'c2', 'queryLog', { text: w.sim.boards[1]!.serialNumber }));
    expect(runs.total).toBe(1);
    expect(runs.items[0]!.outcome).toBe('provisioned');
  }, 120_000);

  it('supervisor overrides: re-provision and scrap, both in the audit log', async () => {
    const [p0, , p2] = w.sim.ports as [string, string, string];
    expect(code(await svc.invoke('c1', 'approveOverride', { kind: 'reprovision', port: p0, reason: 'rework' }))).toBe(
      'AUTH_FORBIDDEN',
    );
    const started = must(
      await call(svc, 'c2', 'approveOverride', { kind: 'reprovision', port: p0, reason: 'label reprinted' }),
    );
    expect(started.state).toBe('running');
    const again = await waitSlot(p0, (s) => s.state === 'pass' || s.state === 'fail');
    expect(again.state).toBe('pass');

    const scrapped = must(
      await call(svc, 'c2', 'approveOverride', { kind: 'scrap', port: p2, reason: 'bad firmware' }),
    );
    expect(scrapped.state).toBe('fail');
    expect(scrapped.error?.action).toBe('set-aside');
    expect(w.sim.state(2).hasKey).toBe(false);
    expect(w.sim.state(2).certSha256).toBeNull();

    const audit = w.engine.store.listAudit(1, 10_000);
    const re = audit.find((a) => a.type === 'override.reprovision');
    const sc = audit.find((a) => a.type === 'override.scrap');
    expect(re?.payload).toMatchObject({
      supervisor: 'sup-1',
      operator: 'sup-1',
      reason: 'label reprinted',
      chipId: w.sim.boards[0]!.chipId,
    });
    expect(sc?.payload).toMatchObject({ supervisor: 'sup-1', reason: 'bad firmware', chipId: w.sim.boards[2]!.chipId });
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  }, 120_000);
});

describe('supervisor queries on real data', () => {
  it('queryLog filters and pages; getYield counts first-pass yield and failures', async () => {
    const all = must(await call(svc, 'c2', 'queryLog', { limit: 2 }));
    expect(all.total).toBe(4); // board 0 (initial + rotation), board 1, board 2 (failed)
    expect(all.items).toHaveLength(2);
    const rest = must(await call(svc, 'c2', 'queryLog', { limit: 2, cursor: all.nextCursor! }));
    expect(new Set([...all.items, ...rest.items].map((x) => x.runId)).size).toBe(4);
    const failed = must(await call(svc, 'c2', 'queryLog', { outcome: 'failed' }));
    expect(failed.items.map((x) => x.errorCode)).toEqual(['POLICY_VIOLATION']);
    const y = must(await call(svc, 'c2', 'getYield', { workOrder: 'WO-DEMO-1' }));
    expect(y).toMatchObject({ boards: 3, passedFirstTime: 2, provisioned: 3 });
    expect(y.firstPassYield).toBeCloseTo(2 / 3);
    expect(y.failuresByCause).toEqual([{ code: 'POLICY_VIOLATION', count: 1 }]);
    expect(y.cycleTime.p50).toBeGreaterThan(0);
    expect(y.cycleTime.histogram.reduce((a, b) => a + b.count, 0)).toBe(3);
    const wos = must(await call(svc, 'c1', 'listWorkOrders', {}));
    expect(wos.find((x) => x.id === 'WO-DEMO-1')?.provisioned).toBe(2);
  });

  it('exportReport (supervisor) and `station report log|yield` give the same CSV of the log and the yield', async () => {
    // An operator may not export; the role rule is the Log view's.
    expect(code(await svc.invoke('c1', 'exportReport', { report: 'log' }))).toBe('AUTH_FORBIDDEN');
    const log = must(await call(svc, 'c2', 'exportReport', { report: 'log' }));
    expect(log.fileName).toMatch(/^line-station-log-test-station-all-all\.csv$/);
    expect(log.rows).toBe(4);
    const lines = log.content.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines[0]).toBe(
      'startedAt,updatedAt,serialNumber,chipId,workOrder,operator,kind,outcome,step,errorCode,durationMs,recordId,syncState,runId,attempts',
    );
    const failed = lines.filter((l) => l.includes(',failed,'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(`,${w.sim.boards[2]!.serialNumber},`);
    expect(failed[0]).toContain(',POLICY_VIOLATION,');
    const y = must(await call(svc, 'c2', 'exportReport', { report: 'yield', workOrder: 'WO-DEMO-1' }));
    expect(y.content.split('\n')[1]).toMatch(/^WO-DEMO-1,3,2,0\.6667,3,1,POLICY_VIOLATION \(1\),\d+,\d+,0$/);
    // A range that holds no run: the header only.
    const none = must(
      await call(svc, 'c2', 'exportReport', {
        report: 'log',
        from: '2001-01-01T00:00:00Z',
        to: '2001-01-02T00:00:00Z',
      }),
    );
    expect(none).toMatchObject({ rows: 0, fileName: 'line-station-log-test-station-2001-01-01-2001-01-02.csv' });

    // The CLI prints the same lines and writes the same bytes to a private file with --out.
    const cli = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const c = await station([...args, '--data-dir', w.dataDir], { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code: c, out, err: err.join('\n') };
    };
    const printed = await cli('report', 'log');
    expect(printed.code, printed.err).toBe(0);
    expect(printed.out).toEqual(lines);
    const file = join(w.dir, 'yield.csv');
    const saved = await cli('report', 'yield', '--work-order', 'WO-DEMO-1', '--out', file);
    expect(saved.code, saved.err).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(y.content);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await cli('report', 'log', '--from', 'tomorrow')).code).toBe(2);
    expect((await cli('report', 'log', '--outcome', 'maybe')).code).toBe(2);
  }, 60_000);

  it('getRecord: certificate fields match openssl x509 -text; manifest, record and audit verify', async () => {
    const page = must(
      await call(svc, 'c2', 'queryLog', { text: w.sim.boards[0]!.serialNumber, outcome: 'provisioned' }),
    );
    const d = must(await call(svc, 'c2', 'getRecord', { runId: page.items[0]!.runId }));
    expect(d.recordSignatureValid).toBe(true);
    expect(d.manifest?.signatureValid).toBe(true);
    expect(d.manifest?.verdict.pass).toBe(true);
    expect(d.audit.ok).toBe(true);
    expect(d.keyMode).toBe('onboard');
    expect(d.chain.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(d.timings)).toContain('attest');
    const c = d.certificate!;
    const f = join(w.dir, 'cert.pem');
    writeFileSync(f, c.pem);
    const text = execFileSync('openssl', ['x509', '-in', f, '-noout', '-text'], { encoding: 'utf8' });
    const serial = execFileSync('openssl', ['x509', '-in', f, '-noout', '-serial'], { encoding: 'utf8' });
    expect(serial.trim().split('=')[1]!.toLowerCase().replace(/^0+/, '')).toBe(c.serialNumber.replace(/^0+/, ''));
    const norm = (s: string) =>
      s
        .replace(/\s*=\s*/g, '=')
        .replace(/,\s*/g, ',')
        .trim();
    expect(norm(text.match(/Subject: (.*)/)![1]!)).toBe(norm(c.subject));
    expect(norm(text.match(/Issuer: (.*)/)![1]!)).toBe(norm(c.issuer));
    for (const u of c.sanUris) expect(text).toContain(`URI:${u}`);
    for (const p of c.policyOids) expect(text).toContain(`Policy: ${p}`);
    if (c.extendedKeyUsage.includes('clientAuth')) expect(text).toContain('TLS Web Client Authentication');
    expect(c.keyUsage).toContain('digitalSignature');
    expect(text).toContain('Digital Signature');
    const pub = text.match(/pub:\s*([0-9a-f:\s]+)ASN1 OID/)![1]!.replace(/[\s:]/g, '');
    expect(c.publicKey.endsWith(pub)).toBe(true);
    const nb = execFileSync('openssl', ['x509', '-in', f, '-noout', '-startdate', '-enddate'], { encoding: 'utf8' });
    const [, start, end] = nb.match(/notBefore=(.*)\nnotAfter=(.*)/)!;
    expect(new Date(start!).toISOString()).toBe(c.notBefore);
    expect(new Date(end!).toISOString()).toBe(c.notAfter);
  });

  it('getHsm lists labels and classes only; getDevices lists the ports; getLogLines holds no PIN', async () => {
    const h = must(await call(svc, 'c2', 'getHsm', {}));
    expect(h.present).toBe(true);
    expect(h.keys.map((k) => k.label)).toContain('station-signing');
    const dv = must(await call(svc, 'c2', 'getDevices', {}));
    expect(dv.ports.map((p) => p.path).sort()).toEqual([...w.sim.ports].sort());
    const lines = must(await call(svc, 'c2', 'getLogLines', { limit: 1000 }));
    expect(lines.some((l) => l.msg.includes('signed in'))).toBe(true);
    expect(events.some((e) => e.type === 'log')).toBe(true);
    const everything = [
      JSON.stringify(lines),
      JSON.stringify(events),
      readFileSync(join(w.dir, 'service.log'), 'utf8'),
      w.logText(),
      readFileSync(join(w.dataDir, 'station.db')).toString('latin1'),
      existsSync(join(w.dataDir, 'station.db-wal'))
        ? readFileSync(join(w.dataDir, 'station.db-wal')).toString('latin1')
        : '',
    ].join('\n');
    for (const secret of [OP_PIN, SUP_PIN, 'BADGE-0001']) expect(everything).not.toContain(secret);
  });
});

describe('idle session on a busy line', () => {
  it('ends after the idle timeout while boards pass, sync events flow and the client reads slots and sync on its own', async () => {
    // Attack (review finding): the UI called getSync after every PASS, which counted as activity, so an absent
    // operator's session never idled out and the line's provisioning stayed attributed to them.
    const p0 = w.sim.ports[0]!;
    // A supervisor at the line reworks a board every few minutes (their own activity); the operator signed in last
    // (the one automatic provisioning is attributed to) has walked away with the screen open.
    must(await call(svc, 'sup-x', 'signIn', { operatorId: 'sup-1', pin: SUP_PIN }));
    must(await call(svc, 'idle-op', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    const before = events.length;
    const step = 5 * 60_000;
    const idleMs = authPolicy().sessionIdleMs;
    try {
      let ended: ApiResult<unknown> | null = null;
      for (offsetMs = step; offsetMs <= idleMs + 2 * step; offsetMs += step) {
        const seen = events.length;
        must(await call(svc, 'sup-x', 'approveOverride', { kind: 'reprovision', port: p0, reason: 'rework' }));
        for (let t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
          const done = events
            .slice(seen)
            .some((e) => e.type === 'slot' && e.slot.port === p0 && ['pass', 'fail'].includes(e.slot.state));
          if (done) break;
          if (Date.now() - t0 > 30_000) throw new Error(`no pass on ${p0}\n${w.logText().slice(-3000)}`);
        }
        expect(events.slice(seen)).toContainEqual(expect.objectContaining({ type: 'sync' }));
        // What a screen does on its own after events: re-read slots, work orders and sync counts.
        const reads = [
          await call(svc, 'idle-op', 'getSlots', {}),
          await call(svc, 'idle-op', 'listWorkOrders', {}),
          await call(svc, 'idle-op', 'getSync', {}),
        ];
        if (reads.some((r) => !r.ok)) {
          ended = reads.find((r) => !r.ok)!;
          break;
        }
      }
      expect(ended).toMatchObject({ ok: false, error: { code: 'AUTH_SESSION_EXPIRED', details: { ended: 'idle' } } });
      expect(offsetMs).toBeGreaterThanOrEqual(idleMs);
      expect(offsetMs).toBeLessThanOrEqual(idleMs + step);
      // sync events flowed (one per pass) while the session idled out, and the client was told why it ended.
      expect(events.slice(before).filter((e) => e.type === 'sync').length).toBeGreaterThanOrEqual(6);
      expect(events.slice(before)).toContainEqual({ type: 'session', session: null, ended: 'idle' });
    } finally {
      offsetMs = 0;
    }
  }, 180_000);
});
