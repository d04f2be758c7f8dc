/**
 * The Line Station driver against the simulator's firmware (test/sim/board.ts) over an in-memory link, through the
 * station's real protocol client: what each step returns, the board's state after it, the codes of the rogue
 * answers, and the profile's timeouts on the wire (defaultMs, keygenMs, flashMs).
 */
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { memoryLinkPair } from '../../../testkit/memory-link.js';
import { createTestPki, must, type TestPki } from '../../../testkit/pki/test-util.js';
import { SimBoard, type Faults, type Latency } from '../../../test/sim/board.js';
import { loadOrCreateVendorPki, type VendorPki } from '../../../test/sim/pki.js';
import { BoardSession, makeRng } from '../../../test/sim/session.js';
import { sha256Hex, toBase64Url } from '../../bytes.js';
import type { BoardIdentity, Measurements } from '../../model.js';
import { systemClock, type Hsm, type Logger } from '../../ports.js';
import { measurementsDigest } from '../../pki/attestation.js';
import { issueDeviceCertificate } from '../../pki/device-cert.js';
import { connectBoard, type BoardClientWithStats } from '../../protocol/client.js';
import { parseBoardProfile, type BoardProfile } from '../../provisioning/profiles.js';
import type { RunData } from '../../provisioning/store.js';
import { parseWorkOrder, type WorkOrder } from '../../provisioning/work-order.js';
import type { DriverContext } from '../driver.js';
import { driverFor } from '../index.js';
import { lsDriver } from './index.js';

const repo = join(import.meta.dirname, '..', '..', '..');
const silent: Logger = { log: () => undefined, child: () => silent };
/** The LS driver never touches the HSM outside key injection (completeKey): any use here fails the test. */
const noHsm = new Proxy({} as Hsm, {
  get: (_t, p) => {
    throw new Error(`the HSM was used (${String(p)})`);
  },
});

let dir: string;
let vendor: VendorPki;
let pki: TestPki;
let workOrder: WorkOrder;
let n = 0;
const open: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-driver-'));
  vendor = await loadOrCreateVendorPki(dir);
  pki = await createTestPki(systemClock);
  workOrder = must(parseWorkOrder(readFileSync(join(repo, 'resources/work-orders/WO-DEMO-1.json'), 'utf8'), 'WO'));
});
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function profile(id: 'ls-sim-se' | 'ls-sim-basic', timeouts: Partial<BoardProfile['timeouts']> = {}): BoardProfile {
  const json = JSON.parse(readFileSync(join(repo, `resources/boards/${id}.json`), 'utf8')) as Record<string, unknown>;
  const p = must(parseBoardProfile(json, id));
  return { ...p, timeouts: { ...p.timeouts, ...timeouts } };
}

/** A simulated board on an in-memory link, and the station's client for it (no retries: timeouts are exact). */
async function plug(
  model: 'LS-SIM-SE' | 'LS-SIM-BASIC',
  opts: { faults?: Faults; latency?: Latency } = {},
): Promise<{ board: SimBoard; client: BoardClientWithStats; identity: BoardIdentity }> {
  const board = await SimBoard.open({ stateFile: join(dir, `b${n++}.json`), model, pki: vendor, ...opts });
  const [station, wire] = memoryLinkPair('mem:station', 'mem:board');
  const session = new BoardSession(
    board,
    { write: (d) => wire.write(d), unplug: () => wire.sever() },
    { rng: makeRng(n) },
  );
  wire.onData((c) => session.onData(c));
  wire.onClose(() => session.close());
  const client = must(await connectBoard(station, { logger: silent, retries: 0 }));
  open.push(() => client.close());
  return { board, client, identity: must(await client.identify()) };
}

function context(client: BoardClientWithStats, p: BoardProfile, runData: RunData = {}): DriverContext {
  return {
    board: client,
    hsm: noHsm,
    clock: systemClock,
    logger: silent,
    random: (k) => crypto.getRandomValues(new Uint8Array(k)),
    profile: p,
    workOrder,
    attestationRoots: [new Uint8Array(vendor.rootCert.rawData)],
    call: { timeoutMs: p.timeouts.defaultMs },
    runData,
    note: () => undefined,
  };
}

async function certificateFor(spki: Uint8Array, identity: BoardIdentity, p: BoardProfile): Promise<Uint8Array[]> {
  const issued = must(
    await issueDeviceCertificate({
      ca: { signer: pki.ca.signer, certificate: pki.ca.der },
      publicKeySpki: spki,
      profile: p.certificate,
      vars: { serialNumber: identity.serialNumber, chipId: identity.chipId, model: identity.model, workOrder: 'WO' },
      clock: systemClock,
    }),
  );
  return [issued.der, pki.ca.der];
}

