/**
 * Cross-checks between the simulator and the station's own parsers and verifiers (core/): the demo work order
 * validates, healthy boards pass its baseline and faulted ones do not, and attestation evidence verifies.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateBaseline } from '../../core/provisioning/baseline.js';
import { systemClock } from '../../core/ports.js';
import { measurementsDigest, verifyAttestation } from '../../core/pki/attestation.js';
import { parseWorkOrder, type WorkOrder } from '../../core/provisioning/work-order.js';
import type { Measurements } from '../../core/model.js';
import { SimBoard, type SimResponse } from './board.js';
import { fromPem, loadOrCreateVendorPki, type VendorPki } from './pki.js';

let dir: string;
let pki: VendorPki;
let wo: WorkOrder;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-sim-compat-'));
  pki = await loadOrCreateVendorPki(dir);
  const text = readFileSync(new URL('../../resources/work-orders/WO-DEMO-1.json', import.meta.url), 'utf8');
  const r = parseWorkOrder(text, 'WO-DEMO-1.json');
  if (!r.ok) throw new Error(r.error.message);
  wo = r.value;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: unknown) => Buffer.from(b as Uint8Array).toString('hex');
const board = (model: 'LS-SIM-SE' | 'LS-SIM-BASIC') =>
  SimBoard.open({ stateFile: join(dir, `b${n++}.json`), model, pki, versions: [1, 2], maxFrame: 4096 });

/** The board's measure answer as the station's client turns it into Measurements. */
function toMeasurements(r: SimResponse): Measurements {
  const fw = r['firmware'] as { name: string; version: string; sha256: Uint8Array }[];
  return {
    firmware: fw.map((f) => ({ name: f.name, version: f.version, sha256: hex(f.sha256) })),
    secureBoot: r['secureBoot'] as boolean,
    debugLocked: r['debugLocked'] as boolean,
    fuseDigest: hex(r['fuseDigest']),
    configDigest: hex(r['configDigest']),
  };
}

describe('station compatibility', () => {
  it('WO-DEMO-1 is a valid work order whose baseline healthy boards of both models pass', async () => {
    expect(wo.profiles).toEqual(['ls-sim-se', 'ls-sim-basic']);
    for (const model of ['LS-SIM-SE', 'LS-SIM-BASIC'] as const) {
      const b = await board(model);
      expect(evaluateBaseline(toMeasurements(await b.handle('measure', {})), wo.baseline)).toMatchObject({
        pass: true,
      });
      b.faults = { badFirmware: true };
      expect(evaluateBaseline(toMeasurements(await b.handle('measure', {})), wo.baseline).pass).toBe(false);
      b.faults = { debugUnlocked: true };
      expect(evaluateBaseline(toMeasurements(await b.handle('measure', {})), wo.baseline).pass).toBe(false);
    }
  });

  it("attestation evidence passes the station's verifier; badAttestation fails it", async () => {
    const b = await board('LS-SIM-SE');
    const nonce = new Uint8Array(32).fill(9);
    const trustAnchors = [fromPem(pki.rootPem, 'CERTIFICATE')];
    const evidence = (r: SimResponse) => ({
      protocol: 1 as const,
      signature: r['signature'] as Uint8Array,
      chain: r['chain'] as Uint8Array[],
    });
    const good = await verifyAttestation({
      nonce,
      chipId: b.chipId,
      evidence: evidence(await b.handle('attest', { nonce })),
      trustAnchors,
      clock: systemClock,
    });
    expect(good.ok).toBe(true);
    const other = await verifyAttestation({
      nonce,
      chipId: 'ab'.repeat(16),
      evidence: evidence(await b.handle('attest', { nonce })),
      trustAnchors,
      clock: systemClock,
    });
    expect(!other.ok && other.error.code).toBe('ATTEST_IDENTITY_MISMATCH');
    b.faults = { badAttestation: true };
    const bad = await verifyAttestation({
      nonce,
      chipId: b.chipId,
      evidence: evidence(await b.handle('attest', { nonce })),
      trustAnchors,
      clock: systemClock,
    });
    expect(!bad.ok && bad.error.code).toBe('ATTEST_SIGNATURE_INVALID');
  });

  it("protocol 2: the simulator's statement (its own encoder) passes the station's verifier and binds its key", async () => {
    const b = await board('LS-SIM-SE');
    expect(await b.handle('hello', { versions: [1, 2] })).toMatchObject({ version: 2 });
    const gen = await b.handle('keygen', { curve: 'P-256', subject: 'x' });
    const m = toMeasurements(await b.handle('measure', {}));
    const nonce = new Uint8Array(32).fill(7);
    const r = await b.handle('attest', { nonce, key: 'device' });
    const v = await verifyAttestation({
      nonce,
      chipId: b.chipId,
      evidence: {
        protocol: 2,
        statement: r['statement'] as Uint8Array,
        signature: r['signature'] as Uint8Array,
        chain: r['chain'] as Uint8Array[],
      },
      trustAnchors: [fromPem(pki.rootPem, 'CERTIFICATE')],
      clock: systemClock,
      expected: {
        role: 'device',
        key: gen['publicKey'] as Uint8Array,
        curve: 'P-256',
        measurementsSha256: await measurementsDigest(m),
      },
    });
    if (!v.ok) throw new Error(`${v.error.code}: ${v.error.message}`);
    expect(v.value.statement?.role).toBe('device');
  });
});
