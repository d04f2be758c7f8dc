/**
 * `station doctor --json` on a station whose keys live on the second PKCS#11 implementation (NSS softoken, moved there
 * with testkit/station-token.ts until `station commission` exists): the token profile is named, the keys report
 * sensitive and never extractable, and the doctor warns that this token does not enforce it (its profile says so);
 * its mechanisms are listed and proven by use (RFC 5649 wrap is CKM_AES_KEY_WRAP_KWP there).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DoctorReportSchema, type DoctorCheck, type DoctorReport } from '../../core/api.js';
import { main } from '../../station/cli/program.js';
import { moveStationToToken } from '../../testkit/station-token.js';
import { createKindToken, type KindToken } from '../../testkit/tokens.js';

const base = mkdtempSync(join(tmpdir(), 'ls-doctor-nss-'));
const dataDir = join(base, 'station');
let tok: KindToken;

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, out: out.join('\n') };
}
const byId = (r: DoctorReport, id: DoctorCheck['id']): DoctorCheck => r.checks.find((c) => c.id === id)!;

beforeAll(async () => {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=Test Vendor Root', '-keyout', join(base, 'vendor.key'), '-out', join(base, 'vendor-root.pem'),
  ], { stdio: 'ignore' }); // prettier-ignore
  const init = await cli(['init', '--data-dir', dataDir, '--attestation-root', join(base, 'vendor-root.pem')]);
  if (init.code !== 0) throw new Error(`station init: ${init.out}`);
  tok = await createKindToken('nss-softoken', 'LS Station NSS', 'nss-doctor-pin-7731', {
    dir: join(dataDir, 'tokens', 'nss'),
  });
  await moveStationToToken(dataDir, tok);
}, 120_000);

afterAll(async () => {
  await tok?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

it('names the NSS profile, passes the mechanisms and warns that the token does not enforce key protection', async () => {
  const r = await cli(['doctor', '--json', '--data-dir', dataDir]);
  const report = DoctorReportSchema.parse(JSON.parse(r.out));
  expect(r.out).not.toContain('nss-doctor-pin-7731');
  expect(byId(report, 'hsm-module')).toMatchObject({ status: 'pass', details: { profile: 'nss-softoken' } });
  expect(byId(report, 'hsm-token').status).toBe('pass');
  expect(byId(report, 'hsm-login').status).toBe('pass');
  const keys = byId(report, 'hsm-keys');
  expect(keys.status).toBe('warn');
  expect(keys.summary).toContain('this token does not enforce it');
  expect(keys.action).toContain('resources/tokens');
  const mech = byId(report, 'hsm-mechanisms');
  expect(mech.status, mech.summary).toBe('pass');
  expect(mech.summary).toContain('lists and performs');
  expect(byId(report, 'certificates').status).toBe('pass');
}, 60_000);