/** A PROTOCOL_TIMEOUT's per-attempt timeout, or the code of any other outcome. */
function timeoutOf(r: { ok: boolean; error?: { code: string; details?: Record<string, unknown> } }): unknown {
  if (r.ok) return 'ok';
  return r.error?.code === 'PROTOCOL_TIMEOUT' ? r.error.details?.['timeoutMs'] : r.error?.code;
}

describe('driver registry', () => {
  it('the ls profiles get the Line Station driver; a driver this station lacks is FLOW_DRIVER_UNKNOWN', () => {
    expect(must(driverFor(profile('ls-sim-se')))).toBe(lsDriver);
    expect(must(driverFor(profile('ls-sim-basic'))).id).toBe('ls');
    const r = driverFor({ id: 'acme-gw', driver: 'zz9' as BoardProfile['driver'] });
    expect(r.ok ? 'ok' : r.error.code).toBe('FLOW_DRIVER_UNKNOWN');
    if (!r.ok) expect(r.error.message).toContain('"zz9"');
  });

  it('tpm2 profiles get the TPM 2.0 driver (core/boards/tpm2)', () => {
    const r = driverFor({ ...profile('ls-sim-se'), driver: 'tpm2' });
    expect(r.ok ? r.value.id : r.error.code).toBe('tpm2');
  });
});

describe('the Line Station driver, step by step', () => {
  it('on-board key: measure, key, attest, install with read-back, lock (twice), zeroize', async () => {
    const { board, client, identity } = await plug('LS-SIM-SE');
    const p = profile('ls-sim-se');
    expect(must(await lsDriver.identify(context(client, p), identity)).identity).toBe(identity);

    const m = must(await lsDriver.measure(context(client, p), identity));
    expect(m.verdict).toMatchObject({ pass: true, violations: [] });
    expect(m.measurementsSha256).toBe(await measurementsDigest(m.measurements as Measurements));

    const bound = must(await lsDriver.key(context(client, p), identity));
    expect(bound.role).toBe('device');
    expect(bound.created).toMatchObject({ mode: 'onboard', curve: 'P-256', publicKeySpki: toBase64Url(bound.key) });
    expect(board.snapshot().hasKey).toBe(true);

    // A resumed run (its key in the run data) asks the board for nothing new.
    const before = client.stats().requests;
    const again = must(await lsDriver.key(context(client, p, { key: bound.created! }), identity));
    expect(again).toMatchObject({ role: 'device', created: null });
    expect(again.key).toEqual(bound.key);
    expect(client.stats().requests).toBe(before);

    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const att = must(
      await lsDriver.attest(context(client, p), {
        identity,
        nonce,
        bound,
        measurementsSha256: m.measurementsSha256,
      }),
    );
    expect(att.evidence).toMatchObject({
      mode: 'key-bound-v2',
      nonce: toBase64Url(nonce),
      leafSha256: att.leafSha256,
      boundKey: { role: 'device', spki: Buffer.from(bound.key).toString('base64') },
      measurementsSha256: m.measurementsSha256,
    });
    // Measurements other than the ones the board binds: the statement does not verify.
    const other = await lsDriver.attest(context(client, p), {
      identity,
      nonce,
      bound,
      measurementsSha256: '00'.repeat(32),
    });
    expect(other.ok ? 'ok' : other.error.code).toMatch(/^ATTEST_/);

    const chain = await certificateFor(bound.key, identity, p);
    const inst = must(await lsDriver.install(context(client, p), identity, chain));
    expect(inst.certificateSha256).toBe(await sha256Hex(chain[0]!));
    expect(board.snapshot().certSha256).toBe(inst.certificateSha256);

    must(await lsDriver.lock(context(client, p), identity));
    expect(board.snapshot().locked).toBe(true);
    must(await lsDriver.lock(context(client, p), identity)); // already locked (a resumed run) is success

    must(await lsDriver.zeroize(context(client, p), identity));
    expect(board.snapshot()).toMatchObject({ hasKey: false, certSha256: null, locked: false });
  });

  it('injection: the transport key is bound and attested; the driver never touches the HSM before completeKey', async () => {
    const { client, identity } = await plug('LS-SIM-BASIC');
    const p = profile('ls-sim-basic');
    const m = must(await lsDriver.measure(context(client, p), identity));
    const bound = must(await lsDriver.key(context(client, p), identity));
    expect(bound).toMatchObject({ role: 'transport', created: null });
    const att = must(
      await lsDriver.attest(context(client, p), {
        identity,
        nonce: crypto.getRandomValues(new Uint8Array(32)),
        bound,
        measurementsSha256: m.measurementsSha256,
      }),
    );
    expect(att.evidence).toMatchObject({ mode: 'key-bound-v2', boundKey: { role: 'transport' } });
  });

  it('rogue or failing boards: the same codes as before the driver split', async () => {
    const p = profile('ls-sim-se');
    // A board that holds no device key cannot have made the key the station was given.
    const a = await plug('LS-SIM-SE');
    const foreign = must(await (await plug('LS-SIM-SE')).client.generateKey({ curve: 'P-256', subject: 'x' }));
    const noKey = await lsDriver.attest(context(a.client, p), {
      identity: a.identity,
      nonce: new Uint8Array(32),
      bound: { role: 'device', key: foreign.publicKeySpki, created: null },
      measurementsSha256: '00'.repeat(32),
    });
    expect(noKey.ok ? 'ok' : noKey.error).toMatchObject({ code: 'ATTEST_KEY_MISMATCH', details: { role: 'device' } });

    // The board answers the certificate's hash but does not keep it: the read-back catches it.
    const f = await plug('LS-SIM-SE', { faults: { forgetCert: true } });
    const k = must(await lsDriver.key(context(f.client, p), f.identity));
    const r = await lsDriver.install(context(f.client, p), f.identity, await certificateFor(k.key, f.identity, p));
    expect(r.ok ? 'ok' : r.error).toMatchObject({
      code: 'CERT_INSTALL_MISMATCH',
      message: 'read-back after install does not show the certificate',
    });

    // A P-384 key where the profile says P-256.
    const c = await plug('LS-SIM-SE', { faults: { keygenCurve: 'P-384' } });
    const wrong = await lsDriver.key(context(c.client, p), c.identity);
    expect(wrong.ok ? 'ok' : wrong.error.code).toBe('ATTEST_KEY_TYPE_MISMATCH');
  });
});

