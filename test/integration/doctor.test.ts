/**
 * `station doctor --json` through the real path: a data dir made by `station init` (SoftHSM2 token), the CLI's `main`
 * (and once bin/station.mjs as its own process, PIN on stdin), a real registry on loopback (in-process, SQLite). A
 * healthy station reports every check with a status; then each breakage makes its check fail with its action: the
 * registry stopped, the PIN file readable by others, a wrong PIN, the issuing CA key replaced by an extractable one
 * (made with pkcs11-tool, an independent PKCS#11 client). The PIN never appears in the output.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCTOR_CHECK_IDS, DoctorReportSchema, type DoctorCheck, type DoctorReport } from '../../core/api.js';
import { main } from '../../station/cli/program.js';
import { KEY_LABELS } from '../../station/commission/init.js';
import type { TestStation } from '../../testkit/registry/fixtures.js';
import { startTestRegistry, type TestRegistry } from './sync-fixture.js';

const ROOT_DIR = join(import.meta.dirname, '..', '..');
const base = mkdtempSync(join(tmpdir(), 'ls-doctor-'));
const dataDir = join(base, 'station');
const pinFile = join(dataDir, 'secrets', 'hsm-user.pin');
let registry: TestRegistry;
let pin = '';

async function cli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out, err };
}

/** `station doctor --json`: the exit code and the parsed report (schema-checked). */
async function doctor(): Promise<{ code: number; report: DoctorReport; text: string }> {
  const r = await cli(['doctor', '--json', '--data-dir', dataDir]);
  const text = r.out.join('\n');
  return { code: r.code, report: DoctorReportSchema.parse(JSON.parse(text)), text };
}

const byId = (r: DoctorReport, id: DoctorCheck['id']): DoctorCheck => r.checks.find((c) => c.id === id)!;

function expectWellFormed(code: number, report: DoctorReport, text: string): void {
  expect(report.checks.map((c) => c.id)).toEqual([...DOCTOR_CHECK_IDS]);
  for (const c of report.checks) {
    expect(['pass', 'warn', 'fail', 'skipped']).toContain(c.status);
    expect(c.summary.length).toBeGreaterThan(0);
    if (c.status === 'fail' || c.status === 'warn') expect(c.action, c.id).toBeTruthy();
  }
  expect(report.ok).toBe(report.checks.every((c) => c.status !== 'fail'));
  expect(code).toBe(report.ok ? 0 : 5);
  expect(text).not.toContain(pin);
}

beforeAll(async () => {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=Test Vendor Root', '-keyout', join(base, 'vendor.key'), '-out', join(base, 'vendor-root.pem'),
  ], { stdio: 'ignore' }); // prettier-ignore
  const init = await cli([
    'init',
    '--data-dir',
    dataDir,
    '--station-id',
    'doctor-station',
    '--attestation-root',
    join(base, 'vendor-root.pem'),
  ]);
  if (init.code !== 0) throw new Error(`station init: ${init.err.join('\n')}`);
  pin = readFileSync(pinFile, 'utf8').trim();
  const chainPem = readFileSync(join(dataDir, 'pki', 'station-chain.pem'), 'utf8');
  registry = await startTestRegistry(base, [{ id: 'doctor-station', chainPem } as TestStation]);
}, 120_000);

afterAll(async () => {
  await registry?.close();
  rmSync(base, { recursive: true, force: true });
});

