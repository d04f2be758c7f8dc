/**
 * A provisioning run resumed across a station key rotation still makes a record headquarters accepts, with real
 * parts: the `station` CLI in child processes (bin/station.mjs), SoftHSM2, the simulator on ptys, SQLite, a real
 * registry on 127.0.0.1. The board takes its certificate and is unplugged before answering; the station is killed
 * (SIGKILL) the moment the board holds it: the run signed its baseline manifest with the station key and the
 * certificate is issued, but there is no record. `station rotate-key` rotates the key online; the board is plugged
 * back and the run resumed: the station signs the same manifest again with the new key (the same payload, its
 * `capturedAt` unchanged; audited), so the record is v3 and signed, with its manifest, by the new key. `station sync`
 * delivers it: the registry accepts it, the Python verifier (test/verifier/lsverify.py, openssl) verifies it, the
 * audit chain verifies and every issued certificate is in a record (docs/lifecycle.md "Station key rotation").
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../core/bytes.js';
import { jwsHeaderOf } from '../../core/provisioning/record-manifest.js';
import { toPem } from '../../core/pki/pem.js';
import { type StationDb } from '../../native/store/index.js';
import { type RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { must } from '../../testkit/pki/test-util.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import { provisionArgs, runStationCli } from '../../testkit/station-cli.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { runStationProcess, withStationDb } from '../station-process.js';

const ROOT = join(import.meta.dirname, '..', '..');
const VERIFIER = join(ROOT, 'test', 'verifier', 'lsverify.py');
const WO = 'WO-DEMO-1';
const PINS = { LINE_STATION_PIN: '480213' };

let w: World;
let reg: RunningRegistry;
let dbFile: string;

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: PINS.LINE_STATION_PIN }]);
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-rotres',
    adminToken: 'admin-token-rotate-key-resume-0123456789',
  });
  const regCert = join(w.dir, 'registry.pem');
  writeFileSync(regCert, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
  const e = await runStationCli(['enroll', '--data-dir', w.dataDir, '--registry', reg.url, '--registry-cert', regCert]);
  expect(e.code, e.text).toBe(0);
  await w.engine.close(); // the station runs in child processes from here on
  dbFile = join(w.dataDir, 'station.db');
}, 120_000);
afterAll(async () => {
  await reg?.close();
  await w?.teardown();
});

/** `station ARGS` in its own process (the registry in this process keeps answering); `killWhen` SIGKILLs it. */
const station = (args: readonly string[], killWhen?: () => boolean) => runStationProcess(args, PINS, killWhen);
const withDb = <T>(fn: (db: StationDb) => T): T => withStationDb(dbFile, fn);

const payloadOf = (jws: string) =>
  JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
const leafOf = async (jws: string) => sha256Hex(Buffer.from(jwsHeaderOf(jws)!.x5c![0]!, 'base64'));

/** Provision board i, SIGKILLed the moment it holds its certificate (installCert executed, unplugged before answering). */
async function interrupted(i: number) {
  const chipId = w.sim.state(i).chipId;
  w.sim.setFaults(i, { disconnectOn: 'installCert' });
  const killed = await station(provisionArgs(w.dataDir, w.sim.ports[i]!, WO), () => w.sim.state(i).certSha256 !== null);
  expect(killed.signal, killed.out).toBe('SIGKILL');
  const active = withDb((db) => db.store.findActiveRun(chipId))!;
  expect(active).toBeDefined();
  expect(withDb((db) => db.store.findCurrentRecord(chipId))).toBeNull();
  const issued = withDb((db) => db.store.listAudit(1, 100_000)).filter(
    (e) => e.runId === active.runId && e.type === 'cert.issued',
  );
  expect(issued, 'the certificate was issued before the kill').toHaveLength(1);
  return { chipId, runId: active.runId, manifest: (active.data.manifest as { jws: string }).jws, issued: issued[0]! };
}

/** `station rotate-key` for real, online against the registry (the killed process's engine marker is stale). */
async function rotate(): Promise<string> {
  const rot = await station(['rotate-key', '--data-dir', w.dataDir, '--json']);
  expect(rot.code, rot.out).toBe(0);
  const rotated = JSON.parse(rot.out) as { status: string; certificateSha256: string };
  expect(rotated.status).toBe('rotated');
  return rotated.certificateSha256;
}

/** Board i plugged back in; its run resumes and completes: the record. */
async function resume(i: number, chipId: string) {
  await w.sim.plug(i);
  await sleep(100);
  const resumed = await station(provisionArgs(w.dataDir, w.sim.ports[i]!, WO));
  expect(resumed.code, resumed.out).toBe(0);
  return withDb((db) => db.store.findCurrentRecord(chipId))!;
}

/** `station sync`: every record acknowledged by the registry, none refused (else the registry's reasons). */
async function syncAll(acknowledged: number): Promise<void> {
  const sy = await station(['sync', '--data-dir', w.dataDir, '--json']);
  const why = () =>
    execFileSync('sqlite3', [`file:${dbFile}?mode=ro`, 'SELECT failure_reason, failure_message FROM outbox'], {
      encoding: 'utf8',
    });
  expect(sy.code, sy.out).toBe(0);
  expect(JSON.parse(sy.out), `${sy.out}\n${why()}`).toMatchObject({
    reachable: true,
    pending: 0,
    acknowledged,
    failed: 0,
  });
}

