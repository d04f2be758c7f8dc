/**
 * docs/formats.md "Independent verification", followed by a third party: test/verifier/lsverify.py (Python standard
 * library + the openssl CLI, no code of ours) verifies what a real station made (SoftHSM2, simulator boards on ptys,
 * SQLite), read the documented way:
 *
 * - the root is pinned by its fingerprint, taken out of band with openssl on the station machine;
 * - records and failing boards' manifests are read from station.db with `sqlite3 'file:…?mode=ro'` while the station
 *   runs, and with `immutable=1` once it stopped: no byte of station.db or station.db-wal changes, writes are refused;
 * - a record made under a registry policy with a certificate profile override (format v3): its JWS, x5c to the pinned
 *   root, the certificate against the issuing chain in x5c, the manifest JWS rebuilt from the record's header, the
 *   policy digest (the policy JWS payload bytes) and the effective certificate profile digest (the board profile with
 *   the override applied); v2 and v3 records of a fixture station (v2: `chain` PEM strings, `manifest.jws`);
 * - a failing board's manifest: the verdict's violations, expected/actual, re-derived from the manifest's own policy
 *   and measurements;
 * - canonical JSON: the verifier's own RFC 8785 implementation reproduces every signed payload byte for byte, and
 *   passes RFC 8785's test vectors (the same ones core/canonical.test.ts runs against canonicalJson);
 * - the receipt file `registry import` writes (the registry CLI in its own process), verified with registry.pem.
 * Attacks: a modified record, another root, a wrong fingerprint, a modified receipt are refused; so are v3 records with
 * a manifest signed by another key or changed after signing, signed over another issuing chain, or with a `chain`.
 */
import 'reflect-metadata';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8 } from '../../core/bytes.js';
import { POLICY_SCHEMA, POLICY_TYP } from '../../core/hq/policy.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { signJws } from '../../core/pki/jws.js';
import { toPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { createTestStation, makeRecord } from '../../testkit/registry/fixtures.js';
import { canonicalJson } from '../../core/canonical.js';
import { RECORD_SCHEMA_V3, RECORD_TYP, type ProvisioningRecord } from '../../core/provisioning/record.js';
import { createWorld, type World } from '../harness.js';
import { registry, st } from './anchor-fixture.js';

const ROOT = join(import.meta.dirname, '..', '..');
const VERIFIER = join(ROOT, 'test', 'verifier', 'lsverify.py');
const VECTORS = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'jcs', 'rfc8785-vectors.json'), 'utf8')) as {
  numbers: [string, string][];
  documents: { name: string; input: string; output: string }[];
  invalid: { name: string; input: string }[];
};
const WO = 'WO-DEMO-1';
const GOOD = 0;
const TAMPERED = 1;
const OVERRIDE = {
  validityDays: 40,
  organization: 'Verifier Test Org',
  extendedKeyUsage: ['clientAuth', 'serverAuth'],
};

let w: World;
let db: string;
let rootPem: string;
let rootSha256: string;
let policyFile: string;