describe('station doctor --json on a data dir made by station init', () => {
  it('reports every check with a status; the station itself passes', async () => {
    const { code, report, text } = await doctor();
    expectWellFormed(code, report, text);
    for (const id of [
      'config',
      'permissions',
      'disk-space',
      'hsm-module',
      'hsm-token',
      'hsm-login',
      'hsm-keys',
      'hsm-mechanisms',
      'certificates',
      'sync-backlog',
    ] as const)
      expect(byId(report, id).status, `${id}: ${byId(report, id).summary}`).toBe('pass');
    expect(byId(report, 'hsm-login').details).toMatchObject({ pinSource: 'file' });
    expect(byId(report, 'hsm-login').summary).toContain(pinFile);
    // The mechanisms were proven by use: signing, and injection for the bundled profile that injects keys.
    const mech = byId(report, 'hsm-mechanisms').details!;
    expect((mech['probes'] as { id: string; present: boolean }[]).map((r) => [r.id, r.present])).toEqual([
      ['ecdsa-sign', true],
      ['key-injection-P-256', true],
    ]);
    // ... and listed by the token (inspectToken's requirement checks).
    const listed = mech['requirements'] as { requirement: string; satisfied: boolean }[];
    expect(listed.filter((r) => r.satisfied).map((r) => r.requirement)).toEqual(
      expect.arrayContaining(['signing-key-p256', 'key-injection']),
    );
    expect(byId(report, 'registry')).toMatchObject({
      status: 'skipped',
      action: expect.stringContaining('station enroll'),
    });
    expect(byId(report, 'clock-skew').status).toBe('skipped');
  }, 60_000);

  it('with the registry enrolled and running: reachable with its pinned certificate, clock in step', async () => {
    const regPem = join(base, 'registry.pem');
    writeFileSync(regPem, registry.certificatePem);
    const e = await cli(['enroll', '--registry', registry.url, '--registry-cert', regPem, '--data-dir', dataDir]);
    expect(e.code, e.err.join('\n')).toBe(0);
    const { code, report, text } = await doctor();
    expectWellFormed(code, report, text);
    expect(byId(report, 'registry').status, byId(report, 'registry').summary).toBe('pass');
    expect(byId(report, 'registry').details).toMatchObject({ registryId: 'registry-test' });
    const skew = byId(report, 'clock-skew');
    expect(skew.status, skew.summary).toBe('pass');
    expect(Math.abs(skew.details?.['skewMs'] as number)).toBeLessThan(2000);
  }, 60_000);

  it('the registry stopped (loopback port closed): registry fails with what to do, clock-skew is skipped', async () => {
    await registry.reg.close();
    try {
      const { code, report, text } = await doctor();
      expectWellFormed(code, report, text);
      const r = byId(report, 'registry');
      expect(r.status).toBe('fail');
      expect(r.details).toMatchObject({ code: 'SYNC_UNREACHABLE' });
      expect(r.action).toBe(
        `start the registry or restore the network to it; check from this machine: curl -sS ${registry.url}/v1/health`,
      );
      expect(byId(report, 'clock-skew').status).toBe('skipped');
      expect(code).toBe(5);
    } finally {
      await registry.restart();
    }
  }, 60_000);

  it('a registry.pem that is not the registry’s: registry fails (another signing certificate)', async () => {
    const cfgFile = join(dataDir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { registry: { certificate: string } };
    const pinned = join(dataDir, cfg.registry.certificate);
    const saved = readFileSync(pinned, 'utf8');
    writeFileSync(pinned, readFileSync(join(base, 'vendor-root.pem'), 'utf8'));
    try {
      const { report } = await doctor();
      const r = byId(report, 'registry');
      expect(r.status).toBe('fail');
      expect(r.summary).toContain('signs with another certificate than the pinned registry.pem');
      expect(r.action).toContain(`station enroll --registry ${registry.url} --registry-cert registry.pem`);
    } finally {
      writeFileSync(pinned, saved);
    }
  }, 60_000);

  it('the PIN file readable by others (0644): permissions and hsm-login fail, naming chmod 600', async () => {
    chmodSync(pinFile, 0o644);
    try {
      const { code, report, text } = await doctor();
      expectWellFormed(code, report, text);
      const p = byId(report, 'permissions');
      expect(p.status).toBe('fail');
      expect(p.summary).toContain(`${pinFile} has mode 0644`);
      expect(p.action).toBe(`chmod 600 ${pinFile}`);
      const l = byId(report, 'hsm-login');
      expect(l).toMatchObject({ status: 'fail', action: `chmod 600 ${pinFile}` });
      expect(byId(report, 'hsm-keys').status).toBe('skipped');
      expect(byId(report, 'certificates').status).toBe('skipped');
      expect(code).toBe(5);
    } finally {
      chmodSync(pinFile, 0o600);
    }
  }, 60_000);

  it('a wrong PIN: hsm-login fails (HSM_PIN_INCORRECT) naming the file to fix; neither PIN is printed', async () => {
    const wrong = '0000deadbeef0000';
    writeFileSync(pinFile, wrong);
    try {
      const { code, report, text } = await doctor();
      expectWellFormed(code, report, text);
      expect(text).not.toContain(wrong);
      const l = byId(report, 'hsm-login');
      expect(l).toMatchObject({ status: 'fail', details: { pinSource: 'file', code: 'HSM_PIN_INCORRECT' } });
      expect(l.action).toContain(`write the token's user PIN as the first line of ${pinFile}`);
      expect(byId(report, 'hsm-module').status).toBe('pass');
      expect(byId(report, 'hsm-token').status).toBe('pass');
      // Listed without a login; not tried by use.
      expect(byId(report, 'hsm-mechanisms').status).toBe('pass');
      expect(byId(report, 'hsm-mechanisms').summary).toContain('not tried by use');
      expect(byId(report, 'hsm-keys').status).toBe('skipped');
    } finally {
      writeFileSync(pinFile, pin);
    }
  }, 60_000);

  it('bin/station.mjs doctor --pin-stdin: the PIN from stdin logs in and the report says so', async () => {
    const child = spawn(
      process.execPath,
      ['bin/station.mjs', 'doctor', '--json', '--pin-stdin', '--data-dir', dataDir],
      {
        cwd: ROOT_DIR,
        stdio: 'pipe',
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end(`${pin}\n`);
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    const report = DoctorReportSchema.parse(JSON.parse(out));
    expectWellFormed(code, report, out);
    expect(byId(report, 'hsm-login')).toMatchObject({ status: 'pass', details: { pinSource: 'stdin' } });
    expect(byId(report, 'hsm-login').summary).toContain('with the PIN from stdin');
  }, 60_000);

  it('the issuing CA key replaced by an extractable one (pkcs11-tool): hsm-keys and certificates fail', async () => {
    const conf = join(dataDir, 'hsm', 'softhsm2.conf');
    const env = { ...process.env, SOFTHSM2_CONF: conf };
    const tool = (...a: string[]) =>
      execFileSync(
        'pkcs11-tool',
        ['--module', '/usr/lib/softhsm/libsofthsm2.so', '--token-label', 'LS Station', '--login', '--pin', pin, ...a],
        {
          env,
          stdio: 'pipe',
        },
      );
    for (const type of ['privkey', 'pubkey']) tool('--delete-object', '--type', type, '--label', KEY_LABELS.issuingCa);
    tool(
      '--keypairgen',
      '--key-type',
      'EC:prime256v1',
      '--label',
      KEY_LABELS.issuingCa,
      '--id',
      'c0ffee',
      '--sensitive',
      '--extractable',
    );
    const { code, report, text } = await doctor();
    expectWellFormed(code, report, text);
    const k = byId(report, 'hsm-keys');
    expect(k.status).toBe('fail');
    expect(k.summary).toContain(`key "${KEY_LABELS.issuingCa}" can leave the token: CKA_EXTRACTABLE true`);
    expect(k.action).toContain('never extractable');
    const c = byId(report, 'certificates');
    expect(c.status).toBe('fail');
    expect(c.summary).toContain("the issuing CA certificate is not for the token's issuing CA key");
  }, 60_000);
});
