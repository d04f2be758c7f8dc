/**
 * The tpm2 driver against a real swtpm, its relay going straight to the swtpm socket (no board in between): every
 * step for both EK types, the evidence schema, the TPM state identify reads back, and the failure codes a TPM
 * decides itself (untrusted EK CA, a claim that is not the EK's chip id, a run key the TPM does not hold).
 * The whole path through the simulator over ptys is test/integration/tpm-*.test.ts.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, sha256Hex, toBase64Url } from '../../bytes.js';
import type { BoardIdentity } from '../../model.js';
import { systemClock, type BoardClient } from '../../ports.js';
import { parseBoardProfile, type BoardProfile } from '../../provisioning/profiles.js';
import { AttestationEvidenceRecordSchema } from '../../provisioning/record.js';
import type { RunData } from '../../provisioning/store.js';
import { parseWorkOrder, type WorkOrder } from '../../provisioning/work-order.js';
import { manufactureTpm, startSwtpm, type ManufacturedTpm, type RunningSwtpm } from '../../../testkit/tpm/swtpm.js';
import type { DriverContext } from '../driver.js';
import { chipIdOf, verifyEkCertificate } from './ek-trust.js';
import { tpm2Driver } from './index.js';

const resources = new URL('../../../resources/', import.meta.url);
const json = async (p: string): Promise<unknown> => JSON.parse(await readFile(new URL(p, resources), 'utf8'));

async function profile(id: string): Promise<BoardProfile> {
  const r = parseBoardProfile(await json(`boards/${id}.json`), id);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('tpm2 driver on swtpm', () => {
  let dir: string;
  let made: ManufacturedTpm;
  let rogue: ManufacturedTpm;
  let tpm: RunningSwtpm;
  let roots: Uint8Array[];
  let workOrder: WorkOrder;
  let demoOrder: WorkOrder;
  const notes: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ls-tpm2-driver-'));
    [made, rogue] = await Promise.all([
      manufactureTpm({ dir: join(dir, 'tpm') }),
      manufactureTpm({ dir: join(dir, 'rogue') }),
    ]);
    tpm = await startSwtpm({ dir: made.dir });
    roots = [
      new Uint8Array(await readFile(made.ca.rootCertDer)),
      new Uint8Array(await readFile(made.ca.issuerCertDer)),
    ];
    const wo = parseWorkOrder(await json('work-orders/WO-DEMO-TPM-1.json'), 'WO-DEMO-TPM-1.json');
    if (!wo.ok) throw new Error(wo.error.message);
    demoOrder = wo.value;
    // A bare swtpm has not booted anything: every PCR is zero (the simulator's boards measure their boot).
    const zero = '0'.repeat(64);
    const values = Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [String(i), [zero]]));
    workOrder = { ...wo.value, baseline: { ...wo.value.baseline, pcrs: { bank: 'sha256', values } } };
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const board = (): BoardClient =>
    ({
      path: 'swtpm',
      protocolVersion: 3,
      tpmTransmit: (command: Uint8Array, opts?: { signal?: AbortSignal; timeoutMs?: number }) =>
        tpm.transmit(command, opts),
    }) as unknown as BoardClient;

  const ctx = (p: BoardProfile, runData: RunData = {}, attestationRoots = roots, wo?: WorkOrder): DriverContext => ({
    board: board(),
    hsm: undefined as never,
    clock: systemClock,
    logger: { log: () => undefined, child: () => ctx(p).logger },
    random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
    profile: p,
    workOrder: wo ?? workOrder,
    attestationRoots,
    call: { timeoutMs: 30_000 },
    runData,
    note: (m) => notes.push(m),
  });

  const claim = (chipId: string): BoardIdentity => ({
    protocolVersion: 3,
    chipId,
    serialNumber: 'LT0000ABCD',
    model: 'LS-SIM-TPM-ECC',
    hardwareRevision: 'A',
    firmwareVersion: '1.0.0',
    capabilities: { onboardKeygen: true, keyInjection: false, curves: ['P-256'] },
    state: { hasKey: true, certificateSha256: null, locked: true },
  });

  for (const [id, ek] of [
    ['tpm2-ecc-ek', 'eccP256'],
    ['tpm2-rsa-ek', 'rsa2048'],
  ] as const) {
    it(`${id}: identify, measure, key, attest, install, lock, zeroize`, async () => {
      const p = await profile(id);
      const trusted = await verifyEkCertificate(made.ekCerts[ek]!, roots, new Date());
      if (!trusted.ok) throw new Error(trusted.error.message);
      const chipId = await chipIdOf(trusted.value.spki);
      expect(chipId).toMatch(/^[0-9a-f]{32}$/);

      // identify: the claim's state is not trusted, the TPM's is read
      const idr = await tpm2Driver.identify(ctx(p), claim(chipId));
      if (!idr.ok) throw new Error(idr.error.message);
      const identity = idr.value.identity;
      expect(identity.state).toEqual({ hasKey: false, certificateSha256: null, locked: false });
      const wrong = await tpm2Driver.identify(ctx(p), claim('00'.repeat(16)));
      expect(!wrong.ok && wrong.error.code).toBe('BOARD_IDENTITY_INVALID');

      // measure
      const m = await tpm2Driver.measure(ctx(p), identity);
      if (!m.ok) throw new Error(`${m.error.code} ${m.error.message}`);
      expect(m.value.verdict).toEqual({ pass: true, violations: [] });
      expect(Object.keys(m.value.measurements as Record<string, unknown>)).toEqual(['pcrBank', 'pcrs', 'quote', 'ak']);
      const runData: RunData = { driver: { ...m.value.checkpoint } };

      // key: new, then found again (one identity)
      const k = await tpm2Driver.key(ctx(p, runData), identity);
      if (!k.ok) throw new Error(`${k.error.code} ${k.error.message}`);
      expect(k.value.created?.mode).toBe('onboard');
      const again = await tpm2Driver.key(ctx(p, runData), identity);
      if (!again.ok) throw new Error(again.error.message);
      expect(toBase64Url(again.value.key)).toBe(toBase64Url(k.value.key));
      const withKey: RunData = {
        ...runData,
        key: k.value.created!,
        driver: { ...runData.driver, ...k.value.checkpoint },
      };
      const same = await tpm2Driver.key(ctx(p, withKey), identity);
      expect(same.ok && same.value.created).toBe(null);

      // attest
      const nonce = globalThis.crypto.getRandomValues(new Uint8Array(32));
      const a = await tpm2Driver.attest(ctx(p, withKey), {
        identity,
        nonce,
        bound: k.value,
        measurementsSha256: m.value.measurementsSha256,
      });
      if (!a.ok) throw new Error(`${a.error.code} ${a.error.message}`);
      expect(AttestationEvidenceRecordSchema.safeParse(a.value.evidence).success).toBe(true);
      expect(a.value.leafSha256).toBe(await sha256Hex(made.ekCerts[ek]!));
      expect(a.value.evidence.nonce).toBe(toBase64Url(nonce));

      // install, read back through identify, lock, zeroize
      const cert = roots[1]!;
      const inst = await tpm2Driver.install(ctx(p, withKey), identity, [cert]);
      expect(inst.ok && inst.value.certificateSha256).toBe(await sha256Hex(cert));
      const lk = await tpm2Driver.lock(ctx(p, withKey), identity);
      expect(lk.ok).toBe(true);
      expect((await tpm2Driver.lock(ctx(p, withKey), identity)).ok).toBe(true);
      const back = await tpm2Driver.identify(ctx(p), claim(chipId));
      expect(back.ok && back.value.identity.state).toEqual({
        hasKey: true,
        certificateSha256: await sha256Hex(cert),
        locked: true,
      });
      const other = await tpm2Driver.install(ctx(p, withKey), identity, [roots[0]!]);
      expect(!other.ok && other.error.code).toBe('BOARD_LOCKED');
      const z = await tpm2Driver.zeroize(ctx(p), identity);
      expect(z.ok).toBe(true);
      const clean = await tpm2Driver.identify(ctx(p), claim(chipId));
      expect(clean.ok && clean.value.identity.state).toEqual({ hasKey: false, certificateSha256: null, locked: false });
      // the run's key is gone from the TPM: never silently replaced
      const gone = await tpm2Driver.key(ctx(p, withKey), identity);
      expect(!gone.ok && gone.error.code).toBe('ATTEST_KEY_MISMATCH');
      expect(fromBase64Url(withKey.key!.publicKeySpki).length).toBeGreaterThan(0);
    }, 120_000);
  }

  it('PCRs other than the work order expects: a failing verdict naming each PCR (rule pcr.value)', async () => {
    const p = await profile('tpm2-ecc-ek');
    const trusted = await verifyEkCertificate(made.ekCerts.eccP256!, roots, new Date());
    if (!trusted.ok) throw new Error(trusted.error.message);
    const identity = claim(await chipIdOf(trusted.value.spki));
    const m = await tpm2Driver.measure(ctx(p, {}, roots, demoOrder), identity);
    if (!m.ok) throw new Error(m.error.message);
    expect(m.value.verdict.pass).toBe(false);
    expect(m.value.verdict.violations.map((v) => `${v.rule} ${v.message.split(' ')[1]}`)).toEqual([
      'pcr.value 0',
      'pcr.value 4',
      'pcr.value 7',
    ]);
  });

  it('credential answered by another TPM (a relay with a second TPM): ATTEST_TPM_ACTIVATION_FAILED', async () => {
    // The relay keeps the second TPM in step (same objects at the same handles) and lets it answer the policy
    // session and TPM2_ActivateCredential: it has an EK and an IAK, but not the EK the credential was made for.
    const other = await startSwtpm({ dir: rogue.dir });
    try {
      const cc = (c: Uint8Array): number => new DataView(c.buffer, c.byteOffset).getUint32(6);
      const both = new Set([0x131, 0x165]); // CreatePrimary, FlushContext
      const toOther = new Set([0x176, 0x151, 0x147]); // StartAuthSession, PolicySecret, ActivateCredential
      const relay = (command: Uint8Array, opts?: { signal?: AbortSignal; timeoutMs?: number }) => {
        const code = cc(command);
        if (toOther.has(code)) return other.transmit(command, opts);
        if (both.has(code)) return other.transmit(command, opts).then(() => tpm.transmit(command, opts));
        return tpm.transmit(command, opts);
      };
      const p = await profile('tpm2-ecc-ek');
      const trusted = await verifyEkCertificate(made.ekCerts.eccP256!, roots, new Date());
      if (!trusted.ok) throw new Error(trusted.error.message);
      const c = { ...ctx(p), board: { tpmTransmit: relay } as unknown as BoardClient };
      const m = await tpm2Driver.measure(c, claim(await chipIdOf(trusted.value.spki)));
      expect(!m.ok && m.error.code).toBe('ATTEST_TPM_ACTIVATION_FAILED');
      // The genuine TPM answers the same credential (the relay was the only difference).
      const good = await tpm2Driver.measure(ctx(p), claim(await chipIdOf(trusted.value.spki)));
      expect(good.ok).toBe(true);
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('an EK certificate from another vendor CA: ATTEST_CHAIN_INVALID', async () => {
    const p = await profile('tpm2-ecc-ek');
    const rogueRoots = [
      new Uint8Array(await readFile(rogue.ca.rootCertDer)),
      new Uint8Array(await readFile(rogue.ca.issuerCertDer)),
    ];
    const r = await tpm2Driver.identify(ctx(p, {}, rogueRoots), claim('00'.repeat(16)));
    expect(!r.ok && r.error.code).toBe('ATTEST_CHAIN_INVALID');
  });

  it('reports its TPM steps as notes', () => {
    for (const s of ['EK certificate', 'credential activated', 'quote over PCRs', 'IDevID', 'TPM2_Certify', 'NV'])
      expect(
        notes.some((n) => n.includes(s)),
        s,
      ).toBe(true);
  });
});
