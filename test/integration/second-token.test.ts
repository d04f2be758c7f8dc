/**
 * End to end on the second PKCS#11 implementation: a development station moved onto an NSS softoken token (issuing
 * CA and station keys generated there, config.json naming module, token profile and key database directory), the
 * engine opened from that config, one on-board-key board and one injected-key board provisioned through the real
 * path (simulator on ptys), and the device certificates verified with openssl against the dev root.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { createWorld, type World } from '../harness.js';
import { toPem } from '../../core/pki/pem.js';
import { jwsHeaderOf, recordIssuingChain } from '../../core/provisioning/record-manifest.js';
import { createKindToken, type KindToken } from '../../testkit/tokens.js';
import { moveStationToToken } from '../../testkit/station-token.js';

let w: World;
let tok: KindToken;
let issuingCa: Uint8Array;

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }] });
  tok = await createKindToken('nss-softoken', 'LS Station NSS', 'nss-e2e-pin-5521', {
    dir: join(w.dataDir, 'tokens', 'nss'),
  });
  issuingCa = (await moveStationToToken(w.dataDir, tok)).issuingCa;
  await w.reopen();
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

it('the engine runs on the NSS token: its issuing CA key is the one generated there', async () => {
  const info = await w.engine.hsm.info();
  if (!info.ok) throw new Error(info.error.message);
  expect(info.value).toMatchObject({ module: tok.module, tokenLabel: 'LS Station NSS', model: 'NSS 3' });
  const caKey = info.value.keys.find((k) => k.class === 'private' && k.label === 'issuing-ca');
  expect(caKey).toMatchObject({ sensitive: true, extractable: false, unprotected: [] });
  const caSpki = new X509Certificate(Buffer.from(issuingCa)).publicKey.export({ format: 'der', type: 'spki' });
  expect(Buffer.from(w.engine.station.caSigner.publicKeySpki).equals(caSpki)).toBe(true);
  expect(w.engine.refusedProfiles).toEqual([]);
  expect(w.logText()).toContain('the token does not enforce key protection: for development and tests only');
});

it('provisions an on-board-key and an injected-key board; openssl verifies both certificates', async () => {
  for (const i of [0, 1]) {
    const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'op-7' });
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText()}`);
    expect(r.value.status).toBe('provisioned');
  }
  const records = w.engine.store.listRecords({});
  const modes = records.map((r) => (JSON.parse(r.recordJson) as { key: { mode: string } }).key.mode).sort();
  expect(modes).toEqual(['injected', 'onboard']);
  for (const r of records) {
    const rec = JSON.parse(r.recordJson) as { certificate: { pem: string } };
    const issuing = recordIssuingChain(rec, jwsHeaderOf(r.jws));
    if (!issuing.ok) throw new Error(issuing.error);
    const chain = issuing.value.map((d) => toPem(d, 'CERTIFICATE'));
    writeFileSync(join(w.dir, 'dev.pem'), rec.certificate.pem);
    writeFileSync(join(w.dir, 'ca.pem'), chain[0]!);
    writeFileSync(join(w.dir, 'root.pem'), chain[chain.length - 1]!);
    const out = execFileSync(
      'openssl',
      [
        'verify',
        '-x509_strict',
        '-CAfile',
        join(w.dir, 'root.pem'),
        '-untrusted',
        join(w.dir, 'ca.pem'),
        join(w.dir, 'dev.pem'),
      ],
      { encoding: 'utf8' },
    );
    expect(out).toContain('dev.pem: OK');
    // issued by the CA whose key is in the NSS token
    const ca = new X509Certificate(chain[0]!);
    expect(Buffer.from(ca.raw).equals(Buffer.from(issuingCa))).toBe(true);
  }
}, 120_000);