/** The verifier; its JSON answer and exit code. */
function verify(...args: string[]): { code: number; out: { ok: boolean; error?: string } & Record<string, unknown> } {
  const r = spawnSync('python3', [VERIFIER, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 2 || !r.stdout.trim()) throw new Error(`lsverify: ${r.stderr}`);
  return { code: r.status ?? -1, out: JSON.parse(r.stdout) as never };
}

/** The documented read-only sqlite3 command (one column, one value per line). */
function sqliteRo(uri: string, sql: string): string[] {
  const out = execFileSync('sqlite3', [uri, sql], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '');
}

/** SHA-256 of station.db and station.db-wal (and which files of the database exist). */
function dbState(): Record<string, string> {
  const s: Record<string, string> = {};
  for (const n of readdirSync(w.dataDir)
    .filter((n) => n.startsWith('station.db'))
    .sort())
    s[n] = n.endsWith('-shm')
      ? 'present'
      : createHash('sha256')
          .update(readFileSync(join(w.dataDir, n)))
          .digest('hex');
  return s;
}

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE', faults: { badFirmware: true } }] });
  db = join(w.dataDir, 'station.db');
  // A registry policy with a certificate profile override for ls-sim-se, signed with a registry key the station was
  // enrolled with (as GET /v1/policy answers; the registry signs canonical JSON).
  const signer = await createTestSigner('P-256');
  const cert = await createRootCertificate({
    signer,
    subject: { commonName: 'Registry' },
    validityDays: 30,
    clock: systemClock,
  });
  if (!cert.ok) throw new Error(cert.error.message);
  writeFileSync(join(w.dir, 'policy-registry.pem'), toPem(cert.value, 'CERTIFICATE'));
  const en = await st(w, 'enroll', '--registry-cert', join(w.dir, 'policy-registry.pem'));
  if (en.code !== 0) throw new Error(en.out);
  await w.reopen();
  const payload = {
    schema: POLICY_SCHEMA,
    registryId: 'registry-test',
    version: 3,
    issuedAt: new Date().toISOString(),
    revokedStations: [],
    revokedOperators: [],
    blocked: { serials: [], chipIds: [] },
    firmware: {},
    profileOverrides: { 'ls-sim-se': OVERRIDE },
  };
  const jws = await signJws({ signer, payload: utf8(canonicalJson(payload)), header: { typ: POLICY_TYP } });
  if (!jws.ok) throw new Error(jws.error.message);
  policyFile = join(w.dir, 'policy.jws');
  writeFileSync(policyFile, jws.value);
  const applied = await w.engine.lifecycle.applyPolicy(jws.value);
  if (!applied.ok) throw new Error(applied.error.message);

  const good = await w.engine.provision({ port: w.sim.ports[GOOD]!, workOrder: WO, operator: 'op-1' });
  if (!good.ok || good.value.status !== 'provisioned') throw new Error(`provision: ${JSON.stringify(good)}`);
  const bad = await w.engine.provision({ port: w.sim.ports[TAMPERED]!, workOrder: WO, operator: 'op-1' });
  if (bad.ok || bad.error.code !== 'POLICY_VIOLATION') throw new Error(`tampered board: ${JSON.stringify(bad)}`);

  // Out of band, on the station machine: the root's fingerprint (docs/formats.md "Which root to pin").
  rootPem = join(w.dataDir, 'pki', 'root.pem');
  const fp = execFileSync('openssl', ['x509', '-in', rootPem, '-noout', '-fingerprint', '-sha256'], {
    encoding: 'utf8',
  });
  rootSha256 = fp.split('=')[1]!.trim();
}, 180_000);

afterAll(async () => {
  await w?.teardown();
});

