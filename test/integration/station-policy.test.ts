/**
 * The registry policy's certificate profile and station revocation, applied by a real station (SoftHSM2,
 * simulator ptys, SQLite) to policies signed with a registry receipt key (the certificate configured by
 * `station enroll --registry-cert`, as in production):
 *
 * - a policy with an invalid profile override is refused and the one in force stays;
 * - device certificates carry the override of the policy in force when the run started (checked with openssl),
 *   also when the run is resumed after a newer policy arrived; without an override, the board profile's values;
 *   the record names the policy version, the override and the effective profile's digest.
 *
 * Station revocation is tested through real pulls from a running registry in station-revocation.test.ts.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { applyProfileOverride } from '../../core/pki/device-cert.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { systemClock, type BoardClient, type Signer } from '../../core/ports.js';
import { ProvisioningRecordSchema } from '../../core/provisioning/record.js';
import { main } from '../../station/cli/program.js';
import { POLICY_SCHEMA, POLICY_TYP, type PolicyPayload } from '../../core/hq/policy.js';
import { createWorld, type World } from '../harness.js';

const WO = 'WO-DEMO-1';
const OVERRIDE = {
  validityDays: 30,
  organization: 'Override Org',
  extendedKeyUsage: ['serverAuth', 'clientAuth'] as Array<'serverAuth' | 'clientAuth'>,
};
let w: World;
let signer: Signer;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-3000)}`);
  return r.value;
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const provision = (i: number, instrumentBoard?: (b: BoardClient) => BoardClient) =>
  w.engine.provision({
    port: w.sim.ports[i]!,
    workOrder: WO,
    operator: 'op-1',
    ...(instrumentBoard ? { instrumentBoard } : {}),
  });

/** A policy signed with the registry key (typ line-station-policy+jws), like GET /v1/policy answers. */
async function policy(version: number, over: Partial<PolicyPayload> & Record<string, unknown> = {}): Promise<string> {
  const payload = {
    schema: POLICY_SCHEMA,
    registryId: 'registry-test',
    version,
    issuedAt: new Date().toISOString(),
    revokedStations: [],
    revokedOperators: [],
    blocked: { serials: [], chipIds: [] },
    firmware: {},
    profileOverrides: {},
    ...over,
  };
  return must(await signJws({ signer, payload: utf8(JSON.stringify(payload)), header: { typ: POLICY_TYP } }));
}

/** openssl's view of a device certificate (an independent parser). */
function openssl(pem: string): { text: string; days: number } {
  const f = join(w.dir, `cert-${Math.random().toString(16).slice(2)}.pem`);
  writeFileSync(f, pem);
  const r = spawnSync('openssl', ['x509', '-in', f, '-noout', '-dates', '-subject', '-ext', 'extendedKeyUsage'], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  const nb = /notBefore=(.+)/.exec(r.stdout)![1]!;
  const na = /notAfter=(.+)/.exec(r.stdout)![1]!;
  return { text: r.stdout, days: (Date.parse(na) - Date.parse(nb)) / 86_400_000 };
}

function recordOf(i: number) {
  const rec = w.engine.store.findCurrentRecord(w.sim.state(i).chipId)!;
  expect(rec).toBeTruthy();
  const json = JSON.parse(rec.recordJson) as Record<string, unknown> & {
    certificate: { pem: string };
    policy?: { version: number | null; profileOverride: unknown; certificateProfileSha256: string; sha256: string };
  };
  expect(ProvisioningRecordSchema.safeParse(json).success).toBe(true);
  return json;
}

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
};

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE', faults: { disconnectOn: 'keygen', replugAfterMs: 300 } },
      { model: 'LS-SIM-SE' },
    ],
  });
  signer = await createTestSigner('P-256');
  const cert = must(
    await createRootCertificate({ signer, subject: { commonName: 'Registry' }, validityDays: 30, clock: systemClock }),
  );
  const pem = join(w.dir, 'registry.pem');
  writeFileSync(pem, toPem(cert, 'CERTIFICATE'));
  const r = await cli(['enroll', '--data-dir', w.dataDir, '--registry-cert', pem]);
  expect(r.code, r.text).toBe(0);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await w?.teardown();
});

