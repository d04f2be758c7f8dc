/**
 * `station commission` on a token that cannot make the station's keys (issue 15): a real SoftHSM2 token whose
 * configuration disables EC key generation (`slots.mechanisms`, softhsm2.conf(5)), as a vendor
 * token without P-256 would be. The station refuses with HSM_TOKEN_LACKS_MECHANISM naming what is missing, before
 * anything is made: no key in the token, no config.json, no state file, no request. `station commission` runs as a
 * process (bin/station.mjs), its PIN on stdin.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../../core/pki/pem.js';
import { opensslSelfSignedDer } from '../../testkit/pki/test-util.js';
import { createKindToken, type KindToken } from '../../testkit/tokens.js';
import { commissionArgs, stationCli, stationEnv } from './commission-world.js';

const PIN = 'refusal-PIN-2468';
let work: string;
let tok: KindToken;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ls-commission-refusal-'));
  tok = await createKindToken('softhsm2', 'No EC Token', PIN, { dir: join(work, 'token') });
  // The token as a vendor token without P-256 key generation would be. SoftHSM 2.6.1 skips the first name of a
  // "-" list (measured with pkcs11-tool -M), hence the name twice.
  appendFileSync(join(tok.dir, 'softhsm2.conf'), 'slots.mechanisms = -CKM_EC_KEY_PAIR_GEN,CKM_EC_KEY_PAIR_GEN\n');
  // A vendor attestation root to trust (any CA certificate, made by openssl: no board is provisioned here).
  writeFileSync(join(work, 'vendor.pem'), toPem(opensslSelfSignedDer(work, '/CN=Vendor Root'), 'CERTIFICATE'));
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('station commission on a token that cannot make P-256 keys', () => {
  it('refuses with HSM_TOKEN_LACKS_MECHANISM before anything is generated or written', () => {
    const dataDir = join(work, 'station');
    const out = join(work, 'request.jws');
    const r = stationCli(
      [
        ...commissionArgs({ dataDir, stationId: 'refused-1', tok, attestationRoot: join(work, 'vendor.pem') }),
        '--out',
        out,
      ],
      stationEnv(tok),
      `${PIN}\n`,
    );
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toMatch(/HSM_TOKEN_LACKS_MECHANISM/);
    expect(r.out).toMatch(/CKM_EC_KEY_PAIR_GEN/);
    expect(r.out).toMatch(/nothing was generated or written/);
    // Nothing written at the station, and the token holds no object.
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(dataDir, 'config.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'commission-state.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'pki')) ? readdirSync(join(dataDir, 'pki')) : []).toEqual([]);
    const s = tok.raw();
    try {
      s.lib.C_Login(s.session, 1 /* CKU_USER: private objects too */, PIN);
      expect(s.find([])).toEqual([]);
    } finally {
      s.close();
    }
  });
});
