/**
 * Station key rotation with real parts: a development station (SoftHSM2 token, simulator ptys, SQLite) and a real
 * registry on 127.0.0.1. Online rotation interrupted after the registry applied it (the retry authenticates with the
 * new key and gets the same answer), duplicate and forged requests, old-key records completed before the rotation
 * accepted and after it refused, provisioning + sync with the new key, `openssl verify` of the new certificate, the
 * old private key gone from the token, the hand-carried flow (request file, registry CLI, answer file), the key
 * history, and a revoked station refused.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/canonical.js';
import { utf8 } from '../../core/bytes.js';
import { signJws } from '../../core/pki/jws.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { systemClock } from '../../core/ports.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { runOpenCommand as runLifecycleCommand } from '../../registry/cli.js';
import { stationKeyRotation } from '../../registry/station-keys/rotation.js';
import { KEY_ROTATION_TYP } from '../../core/hq/key-rotation.js';
import { type RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { ingestRecords } from '../../registry/http/compose.js';
import { stationTrust } from '../../registry/stations/trust.js';
import { call } from '../../testkit/registry/harness.js';
import { createWorld, type World } from '../harness.js';
import { main } from '../../station/cli/program.js';
import { loadConfig } from '../../station/config.js';
import {
  nextKeyLabel,
  PENDING_ROTATION_FILE,
  rotateStationKey,
  type PendingRotation,
} from '../../station/rotate-key.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';

const ADMIN = 'admin-token-rotate-key-0123456789';
const WO = 'WO-DEMO-1';
let w: World;
let reg: RunningRegistry;
let regCertFile: string;
/** The registry's clock, shifted by the test (the rotation time falls between two records). */
const fixed: { at: number | null } = { at: null };
const regClock = { now: () => new Date(fixed.at ?? Date.now()), monotonicMs: () => systemClock.monotonicMs() };

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-3000)}`);
  return r.value;
};
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const regCli = async (cmd: string, rest: string[], v: Record<string, string | boolean>) => {
  const out: string[] = [];
  const code = await runLifecycleCommand(cmd, rest, v, {
    ctx: reg.context,
    dataDir: w.dir,
    out: { log: (s) => out.push(s), err: (s) => out.push(s) },
  });
  return { code, text: out.join('\n') };
};
const provision = (i: number) => w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-1' });
const stationLabel = () => must(loadConfig(w.dataDir)).config.hsm.keys.station;
const hsm = () => w.engine.hsm as HsmAdmin;
const registryCert = async () =>
  (await reg.context.db.getStation(w.engine.station.id)).ok
    ? must(await reg.context.db.getStation(w.engine.station.id))!.certificateSha256
    : '';

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }] });
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-rk',
    adminToken: ADMIN,
    clock: regClock,
  });
  regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
  const e = await cli(['enroll', '--data-dir', w.dataDir, '--registry', reg.url, '--registry-cert', regCertFile]);
  expect(e.code, e.text).toBe(0);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await reg?.close();
  await w?.teardown();
});

describe('station key rotation', () => {
  let oldRecords: { r0: string; r1: string; completed0: string; completed1: string };
  let firstRequest = '';
  let firstAnswer = '';

  it('refuses a rotation request signed by another key', async () => {
    // Two records signed with the current key, not synced yet.
    const a = must(await provision(0));
    const b = must(await provision(1));
    const r0 = a.record.recordId;
    const r1 = b.record.recordId;
    oldRecords = {
      r0,
      r1,
      completed0: (JSON.parse(a.record.recordJson) as { completedAt: string }).completedAt,
      completed1: (JSON.parse(b.record.recordJson) as { completedAt: string }).completedAt,
    };
    const forger = await createTestSigner('P-256');
    const chain = w.engine.station.chain;
    const payload = {
      schema: 'line-station/station-key-rotation/v1',
      requestId: globalThis.crypto.randomUUID(),
      stationId: w.engine.station.id,
      previousCertificateSha256: await registryCert(),
      chainPem: chain.map((d) => toPem(d, 'CERTIFICATE')).join(''),
      requestedAt: new Date().toISOString(),
    };
    const jws = must(
      await signJws({
        signer: forger,
        payload: utf8(canonicalJson(payload)),
        header: { typ: KEY_ROTATION_TYP, kid: w.engine.station.id, x5c: chain },
      }),
    );
    const r = await stationKeyRotation(reg.context, jws, { via: 'hand-carried' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code, r.error.message).toBe('AUTH_SIGNATURE_INVALID');
  });

  it('rotates online; a crash after the registry applied it is resumed with the new key (same answer)', async () => {
    const before = await registryCert();
    const oldLabel = stationLabel();
    // The registry applies the rotation at a time between the two old records: r0 before it, r1 "after" it.
    const mid = (Date.parse(oldRecords.completed0) + Date.parse(oldRecords.completed1)) / 2;
    const crash = await rotateStationKey({
      dataDir: w.dataDir,
      logger: w.logger,
      mode: { kind: 'online' },
      failpoint: (p) => {
        if (p === 'after-prepare') fixed.at = mid;
        if (p === 'after-send') throw new Error('simulated crash');
      },
    }).catch((e: unknown) => e as Error);
    fixed.at = null;
    expect(crash, JSON.stringify(crash)).toBeInstanceOf(Error);
    // The registry switched, the station did not: its config still names the old key.
    expect(await registryCert()).not.toBe(before);
    expect(stationLabel()).toBe(oldLabel);
    const pending = JSON.parse(readFileSync(join(w.dataDir, PENDING_ROTATION_FILE), 'utf8')) as PendingRotation;
    expect(pending.state).toBe('requested');
    firstRequest = pending.request;

    const r = must(await rotateStationKey({ dataDir: w.dataDir, logger: w.logger, mode: { kind: 'online' } }));
    expect(r).toMatchObject({ status: 'rotated', resumed: true, repeated: true, oldLabel, newLabel: `${oldLabel}-v2` });
    expect(stationLabel()).toBe(`${oldLabel}-v2`);
    expect(existsSync(join(w.dataDir, PENDING_ROTATION_FILE))).toBe(false);
    expect(await registryCert()).toBe(r.certificateSha256);

    // Duplicate request: the stored answer again, byte for byte.
    const d1 = must(await stationKeyRotation(reg.context, firstRequest, { via: 'hand-carried' }));
    const d2 = must(await stationKeyRotation(reg.context, firstRequest, { via: 'hand-carried' }));
    expect(d1.repeated).toBe(true);
    expect(d2.answer).toBe(d1.answer);
    firstAnswer = d1.answer;

    // The old private key is gone from the token; the new one is sensitive and not extractable.
    expect(must(await hsm().findKey(oldLabel))).toBeNull();
    expect(must(await hsm().findKey(`${oldLabel}-v2`))).toMatchObject({ sensitive: true, extractable: false });
    const audit = w.engine.store.listAudit().map((a) => a.type);
    expect(audit).toEqual(
      expect.arrayContaining(['station.key-rotation-requested', 'station.key-rotated', 'station.key-destroyed']),
    );
  });

  it('the new station certificate verifies with openssl against the issuing CA and root', () => {
    const chain = must(
      fromPemChain(
        readFileSync(must(loadConfig(w.dataDir)).path(must(loadConfig(w.dataDir)).config.pki.stationChain), 'utf8'),
      ),
    );
    expect(chain).toHaveLength(3);
    const [leaf, ca, root] = chain.map((d) => toPem(d, 'CERTIFICATE'));
    writeFileSync(join(w.dir, 'leaf.pem'), leaf!);
    writeFileSync(join(w.dir, 'ca.pem'), ca!);
    writeFileSync(join(w.dir, 'root.pem'), root!);
    const v = spawnSync(
      'openssl',
      ['verify', '-CAfile', join(w.dir, 'root.pem'), '-untrusted', join(w.dir, 'ca.pem'), join(w.dir, 'leaf.pem')],
      { encoding: 'utf8' },
    );
    expect(v.stdout + v.stderr).toContain('leaf.pem: OK');
    const subj = spawnSync('openssl', ['x509', '-in', join(w.dir, 'leaf.pem'), '-noout', '-subject'], {
      encoding: 'utf8',
    });
    expect(subj.stdout.replace(/ /g, '')).toContain(`CN=${w.engine.station.id}`);
  });

  it('accepts old-key records completed before the rotation, refuses one claiming a later time, takes new-key records', async () => {
    await w.reopen();
    const at = String(
      (
        await reg.context.db.sql.all('SELECT replaced_at FROM station_key_history WHERE station_id = ?', [
          w.engine.station.id,
        ])
      )[0]?.['replaced_at'],
    );
    expect(
      oldRecords.completed0 < at && at < oldRecords.completed1,
      `${oldRecords.completed0} < ${at} < ${oldRecords.completed1}`,
    ).toBe(true);
    const c = must(await provision(2));
    must(await w.engine.sync!.syncOnce());
    const stored = must(await reg.context.db.listRecords({ stationId: w.engine.station.id, limit: 10 })).map(
      (r) => r.recordId,
    );
    expect(stored).toContain(oldRecords.r0);
    expect(stored).toContain(c.record.recordId);
    expect(stored).not.toContain(oldRecords.r1);
    // The reason given for r1.
    const r1 = w.engine.store.listRecords({ limit: 10 }).find((r) => r.recordId === oldRecords.r1)!;
    const trust = must(await stationTrust(reg.context, w.engine.station.id));
    const res = must(await ingestRecords(reg.context, trust, globalThis.crypto.randomUUID(), [r1.jws], 'batch'));
    expect(res.results[0]).toMatchObject({ status: 'rejected', reason: 'signer-mismatch' });
    expect(res.results[0]!.message).toMatch(/replaced at .* after the rotation/);
  });

  it('rotates hand-carried: request file, registry rotate-station-key, answer file; key history', async () => {
    const reqFile = join(w.dir, 'rotation-request.json');
    const ansFile = join(w.dir, 'rotation-answer.json');
    const q = await cli(['rotate-key', '--data-dir', w.dataDir, '--out', reqFile]);
    expect(q.code, q.text).toBe(0);
    expect(stationLabel()).toMatch(/-v2$/); // pending, not in use
    const before = await registryCert();
    const a = await regCli('rotate-station-key', [], { request: reqFile, out: ansFile, json: true });
    expect(a.code, a.text).toBe(0);
    expect(await registryCert()).not.toBe(before);
    // The registry's event log names how and by whom the hand-carried rotation was applied.
    const ev = await reg.context.db.sql.all(
      `SELECT payload FROM lifecycle_events WHERE type = 'station.key-rotated' ORDER BY seq DESC LIMIT 1`,
    );
    expect(JSON.parse(String(ev[0]?.['payload']))).toMatchObject({ via: 'hand-carried', actor: 'admin' });
    // The registry answers a replay of the first (online) request with its stored answer.
    expect(must(await stationKeyRotation(reg.context, firstRequest, { via: 'station' })).answer).toBe(firstAnswer);
    const s = await cli(['rotate-key', '--data-dir', w.dataDir, '--answer', ansFile, '--json']);
    expect(s.code, s.text).toBe(0);
    expect(JSON.parse(s.text)).toMatchObject({ status: 'rotated', resumed: true });
    expect(stationLabel()).toMatch(/-v3$/);
    await w.reopen();
    expect(must(await hsm().findKey(stationLabel().replace(/-v3$/, '-v2')))).toBeNull();
    must(await w.engine.sync!.syncOnce()); // LS-Sig with the v3 key is accepted
    expect(w.engine.sync!.status().reachable).toBe(true);

    const h = await regCli('station-keys', [w.engine.station.id], { json: true });
    expect(h.code, h.text).toBe(0);
    const keys = (JSON.parse(h.text) as { keys: { replacedAt: string | null; since: string }[] }).keys;
    expect(keys).toHaveLength(3);
    expect(keys[0]!.replacedAt).toBeNull();
    expect(keys[1]!.replacedAt).toBe(keys[0]!.since);
  });

  it('a crash after the answer and one after the switch are resumed: new key, old key gone, audited once', async () => {
    const oldLabel = stationLabel();
    const newLabel = nextKeyLabel(oldLabel);
    const crashAt = (at: 'after-answer' | 'after-switch') =>
      rotateStationKey({
        dataDir: w.dataDir,
        logger: w.logger,
        mode: { kind: 'online' },
        failpoint: (p) => {
          if (p === at) throw new Error(`simulated crash ${at}`);
        },
      }).catch((e: unknown) => e as Error);
    const pendingFile = join(w.dataDir, PENDING_ROTATION_FILE);
    const pendingState = () => (JSON.parse(readFileSync(pendingFile, 'utf8')) as PendingRotation).state;

    expect(await crashAt('after-answer')).toBeInstanceOf(Error);
    expect(pendingState()).toBe('answered');
    expect(stationLabel()).toBe(oldLabel); // verified answer, not switched yet
    expect(existsSync(join(w.dataDir, 'run', 'rotate-key.lock'))).toBe(false); // the crash released the lock

    expect(await crashAt('after-switch')).toBeInstanceOf(Error);
    expect(pendingState()).toBe('switched');
    expect(stationLabel()).toBe(newLabel);
    expect(must(await hsm().findKey(oldLabel))).not.toBeNull(); // destroyed only after the switch is recorded

    const r = must(await rotateStationKey({ dataDir: w.dataDir, logger: w.logger, mode: { kind: 'online' } }));
    expect(r).toMatchObject({ status: 'rotated', resumed: true, oldLabel, newLabel, oldKeyDestroyed: true });
    expect(stationLabel()).toBe(newLabel);
    expect(existsSync(pendingFile)).toBe(false);
    expect(must(await hsm().findKey(oldLabel))).toBeNull();
    expect(must(await hsm().findKey(newLabel))).toMatchObject({ sensitive: true, extractable: false });
    const audit = w.engine.store
      .listAudit()
      .filter((a) => a.payload['requestId'] === r.requestId)
      .map((a) => a.type);
    expect(audit.sort()).toEqual(['station.key-destroyed', 'station.key-rotated', 'station.key-rotation-requested']);
    expect(await registryCert()).toBe(r.certificateSha256);
    await w.reopen();
    must(await w.engine.sync!.syncOnce()); // LS-Sig with the new key is accepted
  });

  it('a revoked station cannot rotate', async () => {
    const r = await call(reg.url, 'POST', `/v1/admin/stations/${w.engine.station.id}/revoke`, { bearer: ADMIN });
    expect(r.status).toBe(200);
    const q = await cli(['rotate-key', '--data-dir', w.dataDir]);
    expect(q.code).not.toBe(0);
    expect(q.text).toContain('AUTH_STATION_REVOKED');
    // The pending request, hand-carried, is refused too.
    const pending = JSON.parse(readFileSync(join(w.dataDir, PENDING_ROTATION_FILE), 'utf8')) as PendingRotation;
    const h = await stationKeyRotation(reg.context, pending.request, { via: 'hand-carried' });
    expect(h.ok ? 'ok' : h.error.code).toBe('AUTH_STATION_REVOKED');
    await w.reopen();
  });
});
