/**
 * Every TPM fault of the simulator (test/sim/README.md "TPM boards"), through the whole station (engine + flow +
 * tpm2 driver + store + HSM, boards over ptys with real swtpm): each ends with its coded error, and afterwards
 * nothing is half-written: no record, no certificate outside a record or the CRL queue (issuance invariant), a
 * consistent audit chain, and the TPM itself holds no device key or certificate index the station did not record.
 * The unplug case resumes to one identity: the key persisted before the unplug is the certified one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Faults } from '../sim/simulator.js';
import type { ProvisioningRecord } from '../../core/provisioning/record.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { tpm2tools } from '../../testkit/tpm/swtpm.js';
import { createWorld, type World } from '../harness.js';

const WO = 'WO-DEMO-TPM-1';
const IDEVID = '0x81020000';
const CERT_NV = '0x01100000';

const CASES: Array<{
  name: string;
  model: 'LS-SIM-TPM-ECC' | 'LS-SIM-TPM-RSA';
  faults: Faults;
  code: string;
  step: string;
  runState: 'failed' | 'active' | 'none';
  /** The TPM holds the IDevID afterwards (made before the failure). */
  keyInTpm: boolean;
}> = [
  {
    name: 'EK certificate from an untrusted CA',
    model: 'LS-SIM-TPM-ECC',
    faults: { tpmUntrustedEk: true },
    code: 'ATTEST_CHAIN_INVALID',
    step: 'identify',
    runState: 'none',
    keyInTpm: false,
  },
  {
    // The relay answers with a second TPM (except the EK certificate reads): its EK is not the certificate's, so the
    // station stops at identify, before any credential is made. The activation of a credential by another TPM is
    // core/boards/tpm2/driver.test.ts ("credential answered by another TPM").
    name: 'another TPM answers (credential from another TPM)',
    model: 'LS-SIM-TPM-RSA',
    faults: { tpmOtherTpm: true },
    code: 'TPM_EK_CERT_INVALID',
    step: 'identify',
    runState: 'none',
    keyInTpm: false,
  },
  {
    name: 'rogue relay clears fixedTPM/fixedParent in the key template',
    model: 'LS-SIM-TPM-ECC',
    faults: { tpmRogueTemplate: true },
    code: 'TPM_KEY_ATTRIBUTES_INVALID',
    step: 'key',
    runState: 'failed',
    keyInTpm: false,
  },
  {
    name: 'unexpected PCRs (tampered application measured at boot)',
    model: 'LS-SIM-TPM-RSA',
    faults: { tpmPcrMismatch: true },
    code: 'POLICY_VIOLATION',
    step: 'baseline',
    runState: 'failed',
    keyInTpm: false,
  },
  {
    name: 'TPM in dictionary-attack lockout',
    model: 'LS-SIM-TPM-ECC',
    faults: { tpmLockout: true },
    code: 'TPM_LOCKOUT',
    step: 'identify',
    runState: 'none',
    keyInTpm: false,
  },
];

let w: World;
const UNPLUG = CASES.length;
const STALE = CASES.length + 1;

beforeAll(async () => {
  w = await createWorld({
    boards: [
      ...CASES.map((c) => ({ model: c.model, faults: c.faults })),
      // unplugged right after a key was made persistent (before the station checkpointed it)
      { model: 'LS-SIM-TPM-ECC', faults: { tpmDisconnectOn: 'EvictControl', replugAfterMs: 300 } },
      // a quote replayed when the run resumes after an unplug during the certify
      {
        model: 'LS-SIM-TPM-RSA',
        faults: { tpmStaleQuote: true, tpmDisconnectOn: 'Certify', replugAfterMs: 300 },
      },
    ] as Parameters<typeof createWorld>[0]['boards'],
  });
}, 240_000);
afterAll(async () => {
  await w?.teardown();
});

async function waitFor(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Persistent handles and NV indices of board i's TPM (tpm2_getcap, independent of our code). */
async function tpmHandles(i: number): Promise<{ persistent: string; nv: string }> {
  const tpm = w.sim.tpm(i)?.main;
  if (!tpm) throw new Error(`board ${i}: TPM not running`);
  const tools = tpm2tools(tpm);
  return {
    persistent: (await tools('tpm2_getcap', ['handles-persistent'])).stdout,
    nv: (await tools('tpm2_getcap', ['handles-nv-index'])).stdout,
  };
}

async function invariants(chipId: string): Promise<void> {
  expect(w.engine.store.findCurrentRecord(chipId)).toBeNull();
  expect(w.engine.store.verifyAudit().ok).toBe(true);
  await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
}

const provision = (i: number) =>
  w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'tpm-fault-test' });