/** The baseline audit entries of a run that say its manifest was signed again. */
const resigned = (runId: string) =>
  withDb((db) => db.store.listAudit(1, 100_000)).filter(
    (e) => e.runId === runId && e.type === 'step.baseline' && e.payload['resigned'] !== undefined,
  );

type RecordPayload = { schema: string; manifest: { payload: Record<string, unknown> } };
let firstManifest = '';

describe('a provisioning run resumed across a station key rotation', () => {
  it('re-signs the manifest with the new key; the record is accepted and verifies', async () => {
    const run = await interrupted(0);
    const oldLeaf = await leafOf(run.manifest);
    firstManifest = run.manifest;
    const newLeaf = await rotate();
    expect(newLeaf).not.toBe(oldLeaf);
    const rec = await resume(0, run.chipId);
    expect(rec.runId).toBe(run.runId);
    expect(rec.certificateSerial).toBe(run.issued.payload['serialNumber']);

    // Synced to the registry: accepted (not refused), stored.
    await syncAll(1);
    const stored = must(await reg.context.db.listRecords({ stationId: w.engine.station.id, limit: 10 }));
    expect(stored.map((r) => r.recordId)).toEqual([rec.recordId]);

    // The record and its manifest are signed by the new key, format v3, the manifest's payload unchanged.
    expect(await leafOf(rec.jws)).toBe(newLeaf);
    const payload = payloadOf(rec.jws) as RecordPayload;
    expect(payload.schema).toBe('line-station/provisioning-record/v3');
    expect(payload.manifest.payload).toEqual(payloadOf(run.manifest));
    const kept = (withDb((db) => db.store.getRun(run.runId))!.data.manifest as { jws: string }).jws;
    expect(await leafOf(kept)).toBe(newLeaf);
    expect(jwsHeaderOf(kept)!.x5c).toEqual(jwsHeaderOf(rec.jws)!.x5c);
    // Audited: the re-signing, from which signer to which.
    const audit = resigned(run.runId);
    expect(audit).toHaveLength(1);
    expect(audit[0]!.payload).toMatchObject({
      resigned: 'station-key-changed',
      capturedAtKept: true,
      previousSignerSha256: oldLeaf,
      signerSha256: newLeaf,
    });

    // The independent verifier (Python + openssl) with the pinned root.
    const rootPem = join(w.dataDir, 'pki', 'root.pem');
    const fp = execFileSync('openssl', ['x509', '-in', rootPem, '-noout', '-fingerprint', '-sha256'], {
      encoding: 'utf8',
    })
      .split('=')[1]!
      .trim();
    writeFileSync(join(w.dir, 'record.jws'), rec.jws);
    const v = spawnPython(['record', '--jws', join(w.dir, 'record.jws'), '--root', rootPem, '--root-sha256', fp]);
    expect(v.out['error']).toBeUndefined();
    expect(v.code).toBe(0);
    expect(v.out['checked']).toEqual(expect.arrayContaining(['jws', 'chain', 'certificate', 'manifest']));

    // The audit chain verifies; every issued certificate is in a record (no failed issuance here, so no CRL to read).
    expect(withDb((db) => db.store.verifyAudit())).toMatchObject({ ok: true });
    const inv = await assertIssuanceInvariant({ dbFile });
    expect(inv.inRecord).toBe(1);
    expect(inv.activeRun).toBe(0);
  }, 240_000);

  it('signs only what it measured: a genuine manifest of another board put into the run is not signed again', async () => {
    const run = await interrupted(1);
    // The attacker (write access to station.db) swaps in board 0's manifest, genuinely signed by the first key.
    execFileSync('sqlite3', [
      dbFile,
      `UPDATE runs SET data_json = json_set(data_json, '$.manifest.jws', '${firstManifest}') WHERE run_id = '${run.runId}'`,
    ]);
    const newLeaf = await rotate();
    const rec = await resume(1, run.chipId);
    await syncAll(2);

    // The manifest in the record is this board's, as measured now; nothing of board 0's was signed.
    const m = (payloadOf(rec.jws) as RecordPayload).manifest.payload;
    const own = payloadOf(run.manifest);
    expect((m['board'] as { chipId: string }).chipId).toBe(run.chipId);
    expect(m['measurements']).toEqual(own['measurements']);
    expect(m['verdict']).toEqual(own['verdict']);
    expect(m['capturedAt']).not.toBe(payloadOf(firstManifest)['capturedAt']);
    expect(Date.parse(m['capturedAt'] as string)).toBeGreaterThan(Date.parse(own['capturedAt'] as string));
    expect(resigned(run.runId)[0]!.payload).toMatchObject({
      resigned: 'station-key-changed',
      capturedAtKept: false,
      previousSignerSha256: await leafOf(firstManifest),
      signerSha256: newLeaf,
    });
    expect(withDb((db) => db.store.verifyAudit())).toMatchObject({ ok: true });
    expect((await assertIssuanceInvariant({ dbFile })).inRecord).toBe(2);
  }, 240_000);
});

/** lsverify.py's JSON answer and exit code (asynchronous is not needed: it reads files only). */
function spawnPython(args: readonly string[]): { code: number; out: Record<string, unknown> } {
  try {
    const stdout = execFileSync('python3', [VERIFIER, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: 0, out: JSON.parse(stdout) as Record<string, unknown> };
  } catch (e) {
    const x = e as { status?: number; stdout?: string; stderr?: string };
    if (!x.stdout?.trim()) throw new Error(`lsverify: ${x.stderr ?? String(e)}`);
    return { code: x.status ?? -1, out: JSON.parse(x.stdout) as Record<string, unknown> };
  }
}