describe("the profile's timeouts", () => {
  it('key generation waits keygenMs, not defaultMs', async () => {
    const { client, identity } = await plug('LS-SIM-SE', { latency: { keygen: 1500 } });
    const t0 = performance.now();
    const short = await lsDriver.key(context(client, profile('ls-sim-se', { keygenMs: 200 })), identity);
    expect(timeoutOf(short)).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1400);
    // The same board with the default request timeout far below its keygen time, keygenMs above it: it passes.
    const { client: c2, identity: id2 } = await plug('LS-SIM-SE', { latency: { keygen: 1500 } });
    const long = await lsDriver.key(context(c2, profile('ls-sim-se', { defaultMs: 200, keygenMs: 5000 })), id2);
    expect(timeoutOf(long)).toBe('ok');
  });

  it('ordinary requests wait defaultMs; certificate writes and the lock wait flashMs', async () => {
    const slow = await plug('LS-SIM-SE', { latency: { other: 1500 } });
    const measured = await lsDriver.measure(
      context(slow.client, profile('ls-sim-se', { defaultMs: 200 })),
      slow.identity,
    );
    expect(timeoutOf(measured)).toBe(200);

    // Each on its own board: a board still writing answers the next request BUSY.
    const p = profile('ls-sim-se', { defaultMs: 200, flashMs: 200 });
    const { client, identity } = await plug('LS-SIM-SE', { latency: { flash: 1500 } });
    const k = must(await lsDriver.key(context(client, p), identity));
    const chain = await certificateFor(k.key, identity, p);
    expect(timeoutOf(await lsDriver.install(context(client, p), identity, chain))).toBe(200);
    const l = await plug('LS-SIM-SE', { latency: { flash: 1500 } });
    expect(timeoutOf(await lsDriver.lock(context(l.client, p), l.identity))).toBe(200);
    // flashMs above the board's write time (defaultMs still 200): both pass.
    const { client: c2, identity: id2 } = await plug('LS-SIM-SE', { latency: { flash: 1500 } });
    const p2 = profile('ls-sim-se', { defaultMs: 200, flashMs: 5000 });
    const k2 = must(await lsDriver.key(context(c2, p2), id2));
    expect(timeoutOf(await lsDriver.install(context(c2, p2), id2, await certificateFor(k2.key, id2, p2)))).toBe('ok');
    expect(timeoutOf(await lsDriver.lock(context(c2, p2), id2))).toBe('ok');
  });
});