describe('TPM faults through the station', () => {
  CASES.forEach((c, i) => {
    it(`${c.name} -> ${c.code} at ${c.step}, nothing half-written`, async () => {
      const chipId = w.sim.boards[i]!.chipId;
      const r = await provision(i);
      expect(r.ok, r.ok ? 'unexpected PASS' : '').toBe(false);
      if (r.ok) return;
      expect(r.error.code, r.error.message).toBe(c.code);
      expect(r.error.guidance.length).toBeGreaterThan(10);
      const run = w.engine.store.findActiveRun(chipId);
      expect(run).toBeNull();
      expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
      await invariants(chipId);
      const h = await tpmHandles(i);
      expect(h.persistent.includes(IDEVID)).toBe(c.keyInTpm);
      expect(h.nv).not.toContain(CERT_NV);
      if (c.code === 'POLICY_VIOLATION') expect(JSON.stringify(r.error.details)).toContain('pcr.value');
    }, 60_000);
  });

  it('unplugged after the IDevID was made persistent: resumes with that one key (one identity)', async () => {
    const i = UNPLUG;
    const chipId = w.sim.boards[i]!.chipId;
    // The first TPM2_EvictControl of a fresh TPM persists the SRK: unplugged there, the run resumes and makes the
    // IDevID; the next EvictControl (the IDevID's) is answered by the TPM, then the board is unplugged again.
    for (const persisted of ['0x81000001', IDEVID]) {
      const r = await provision(i);
      expect(!r.ok && r.error.code).toBe('LINK_DISCONNECTED');
      expect(w.engine.store.findActiveRun(chipId)).not.toBeNull();
      await invariants(chipId);
      await waitFor(() => existsSync(w.sim.ports[i]!));
      await waitFor(() => w.sim.tpm(i)?.main != null);
      expect((await tpmHandles(i)).persistent).toContain(persisted);
      if (persisted !== IDEVID) w.sim.setFaults(i, { tpmDisconnectOn: 'EvictControl', replugAfterMs: 300 });
    }
    const before = await tpmHandles(i);
    expect(before.persistent).toContain(IDEVID); // the TPM made and kept the key; the station never saw it
    const again = await provision(i);
    if (!again.ok) throw new Error(`${again.error.code}: ${again.error.message}`);
    expect(again.value.status).toBe('provisioned');
    if (again.value.status === 'provisioned') expect(again.value.resumed).toBe(true);
    const rec = JSON.parse(w.engine.store.findCurrentRecord(chipId)!.recordJson) as ProvisioningRecord;
    const tools = tpm2tools(w.sim.tpm(i)!.main!);
    const pub = await tools('tpm2_readpublic', ['-c', IDEVID]);
    const ev = rec.attestation as Extract<ProvisioningRecord['attestation'], { mode: 'tpm2' }>;
    expect(pub.stdout).toContain(`name: ${ev.idevid.name}`);
    const after = await tpmHandles(i);
    expect(after.persistent.split('\n').filter((l) => l.includes('0x8102')).length).toBe(1);
    expect(w.engine.store.listIssuedCertificates(chipId).length).toBe(1);
    await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  }, 90_000);

  it('a stale (replayed) quote when the run resumes -> ATTEST_NONCE_MISMATCH, nothing issued', async () => {
    const i = STALE;
    const chipId = w.sim.boards[i]!.chipId;
    const first = await provision(i);
    expect(!first.ok && first.error.code).toBe('LINK_DISCONNECTED');
    await waitFor(() => existsSync(w.sim.ports[i]!));
    await waitFor(() => w.sim.tpm(i)?.main != null);
    const r = await provision(i);
    expect(!r.ok && r.error.code).toBe('ATTEST_NONCE_MISMATCH');
    expect(w.engine.store.findActiveRun(chipId)).toBeNull();
    expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
    await invariants(chipId);
    expect((await tpmHandles(i)).nv).not.toContain(CERT_NV);
  }, 90_000);
});
