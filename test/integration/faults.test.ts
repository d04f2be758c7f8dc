/**
 * Every simulator fault, run through the whole station (engine + flow + store + HSM): each yields its
 * documented error code (docs/protocol.md, "Faults and the codes they produce") and leaves nothing
 * half-written: no record, no lock, a consistent audit chain, and either a failed run or an active
 * run that resumes to PASS once the fault is gone.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Faults } from '../sim/simulator.js';
import { createWorld, type World } from '../harness.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';

const CASES: Array<{
  name: string;
  model: 'LS-SIM-SE' | 'LS-SIM-BASIC';
  faults: Faults;
  code: string;
  runState: 'failed' | 'active' | 'none';
  issued: boolean;
}> = [
  {
    name: 'bad attestation',
    model: 'LS-SIM-SE',
    faults: { badAttestation: true },
    code: 'ATTEST_SIGNATURE_INVALID',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'rogue board: keygen answered with a key it does not hold',
    model: 'LS-SIM-SE',
    faults: { foreignKey: 'keygen' },
    code: 'ATTEST_KEY_MISMATCH',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'rogue board: injectBegin answered with a transport key it does not hold',
    model: 'LS-SIM-BASIC',
    faults: { foreignKey: 'injectBegin' },
    code: 'ATTEST_KEY_MISMATCH',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'rogue board: P-384 device key where the profile says P-256',
    model: 'LS-SIM-SE',
    faults: { keygenCurve: 'P-384' },
    code: 'ATTEST_KEY_TYPE_MISMATCH',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'rogue board: reports the release firmware but runs another (statement binds the truth)',
    model: 'LS-SIM-SE',
    faults: { hideFirmware: true },
    code: 'ATTEST_MEASUREMENT_MISMATCH',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'unexpected firmware digest',
    model: 'LS-SIM-BASIC',
    faults: { badFirmware: true },
    code: 'POLICY_VIOLATION',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'debug port unlocked',
    model: 'LS-SIM-SE',
    faults: { debugUnlocked: true },
    code: 'POLICY_VIOLATION',
    runState: 'failed',
    issued: false,
  },
  {
    name: 'certificate refused',
    model: 'LS-SIM-SE',
    faults: { refuseCert: true },
    code: 'BOARD_CERT_REFUSED',
    runState: 'failed',
    issued: true,
  },
  {
    name: 'certificate not kept by the board (read-back fails)',
    model: 'LS-SIM-SE',
    faults: { forgetCert: true },
    code: 'CERT_INSTALL_MISMATCH',
    runState: 'failed',
    issued: true,
  },
  {
    name: 'disconnect during key generation',
    model: 'LS-SIM-SE',
    faults: { disconnectOn: 'keygen', replugAfterMs: 300 },
    code: 'LINK_DISCONNECTED',
    runState: 'active',
    issued: false,
  },
  {
    name: 'disconnect during certificate install',
    model: 'LS-SIM-BASIC',
    faults: { disconnectOn: 'installCert', replugAfterMs: 300 },
    code: 'LINK_DISCONNECTED',
    runState: 'active',
    issued: true,
  },
  {
    name: 'all bytes dropped',
    model: 'LS-SIM-SE',
    faults: { dropBytes: 1 },
    code: 'PROTOCOL_TIMEOUT',
    runState: 'none',
    issued: false,
  },
  {
    name: 'corrupted bytes',
    model: 'LS-SIM-SE',
    faults: { corruptBytes: 1 },
    code: 'PROTOCOL_CRC',
    runState: 'none',
    issued: false,
  },
];

let w: World;
beforeAll(async () => {
  w = await createWorld({
    boards: [
      ...CASES.map((c) => ({ model: c.model, faults: c.faults })),
      { model: 'LS-SIM-SE', faults: { stale: true } },
    ],
  });
});
afterAll(async () => {
  await w?.teardown();
});

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('simulator faults through the whole station', () => {
  CASES.forEach((c, i) => {
    it(`${c.name} -> ${c.code}, nothing half-written, resumable`, async () => {
      const chipId = w.sim.boards[i]!.chipId;
      const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'fault-test' });
      expect(r.ok, r.ok ? 'unexpected PASS' : '').toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe(c.code);
      expect(r.error.guidance.length).toBeGreaterThan(10);

      // Nothing half-written.
      expect(w.engine.store.findCurrentRecord(chipId)).toBeNull();
      expect(w.sim.state(i).locked).toBe(false);
      expect(w.engine.store.verifyAudit().ok).toBe(true);
      const active = w.engine.store.findActiveRun(chipId);
      if (c.runState === 'active') expect(active).not.toBeNull();
      else expect(active).toBeNull();
      // A certificate written (or about to be written) to a board is always logged first, so it can be revoked.
      expect(w.engine.store.listIssuedCertificates(chipId).length > 0).toBe(c.issued);
      // Every issued certificate is in a record, revoked (failed run: its signed failed-issuance event queued), or
      // belongs to the active run that will resume.
      const inv = await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
      const events = w.engine.lifecycle.db.revocations({ kind: 'failed-issuance' }).filter((q) => q.chipId === chipId);
      expect(events.length).toBe(c.issued && c.runState === 'failed' ? 1 : 0);
      for (const q of events) expect(q.jws).not.toBeNull(); // signed by the engine right after the run failed
      if (c.issued && c.runState === 'active') expect(inv.activeRun).toBeGreaterThan(0);

      // Remove the fault (re-seat / rework): the board then provisions to PASS, resuming an active run.
      // The simulator re-seats a disconnected board by itself (replugAfterMs); wait for it, then clear the fault.
      if (c.runState === 'active') await waitFor(() => existsSync(w.sim.ports[i]!));
      w.sim.setFaults(i, {});
      const again = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'fault-test' });
      if (!again.ok) throw new Error(`${again.error.code}: ${again.error.message}`);
      expect(again.value.status).toBe('provisioned');
      if (again.value.status === 'provisioned') expect(again.value.resumed).toBe(c.runState === 'active');
      const rec = JSON.parse(w.engine.store.findCurrentRecord(chipId)!.recordJson) as {
        certificate: { sha256: string };
      };
      expect(w.sim.state(i).certSha256).toBe(rec.certificate.sha256);
      expect(w.engine.store.verifyAudit().ok).toBe(true);
      await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
    });
  });

  it('stale responses with wrong request ids are discarded and the board still passes', async () => {
    const i = CASES.length;
    const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'fault-test' });
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    expect(r.value.status).toBe('provisioned');
  });
});
