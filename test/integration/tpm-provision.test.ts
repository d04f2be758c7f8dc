/**
 * TPM 2.0 boards end to end through the real path: the engine provisions simulator boards over socat ptys whose TPM
 * is a real swtpm (LS-SIM-TPM-ECC with an ECC P-256 EK, LS-SIM-TPM-RSA with an RSA 2048 EK), on one station together
 * with LS boards. Then independent tools agree with the station: tpm2-tools reads the device certificate from NV and
 * the IDevID's public area from the TPM, openssl verifies the device certificate chain and the EK certificate chain,
 * tpm2_checkquote verifies the manifest's quote, and `station records --json` shows the TPM evidence.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url } from '../../core/bytes.js';
import { ManifestSchema } from '../../core/provisioning/baseline.js';
import { ProvisioningRecordSchema, type ProvisioningRecord } from '../../core/provisioning/record.js';
import { jwsHeaderOf, recordIssuingChain, recordManifestJws } from '../../core/provisioning/record-manifest.js';
import { toPem } from '../../core/pki/pem.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { tpm2tools } from '../../testkit/tpm/swtpm.js';
import { createWorld, type World } from '../harness.js';
import { simTpmPcrs } from '../sim/baseline.js';

const run = promisify(execFile);
const WO = 'WO-DEMO-TPM-1';
const ECC = 0;
const RSA = 1;

let w: World;

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-TPM-ECC' },
      { model: 'LS-SIM-TPM-RSA' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-BASIC' },
    ],
  });
}, 120_000);
afterAll(async () => {
  await w?.teardown();
});

const record = (chipId: string): ProvisioningRecord =>
  JSON.parse(w.engine.store.findCurrentRecord(chipId)!.recordJson) as ProvisioningRecord;
/** The record's JWS header (x5c: its issuing chain in v3) and its manifest JWS (any format). */
const headerOf = (chipId: string) => jwsHeaderOf(w.engine.store.findCurrentRecord(chipId)!.jws);
const manifestJwsOf = (chipId: string): string => {
  const m = recordManifestJws(record(chipId), headerOf(chipId));
  if (!m.ok) throw new Error(m.error);
  return m.value;
};
const issuingChainPem = (chipId: string): string[] => {
  const c = recordIssuingChain(record(chipId), headerOf(chipId));
  if (!c.ok) throw new Error(c.error);
  return c.value.map((d) => toPem(d, 'CERTIFICATE'));
};

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const pem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;