describe('station policy: certificate profile', () => {
  const profile = () => w.engine.profiles.find((p) => p.id === 'ls-sim-se')!;

  it('refuses a policy with an invalid profile override; the policy in force stays', async () => {
    const bad = await w.engine.lifecycle.applyPolicy(
      await policy(1, { profileOverrides: { 'ls-sim-se': { validityDays: 0 } } } as never),
    );
    expect(codeOf(bad)).toBe('INPUT_INVALID');
    if (!bad.ok) expect(bad.error.message).toContain('profileOverrides.ls-sim-se.validityDays');
    expect(w.engine.lifecycle.status().policyVersion).toBeNull();

    const reenrollment = { certificateLifetimeSeconds: 2_592_000, rotateBeforeSeconds: 604_800 };
    const ok1 = must(
      await w.engine.lifecycle.applyPolicy(
        await policy(1, { profileOverrides: { 'ls-sim-se': OVERRIDE }, reenrollment }),
      ),
    );
    expect(ok1.outcome).toBe('stored');
    const strict = await w.engine.lifecycle.applyPolicy(
      await policy(2, { reenrollment: { ...reenrollment, extra: 1 } } as never),
    );
    expect(codeOf(strict)).toBe('INPUT_INVALID');
    expect(w.engine.lifecycle.status()).toMatchObject({
      policyVersion: 1,
      profileOverrides: ['ls-sim-se'],
      reenrollment,
    });
    const shown = await cli(['policy', '--data-dir', w.dataDir]);
    expect(shown.text).toContain('certificate profile overrides for ls-sim-se');
    expect(shown.text).toContain('re-enrolment: certificate lifetime 2592000 s, rotate 604800 s before expiry');
  });

  it('issues the device certificate with the override of the policy in force (openssl)', async () => {
    expect(must(await provision(0)).status).toBe('provisioned');
    const rec = recordOf(0);
    const x = openssl(rec.certificate.pem);
    expect(x.days).toBeGreaterThanOrEqual(30);
    expect(x.days).toBeLessThan(31);
    expect(x.text).toMatch(/subject=.*O\s*=\s*Override Org/);
    expect(x.text).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication, TLS Web Client Authentication/);
    const effective = applyProfileOverride(profile().certificate, OVERRIDE);
    expect(rec.policy).toEqual({
      version: 1,
      sha256: await sha256Hex(utf8(w.engine.lifecycle.db.document('policy')!.payloadJson)),
      profileOverride: OVERRIDE,
      certificateProfileSha256: await sha256Hex(canonicalJson(effective)),
    });
  });

  it('a run resumed after a newer policy keeps the policy it started under; new runs take the new one', async () => {
    const chip1 = w.sim.state(1).chipId;
    expect(codeOf(await provision(1))).toBe('LINK_DISCONNECTED');
    expect(w.engine.store.findActiveRun(chip1)!.data['policy']).toMatchObject({ version: 1, override: OVERRIDE });
    // Version 2 drops the override while the run is interrupted.
    expect(must(await w.engine.lifecycle.applyPolicy(await policy(2))).outcome).toBe('stored');
    await waitFor(() => existsSync(w.sim.ports[1]!));
    w.sim.setFaults(1, {});
    const resumed = must(await provision(1));
    expect(resumed).toMatchObject({ status: 'provisioned', resumed: true });
    const r1 = recordOf(1);
    expect(r1.policy).toMatchObject({ version: 1, profileOverride: OVERRIDE });
    const x1 = openssl(r1.certificate.pem);
    expect(x1.text).toContain('Override Org');
    expect(x1.days).toBeLessThan(31);

    // Without an override: the board profile's values (3650 days, its organisation, clientAuth only).
    expect(must(await provision(2)).status).toBe('provisioned');
    const r2 = recordOf(2);
    const x2 = openssl(r2.certificate.pem);
    const cert = profile().certificate;
    expect(Math.floor(x2.days)).toBe(cert.validityDays);
    expect(x2.text).toContain(`O = ${cert.subject.organization!}`);
    expect(x2.text).not.toContain('Override Org');
    expect(x2.text).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Client Authentication\s*$/);
    expect(r2.policy).toMatchObject({
      version: 2,
      profileOverride: null,
      certificateProfileSha256: await sha256Hex(canonicalJson(cert)),
    });
  });
});
