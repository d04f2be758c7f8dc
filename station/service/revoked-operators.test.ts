/**
 * Operators revoked by headquarters (the signed registry policy's `revokedOperators`) against a real station service
 * (SoftHSM2, SQLite, the policy signed with the registry key pinned at `station enroll`): sign-in is refused, and so
 * must be everything else a revoked operator or supervisor could still do at the station:
 *
 * - a revoked supervisor's PIN must not elevate an operator session (supervisor functions, override approvals);
 * - a session or an elevation granted BEFORE the policy arrived must stop working once it is in force.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResult } from '../../core/api.js';
import { utf8 } from '../../core/bytes.js';
import { signJws } from '../../core/pki/jws.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { systemClock, type Signer } from '../../core/ports.js';
import { createWorld, type World } from '../../test/harness.js';
import { addOperators } from '../../test/operators-fixture.js';
import { main } from '../cli/program.js';
import { POLICY_SCHEMA, POLICY_TYP } from '../../core/hq/policy.js';
import { call, createStationService, type StationService } from './index.js';

const OP_PIN = '2468';
const SUP_PIN = '135790';
let w: World;
let registry: Signer;
let svc: StationService;
let version = 0;

const code = (r: ApiResult<unknown>): string => (r.ok ? 'ok' : r.error.code);

/** Apply a registry policy (signed with the pinned registry key) revoking these operator ids. */
async function revoke(...ids: string[]): Promise<void> {
  const now = new Date().toISOString();
  const payload = {
    schema: POLICY_SCHEMA,
    registryId: 'registry-test',
    version: ++version,
    issuedAt: now,
    revokedStations: [],
    revokedOperators: ids.map((operatorId) => ({ operatorId, reason: 'left the company', revokedAt: now })),
    blocked: { serials: [], chipIds: [] },
    firmware: {},
    profileOverrides: {},
  };
  const jws = must(
    await signJws({ signer: registry, payload: utf8(JSON.stringify(payload)), header: { typ: POLICY_TYP } }),
  );
  must(await w.engine.lifecycle.applyPolicy(jws));
}

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  registry = await createTestSigner('P-256');
  const cert = must(
    await createRootCertificate({
      signer: registry,
      subject: { commonName: 'Registry' },
      validityDays: 30,
      clock: systemClock,
    }),
  );
  const pem = join(w.dir, 'registry.pem');
  writeFileSync(pem, toPem(cert, 'CERTIFICATE'));
  const out: string[] = [];
  const enrolled = await main(['enroll', '--data-dir', w.dataDir, '--registry-cert', pem], {
    out: (s) => out.push(s),
    err: (s) => out.push(s),
  });
  expect(enrolled, out.join('\n')).toBe(0);
  await w.reopen();
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: OP_PIN },
    { id: 'sup-gone', role: 'supervisor', pin: SUP_PIN },
    { id: 'sup-late', role: 'supervisor', pin: SUP_PIN },
    { id: 'op-late', role: 'operator', pin: OP_PIN },
  ]);
  svc = createStationService({ engine: w.engine, logger: w.logger });
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await w?.teardown();
});

describe('operators revoked by the registry policy', () => {
  it("a revoked supervisor's PIN does not elevate an operator session", async () => {
    await revoke('sup-gone');
    expect(code(await svc.invoke('c-sup', 'signIn', { operatorId: 'sup-gone', pin: SUP_PIN }))).toBe('AUTH_REVOKED');
    must(await call(svc, 'c-op', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    expect(code(await svc.invoke('c-op', 'elevate', { operatorId: 'sup-gone', pin: SUP_PIN }))).toBe('AUTH_REVOKED');
    const st = must(await call(svc, 'c-op', 'getStatus', {}));
    expect(st.session?.supervisor).toBeNull();
    // Supervisor functions and override approvals stay closed to this session.
    expect(code(await svc.invoke('c-op', 'queryLog', {}))).toBe('AUTH_FORBIDDEN');
    expect(
      code(
        await svc.invoke('c-op', 'approveOverride', {
          kind: 'reprovision',
          port: w.sim.ports[0]!,
          reason: 'rework approved by a revoked supervisor',
        }),
      ),
    ).toBe('AUTH_FORBIDDEN');
  });

  it('sessions and elevations granted before the revocation stop working once the policy is in force', async () => {
    must(await call(svc, 'c-late-sup', 'signIn', { operatorId: 'sup-late', pin: SUP_PIN }));
    must(await call(svc, 'c-late-op', 'signIn', { operatorId: 'op-late', pin: OP_PIN }));
    must(await call(svc, 'c-op', 'elevate', { operatorId: 'sup-late', pin: SUP_PIN }));
    must(await call(svc, 'c-op', 'queryLog', {}));
    await revoke('sup-gone', 'sup-late', 'op-late');

    // The revoked supervisor's own session: ended, nothing more works.
    expect(code(await svc.invoke('c-late-sup', 'queryLog', {}))).toBe('AUTH_REVOKED');
    expect(must(await call(svc, 'c-late-sup', 'getStatus', {})).session).toBeNull();
    expect(code(await svc.invoke('c-late-sup', 'getSlots', {}))).toBe('AUTH_REQUIRED');
    // A revoked operator's session: ended too.
    expect(code(await svc.invoke('c-late-op', 'getSlots', {}))).toBe('AUTH_REVOKED');
    expect(must(await call(svc, 'c-late-op', 'getStatus', {})).session).toBeNull();
    // The elevation the revoked supervisor granted: withdrawn, the operator's own session goes on.
    expect(
      code(
        await svc.invoke('c-op', 'approveOverride', {
          kind: 'reprovision',
          port: w.sim.ports[0]!,
          reason: 'rework approved by a revoked supervisor',
        }),
      ),
    ).toBe('AUTH_REVOKED');
    expect(code(await svc.invoke('c-op', 'queryLog', {}))).toBe('AUTH_FORBIDDEN');
    expect(must(await call(svc, 'c-op', 'getStatus', {})).session?.supervisor).toBeNull();
    expect(must(await call(svc, 'c-op', 'getStatus', {})).session?.operatorId).toBe('op-1');
    expect(code(await svc.invoke('c-op', 'getSlots', {}))).toBe('ok');
  });

  it('`station operator revoke` ends the session of that operator in the running service', async () => {
    must(await call(svc, 'c-local', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    const out: string[] = [];
    const r = await main(['operator', 'revoke', '--data-dir', w.dataDir, '--id', 'op-1'], {
      out: (s) => out.push(s),
      err: (s) => out.push(s),
    });
    expect(r, out.join('\n')).toBe(0);
    expect(code(await svc.invoke('c-local', 'getSlots', {}))).toBe('AUTH_REVOKED');
    expect(code(await svc.invoke('c-op', 'getSlots', {}))).toBe('AUTH_REVOKED'); // the same operator in another client
    expect(code(await svc.invoke('c-op', 'getSlots', {}))).toBe('AUTH_REQUIRED');
    expect(must(await call(svc, 'c-local', 'getStatus', {})).session).toBeNull();
  });
});