describe('an independent verifier, from docs/formats.md alone', () => {
  it("the verifier's own JCS passes RFC 8785's test vectors", () => {
    const nums = spawnSync('python3', [VERIFIER, 'jcs-number', ...VECTORS.numbers.map(([hex]) => hex)], {
      encoding: 'utf8',
    });
    expect(nums.stdout.split('\n').slice(0, -1)).toEqual(VECTORS.numbers.map(([, want]) => want));
    for (const d of VECTORS.documents) {
      const r = spawnSync('python3', [VERIFIER, 'jcs'], { input: d.input });
      expect(r.stdout.toString('utf8'), d.name).toBe(d.output);
    }
    for (const d of VECTORS.invalid) {
      const r = spawnSync('python3', [VERIFIER, 'jcs'], { input: d.input, encoding: 'utf8' });
      expect(r.status, d.name).toBe(1);
    }
  });

  it('reads station.db read-only while the station runs: records and failed runs; no byte of db or WAL changes', () => {
    const uri = `file:${db}?mode=ro`;
    const before = dbState();
    expect(Object.keys(before)).toEqual(['station.db', 'station.db-shm', 'station.db-wal']);
    const records = sqliteRo(uri, 'SELECT jws FROM records');
    expect(records).toHaveLength(1);
    writeFileSync(join(w.dir, 'record.jws'), records[0]!);
    const failed = sqliteRo(
      uri,
      "SELECT json_extract(data_json, '$.manifest.jws') FROM runs WHERE state = 'failed' AND json_extract(data_json, '$.manifest.pass') = 0",
    );
    expect(failed).toHaveLength(1);
    writeFileSync(join(w.dir, 'failed-manifest.jws'), failed[0]!);
    // The failed run: its error and the baseline audit entry (rule names and the measurements digest).
    expect(sqliteRo(uri, "SELECT json_extract(error_json, '$.code'), step FROM runs WHERE state = 'failed'")).toEqual([
      'POLICY_VIOLATION|baseline',
    ]);
    const audit = sqliteRo(
      uri,
      "SELECT a.payload_json FROM audit_log a JOIN runs r ON r.run_id = a.run_id WHERE r.state = 'failed' AND a.type = 'step.baseline'",
    );
    expect(JSON.parse(audit[0]!)).toMatchObject({ pass: false, violations: ['firmware.digest'] });
    // The policy digest of the record is also the `policy.applied` audit entry's.
    const applied = sqliteRo(
      uri,
      "SELECT json_extract(payload_json, '$.sha256') FROM audit_log WHERE type = 'policy.applied'",
    );
    const payloadBytes = Buffer.from(readFileSync(policyFile, 'utf8').split('.')[1]!, 'base64url');
    expect(applied).toEqual([createHash('sha256').update(payloadBytes).digest('hex')]);
    expect(sqliteRo(uri, "SELECT jws FROM lifecycle_documents WHERE kind = 'policy'")).toEqual([
      readFileSync(policyFile, 'utf8'),
    ]);
    // A write through the documented connection is refused.
    const write = spawnSync('sqlite3', [uri, "UPDATE runs SET step = 'x'"], { encoding: 'utf8' });
    expect(write.status).not.toBe(0);
    expect(write.stderr).toMatch(/readonly/);
    expect(dbState()).toEqual(before);
  });

  it('verifies the record (v3): pinned root, JWS, issuing chain in x5c, certificate, rebuilt manifest, policy and profile', () => {
    const r = verify(
      'record',
      ...['--jws', join(w.dir, 'record.jws'), '--root', rootPem, '--root-sha256', rootSha256],
      ...['--profile', join(ROOT, 'resources', 'boards', 'ls-sim-se.json'), '--policy', policyFile],
    );
    expect(r.out.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(r.out['checked']).toEqual([
      'root',
      'jws',
      'canonical',
      'chain',
      'certificate',
      'key',
      'manifest',
      'certificateProfile',
      'policy',
    ]);
    expect(r.out['serialNumber']).toBe(w.sim.boards[GOOD]!.serialNumber);
    // The record names the override it applied (so the digest check above used it).
    const payload = JSON.parse(
      Buffer.from(readFileSync(join(w.dir, 'record.jws'), 'utf8').split('.')[1]!, 'base64url').toString('utf8'),
    ) as { schema: string; policy: { version: number; profileOverride: unknown }; chain?: string[] };
    expect(payload.policy).toMatchObject({ version: 3, profileOverride: OVERRIDE });
    // Format v3: the issuing chain is x5c after the station certificate, the manifest rebuilt from the record header.
    expect(r.out['schema']).toBe('line-station/provisioning-record/v3');
    expect(payload.chain).toBeUndefined();
  });

  it('verifies v2 and v3 records of another station; refuses v3 records whose manifest or chain was changed', async () => {
    const A = await createTestStation('verifier-fixture', systemClock);
    const root = join(w.dir, 'fixture-root.pem');
    writeFileSync(root, toPem(A.chain[2]!, 'CERTIFICATE'));
    const fp = execFileSync('openssl', ['x509', '-in', root, '-noout', '-fingerprint', '-sha256'], {
      encoding: 'utf8',
    })
      .split('=')[1]!
      .trim();
    const check = (name: string, jws: string) => {
      writeFileSync(join(w.dir, name), jws);
      return verify('record', '--jws', join(w.dir, name), '--root', root, '--root-sha256', fp);
    };
    for (const format of ['v2', 'v3'] as const) {
      const made = await makeRecord(A, systemClock, { format });
      const r = check(`fixture-${format}.jws`, made.jws);
      expect(r.out.error).toBeUndefined();
      expect(r.out).toMatchObject({ ok: true, schema: `line-station/provisioning-record/${format}` });
    }
    const other = await createTestSigner('P-256');
    const otherManifest = check(
      'v3-other-manifest.jws',
      (await makeRecord(A, systemClock, { manifestSigner: other })).jws,
    );
    expect(otherManifest.code).toBe(1);
    expect(otherManifest.out.error).toMatch(/signature/);
    const changed = await makeRecord(A, systemClock, {
      mutate: (r) => {
        if (r.schema !== RECORD_SCHEMA_V3) throw new Error('a v3 record expected');
        const payload = { ...r.manifest.payload, capturedAt: '2020-01-01T00:00:00.000Z' };
        return { ...r, manifest: { ...r.manifest, payload } } as ProvisioningRecord;
      },
    });
    const changedOut = check('v3-changed-manifest.jws', changed.jws);
    expect(changedOut.code).toBe(1);
    expect(changedOut.out.error).toMatch(/signature/);
    // Signed over another issuing chain (the manifest too): the chain does not end at the pinned root.
    const twin = await createTestStation('verifier-fixture', systemClock);
    const swapped = check(
      'v3-other-chain.jws',
      (await makeRecord(A, systemClock, { x5c: [A.chain[0]!, ...twin.chain.slice(1)] })).jws,
    );
    expect(swapped.code).toBe(1);
    expect(swapped.out.error).toMatch(/pinned root/);
    // A v3 record with a chain member (mixing the formats): refused.
    const base = await makeRecord(A, systemClock);
    const mixed = await signJws({
      signer: A.signer,
      payload: utf8(canonicalJson({ ...base.record, chain: [toPem(A.chain[1]!, 'CERTIFICATE')] })),
      header: { typ: RECORD_TYP, x5c: A.chain },
    });
    if (!mixed.ok) throw new Error(mixed.error.message);
    const mixedOut = check('v3-mixed.jws', mixed.value);
    expect(mixedOut.code).toBe(1);
    expect(mixedOut.out.error).toMatch(/chain member/);
  });

  it("verifies a failing board's manifest: violations with expected/actual re-derived from its policy", () => {
    const r = verify(
      'manifest',
      ...['--jws', join(w.dir, 'failed-manifest.jws'), '--root', rootPem, '--root-sha256', rootSha256],
    );
    expect(r.out.error).toBeUndefined();
    expect(r.out).toMatchObject({ ok: true, pass: false, rules: ['firmware.digest'] });
    expect(r.out['serialNumber']).toBe(w.sim.boards[TAMPERED]!.serialNumber);
  });

  it('refuses a modified record, a wrong fingerprint and another root', () => {
    const jws = readFileSync(join(w.dir, 'record.jws'), 'utf8');
    const [h, p, s] = jws.split('.') as [string, string, string];
    const text = Buffer.from(p, 'base64url')
      .toString('utf8')
      .replace('"outcome":"provisioned"', '"outcome":"provisioned" ');
    writeFileSync(join(w.dir, 'modified.jws'), `${h}.${Buffer.from(text).toString('base64url')}.${s}`);
    const base = ['--root', rootPem, '--root-sha256', rootSha256];
    const modified = verify('record', '--jws', join(w.dir, 'modified.jws'), ...base);
    expect(modified.code).toBe(1);
    expect(modified.out.error).toMatch(/signature does not verify|not canonical/);
    const wrongFp = verify(
      'record',
      '--jws',
      join(w.dir, 'record.jws'),
      '--root',
      rootPem,
      '--root-sha256',
      'ab'.repeat(32),
    );
    expect(wrongFp.code).toBe(1);
    expect(wrongFp.out.error).toMatch(/not the pinned/);
    // Another station's root, pinned correctly: the record does not chain to it.
    const otherRoot = join(w.dir, 'policy-registry.pem');
    const otherFp = execFileSync('openssl', ['x509', '-in', otherRoot, '-noout', '-fingerprint', '-sha256'], {
      encoding: 'utf8',
    })
      .split('=')[1]!
      .trim();
    const other = verify('record', '--jws', join(w.dir, 'record.jws'), '--root', otherRoot, '--root-sha256', otherFp);
    expect(other.code).toBe(1);
    expect(other.out.error).toMatch(/pinned root/);
  });

  it('verifies the receipt file `registry import` writes, with registry.pem; a modified receipt is refused', async () => {
    const reg = join(w.dir, 'registry');
    expect((await registry(reg, 'init', '--registry-id', 'hq-verifier')).code).toBe(0);
    const en = await registry(
      reg,
      'enroll-station',
      '--id',
      'test-station',
      '--chain',
      join(w.dataDir, 'pki/station-chain.pem'),
    );
    expect(en.code, en.out).toBe(0);
    const se = await st(w, 'enroll', '--registry-cert', join(reg, 'registry.pem'));
    expect(se.code, se.out).toBe(0);
    const bundle = join(w.dir, 'out.bundle.jws');
    const ex = await st(w, 'export', '--out', bundle);
    expect(ex.code, ex.out).toBe(0);
    const receipt = join(w.dir, 'out.receipt.jws');
    const im = await registry(reg, 'import', bundle, '--out', receipt);
    expect(im.code, im.out).toBe(0);
    const [recordId, recordSha256] = sqliteRo(
      `file:${db}?mode=ro`,
      'SELECT record_id, record_sha256 FROM records',
    )[0]!.split('|');
    const recordPayload = Buffer.from(readFileSync(join(w.dir, 'record.jws'), 'utf8').split('.')[1]!, 'base64url');
    expect(recordSha256).toBe(createHash('sha256').update(recordPayload).digest('hex'));
    const r = verify(
      'receipt',
      '--file',
      receipt,
      '--registry-cert',
      join(reg, 'registry.pem'),
      '--station',
      'test-station',
    );
    expect(r.out.error).toBeUndefined();
    expect(r.out).toMatchObject({ ok: true, accepted: [{ recordId, sha256: recordSha256 }], rejected: 0 });
    const text = readFileSync(receipt, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const [h, p, s] = text.trim().split('.') as [string, string, string];
    const forged = Buffer.from(p, 'base64url').toString('utf8').replace('"rejected":[]', '"rejected":[ ]');
    writeFileSync(join(w.dir, 'forged.receipt.jws'), `${h}.${Buffer.from(forged).toString('base64url')}.${s}\n`);
    const bad = verify(
      'receipt',
      '--file',
      join(w.dir, 'forged.receipt.jws'),
      '--registry-cert',
      join(reg, 'registry.pem'),
    );
    expect(bad.code).toBe(1);
  }, 120_000);

  it('reads station.db with immutable=1 once the station stopped: no file created, no byte changed', async () => {
    await w.engine.close();
    const wal = join(w.dataDir, 'station.db-wal');
    // A station that stopped cleanly leaves no WAL content behind (what immutable=1 would not see).
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);
    const before = dbState();
    const n = sqliteRo(`file:${db}?immutable=1`, "SELECT count(*) FROM runs WHERE state = 'failed'");
    expect(n).toEqual(['1']);
    expect(sqliteRo(`file:${db}?immutable=1`, 'SELECT count(*) FROM records')).toEqual(['1']);
    expect(dbState()).toEqual(before);
    // Why the docs say not to use mode=ro on a stopped station: it creates the WAL and its index.
    expect(sqliteRo(`file:${db}?mode=ro`, 'SELECT count(*) FROM records')).toEqual(['1']);
    expect(Object.keys(dbState())).toEqual(['station.db', 'station.db-shm', 'station.db-wal']);
  });
});