describe('TPM boards and LS boards on one station', () => {
  it('provisions all four at once (both EK types, both LS models)', async () => {
    const notes: string[] = [];
    const outcomes = await Promise.all(
      w.sim.ports.map((port) =>
        w.engine.provision({
          port,
          workOrder: WO,
          operator: 'op-tpm',
          onProgress: (e) => {
            if (e.message) notes.push(e.message);
          },
        } as Parameters<World['engine']['provision']>[0]),
      ),
    );
    outcomes.forEach((o, i) => {
      if (!o.ok) throw new Error(`board ${i}: ${o.error.code} ${o.error.message}\n${w.logText().slice(-3000)}`);
      expect(o.value.status).toBe('provisioned');
    });
    for (const i of [ECC, RSA]) {
      const r = record(w.sim.boards[i]!.chipId);
      expect(r.attestation).toMatchObject({ mode: 'tpm2' });
      expect(r.key.mode).toBe('onboard');
    }
    for (const i of [2, 3]) expect(record(w.sim.boards[i]!.chipId).attestation).toMatchObject({ mode: 'key-bound-v2' });
    // The TPM steps reach the progress stream (the UI slot tile and station provision show them).
    const count = (n: string) => notes.filter((m) => m.includes(n)).length;
    expect(count('EK certificate')).toBe(4); // identify and baseline, two TPM boards
    for (const n of ['credential activated', 'quote over PCRs', 'IDevID created', 'TPM2_Certify', 'written to NV'])
      expect(count(n), n).toBe(2);
    await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  }, 180_000);

  for (const [i, ekType] of [
    [ECC, 'ecc-p256'],
    [RSA, 'rsa-2048'],
  ] as const) {
    it(`${ekType}: tpm2-tools and openssl agree with the station`, async () => {
      const chipId = w.sim.boards[i]!.chipId;
      const r = record(chipId);
      const ev = r.attestation;
      if (!('mode' in ev) || ev.mode !== 'tpm2') throw new Error('not a TPM record');
      expect(ev.ek.type).toBe(ekType);
      const tpm = w.sim.tpm(i)?.main;
      if (!tpm) throw new Error('board TPM not running');
      const tools = tpm2tools(tpm);
      const d = join(w.dir, `check-${i}`);
      await run('mkdir', ['-p', d]);

      // The device certificate in NV (tpm2_nvread) is the record's, and openssl verifies its chain.
      await tools('tpm2_nvread', ['0x01100000', '-o', join(d, 'nv.der')]);
      const nvDer = readFileSync(join(d, 'nv.der'));
      expect(createHash('sha256').update(nvDer).digest('hex')).toBe(r.certificate.sha256);
      await run('openssl', ['x509', '-inform', 'DER', '-in', join(d, 'nv.der'), '-out', join(d, 'device.pem')]);
      expect(readFileSync(join(d, 'device.pem'), 'utf8').trim()).toBe(r.certificate.pem.trim());
      const chain = issuingChainPem(chipId);
      writeFileSync(join(d, 'ca.pem'), chain[0]!);
      writeFileSync(join(d, 'root.pem'), chain[chain.length - 1]!);
      const v = await run('openssl', [
        'verify',
        '-x509_strict',
        '-CAfile',
        join(d, 'root.pem'),
        '-untrusted',
        join(d, 'ca.pem'),
        join(d, 'device.pem'),
      ]);
      expect(v.stdout).toContain('device.pem: OK');
      const nvPub = await tools('tpm2_nvreadpublic', ['0x01100000']);
      expect(nvPub.stdout).toMatch(/writelocked/);

      // The persistent IDevID (tpm2_readpublic) is fixedTPM and is the certified key.
      const rp = await tools('tpm2_readpublic', ['-c', '0x81020000', '-f', 'pem', '-o', join(d, 'idevid.pem')]);
      expect(rp.stdout).toMatch(/fixedtpm\|fixedparent\|sensitivedataorigin\|userwithauth\|sign/);
      expect(rp.stdout).not.toMatch(/restricted/);
      const certKey = await run('openssl', ['x509', '-in', join(d, 'device.pem'), '-noout', '-pubkey']);
      expect(readFileSync(join(d, 'idevid.pem'), 'utf8').trim()).toBe(certKey.stdout.trim());
      const spki = await run('openssl', ['pkey', '-pubin', '-in', join(d, 'idevid.pem'), '-outform', 'DER'], {
        encoding: 'buffer',
      });
      expect(Buffer.compare(spki.stdout, Buffer.from(fromBase64Url(r.key.publicKeySpki)))).toBe(0);

      // The EK certificate chain in the evidence verifies with openssl to the TPM vendor root.
      ev.chain.forEach((c, k) => writeFileSync(join(d, `ek-${k}.pem`), pem(b64(c))));
      const last = ev.chain.length - 1;
      writeFileSync(
        join(d, 'ek-rest.pem'),
        ev.chain
          .slice(1, last)
          .map((c) => pem(b64(c)))
          .join(''),
      );
      const ekv = await run('openssl', [
        'verify',
        '-CAfile',
        join(d, `ek-${last}.pem`),
        ...(last > 1 ? ['-untrusted', join(d, 'ek-rest.pem')] : []),
        join(d, 'ek-0.pem'),
      ]);
      expect(ekv.stdout).toContain('ek-0.pem: OK');

      // The certify and the manifest's quote, re-checked offline with tpm2_checkquote (IAK public from the record).
      const tpm2b = (t: string): Buffer => {
        const body = b64(t);
        const size = Buffer.alloc(2);
        size.writeUInt16BE(body.length);
        return Buffer.concat([size, body]);
      };
      writeFileSync(join(d, 'iak.pub'), tpm2b(ev.iak.public));
      writeFileSync(join(d, 'certify.attest'), b64(ev.certify.attest));
      writeFileSync(join(d, 'certify.sig'), b64(ev.certify.signature));
      /** tpm2_checkquote of <what>.attest / <what>.sig with the IAK and a qualifying-data hex string. */
      const checkquote = (what: 'certify' | 'quote', nonceHex: string) =>
        run('tpm2_checkquote', [
          '-u',
          join(d, 'iak.pub'),
          '-m',
          join(d, `${what}.attest`),
          '-s',
          join(d, `${what}.sig`),
          '-q',
          nonceHex,
        ]);
      await checkquote('certify', Buffer.from(fromBase64Url(ev.nonce)).toString('hex'));
      await expect(checkquote('certify', '00'.repeat(32))).rejects.toThrow();
      // TPMS_CERTIFY_INFO.name: the IDevID's Name as a TPM2B (size 0x0022) in the signed attest (tpm2_print 5.4 cannot
      // print a certify attest; xxd -p shows the same bytes).
      const xxd = await run('sh', ['-c', `xxd -p ${join(d, 'certify.attest')} | tr -d '\\n'`]);
      expect(xxd.stdout).toContain(`0022${ev.idevid.name}`);
      writeFileSync(join(d, 'idevid.pub'), tpm2b(ev.idevid.public));
      const idevidPem = await run('tpm2_print', ['-t', 'TPM2B_PUBLIC', '-f', 'pem', join(d, 'idevid.pub')]);
      expect(idevidPem.stdout.trim()).toBe(certKey.stdout.trim());
      // The chip id is the first 16 bytes of SHA-256 over the EK certificate's SubjectPublicKeyInfo.
      const ekSpki = await run('sh', [
        '-c',
        `openssl x509 -in ${join(d, 'ek-0.pem')} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r`,
      ]);
      expect(ekSpki.stdout.slice(0, 32)).toBe(chipId);
      const manifest = ManifestSchema.parse(
        JSON.parse(Buffer.from(manifestJwsOf(chipId).split('.')[1]!, 'base64url').toString('utf8')),
      );
      const m = manifest.measurements;
      if (!('pcrs' in m)) throw new Error('not TPM measurements');
      expect(m.ak).toEqual(ev.iak);
      const expected = simTpmPcrs();
      expect(m.pcrs).toMatchObject({ '0': expected[0], '4': expected[4], '7': expected[7] });
      writeFileSync(join(d, 'quote.attest'), b64(m.quote.attest));
      writeFileSync(join(d, 'quote.sig'), b64(m.quote.signature));
      await checkquote('quote', Buffer.from(fromBase64Url(m.quote.nonce)).toString('hex'));
      // A nonce the quote was not made for is refused by the independent tool too.
      await expect(checkquote('quote', '00'.repeat(32))).rejects.toThrow();
    }, 60_000);
  }

  it('a tpm2 record says one thing everywhere (schema): another nonce, key or IDevID is refused', () => {
    const r = record(w.sim.boards[ECC]!.chipId);
    expect(ProvisioningRecordSchema.safeParse(r).success).toBe(true);
    const ev = r.attestation as Extract<ProvisioningRecord['attestation'], { mode: 'tpm2' }>;
    const other = record(w.sim.boards[RSA]!.chipId);
    const bad: ProvisioningRecord[] = [
      { ...r, attestation: { ...ev, nonce: ev.nonce.slice(0, -2) + (ev.nonce.endsWith('AA') ? 'AB' : 'AA') } },
      { ...r, attestation: { ...ev, idevid: { ...ev.idevid, public: ev.iak.public } } },
      { ...r, key: other.key },
      { ...r, attestation: { ...ev, activation: { ...ev.activation, iakName: ev.idevid.name } } },
    ];
    for (const b of bad) expect(ProvisioningRecordSchema.safeParse(b).success).toBe(false);
  });

  it('a supervisor-approved re-provisioning zeroizes the TPM identity first: a new IDevID and certificate', async () => {
    const i = ECC;
    const chipId = w.sim.boards[i]!.chipId;
    const before = record(chipId);
    const again = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-tpm' });
    expect(again.ok && again.value.status).toBe('already-provisioned');
    const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'sup-1', reprovision: true });
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    const after = record(chipId);
    expect(after.kind).toBe('rotation');
    expect(after.supersedesRecordId).toBe(before.recordId);
    expect(after.key.publicKeySpki).not.toBe(before.key.publicKeySpki);
    const tools = tpm2tools(w.sim.tpm(i)!.main!);
    const d = join(w.dir, 'rotation');
    await run('mkdir', ['-p', d]);
    await tools('tpm2_nvread', ['0x01100000', '-o', join(d, 'nv.der')]);
    expect(
      createHash('sha256')
        .update(readFileSync(join(d, 'nv.der')))
        .digest('hex'),
    ).toBe(after.certificate.sha256);
    const persistent = (await tools('tpm2_getcap', ['handles-persistent'])).stdout;
    expect(persistent.split('\n').filter((l) => l.includes('0x8102')).length).toBe(1);
    await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
  }, 60_000);

  it('station records --json shows the TPM evidence', async () => {
    await w.engine.close();
    const child = spawn(process.execPath, ['bin/station.mjs', 'records', '--json', '--data-dir', w.dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errText = '';
    child.stdout.on('data', (x: Buffer) => (out += x.toString()));
    child.stderr.on('data', (x: Buffer) => (errText += x.toString()));
    const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    expect(code, errText).toBe(0);
    const rows = JSON.parse(out) as Array<{ chipId: string; record: ProvisioningRecord }>;
    const tpmRows = rows.filter(
      (x) => x.record.attestation && 'mode' in x.record.attestation && x.record.attestation.mode === 'tpm2',
    );
    expect([...new Set(tpmRows.map((x) => x.chipId))].sort()).toEqual(
      [w.sim.boards[ECC]!.chipId, w.sim.boards[RSA]!.chipId].sort(),
    );
    expect(tpmRows).toHaveLength(3); // the ECC board's first record and its rotation
    for (const x of tpmRows) {
      const ev = x.record.attestation as Extract<ProvisioningRecord['attestation'], { mode: 'tpm2' }>;
      expect(ev.activation.result).toBe('secret-matched');
      expect(ev.idevid.handle).toBe('0x81020000');
    }
    await w.reopen();
  }, 60_000);

  it('a scrap erases the identity through the board driver: the TPM board in its TPM, the LS board by firmware', async () => {
    const tools = tpm2tools(w.sim.tpm(RSA)!.main!);
    const persistent = async () =>
      (await tools('tpm2_getcap', ['handles-persistent'])).stdout.split('\n').filter((l) => l.includes('0x8102'));
    expect(await persistent()).toHaveLength(1);
    const z = await w.engine.zeroize({ port: w.sim.ports[RSA]!, workOrder: WO });
    if (!z.ok) throw new Error(`${z.error.code}: ${z.error.message}`);
    expect(z.value.chipId).toBe(w.sim.boards[RSA]!.chipId);
    // The IDevID is evicted and the certificate's NV index is gone (tpm2-tools, not the station, says so).
    expect(await persistent()).toHaveLength(0);
    await expect(tools('tpm2_nvreadpublic', ['0x01100000'])).rejects.toThrow();
    // An LS board is zeroized by its firmware: afterwards it no longer holds the certificate of its record.
    const before = await w.engine.provision({ port: w.sim.ports[2]!, workOrder: WO, operator: 'op-tpm' });
    expect(before.ok && before.value.status).toBe('already-provisioned');
    const ls = await w.engine.zeroize({ port: w.sim.ports[2]!, workOrder: WO });
    if (!ls.ok) throw new Error(`${ls.error.code}: ${ls.error.message}`);
    expect(ls.value.chipId).toBe(w.sim.boards[2]!.chipId);
    const after = await w.engine.provision({ port: w.sim.ports[2]!, workOrder: WO, operator: 'op-tpm' });
    expect(!after.ok && after.error.code).toBe('BOARD_CERT_MISSING');
  }, 60_000);
});
