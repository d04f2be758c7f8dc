/**
 * A failed rework queues the old credential's revocation, end to end with real parts: a development station
 * (SoftHSM2, simulator on ptys, SQLite), the `station` CLI (`provision --reprovision` with a supervisor, `sync`,
 * `verify-log`), and a registry on loopback with the delegated revocation signer the station certified (CRL, OCSP).
 * A supervisor-approved re-provisioning erases the board's identity (zeroize) and then fails (the board refuses the
 * new certificate; or its baseline fails): the board no longer holds the credential of its record, which headquarters
 * still shows active. The failing run queues that credential's revocation (a scrap event) exactly once, the CLI says
 * so, `station sync` delivers it, the registry's CRL (read with openssl) lists the old certificate and OCSP answers
 * revoked; the issuance invariant holds (every issued certificate is in a record or on the CRL).
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../../core/pki/pem.js';
import { ScrapPayloadSchema } from '../../core/hq/scrap.js';
import { must } from '../../testkit/pki/test-util.js';
import { startRevocationRegistry, type RevocationRegistry } from '../../testkit/registry/revocation-registry.js';
import { assertIssuanceInvariant, crlSerialsWithOpenssl, fetchCrl } from '../../testkit/issuance-invariant.js';
import { readIssuanceSnapshot } from '../../testkit/issuance-snapshot.js';
import { provisionArgs, runStationCli } from '../../testkit/station-cli.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const WO = 'WO-DEMO-1';
const PINS = { LINE_STATION_PIN: '480213', LINE_STATION_SUPERVISOR_PIN: '135790' };
let w: World;
let hq: RevocationRegistry;
let dbFile: string;

const cli = (args: string[]) => runStationCli(args, PINS);
const provision = (i: number, ...more: string[]) => cli([...provisionArgs(w.dataDir, w.sim.ports[i]!, WO), ...more]);
const rework = (i: number) => provision(i, '--reprovision', '--supervisor', 'sup-1');
const norm = (hex: string) => hex.toLowerCase().replace(/^0+/, '');
const chip = (i: number) => w.sim.state(i).chipId;
const reworkRequests = (i: number) =>
  w.engine.lifecycle.db.revocations({ kind: 'scrapped' }).filter((q) => q.chipId === chip(i));
/** `openssl ocsp` against the registry's responder for a certificate (DER): its status line. */
const ocsp = (der: Uint8Array) => {
  writeFileSync(join(w.dir, 'q.pem'), toPem(der, 'CERTIFICATE'));
  const args = ['ocsp', '-issuer', 'ca.pem', '-cert', 'q.pem', '-url', `${hq.reg.url}/v1/ocsp`, '-CAfile', 'root.pem'];
  return new Promise<string>((resolve) =>
    execFile('openssl', args, { cwd: w.dir, timeout: 20_000 }, (_e, stdout, stderr) => resolve(`${stdout}${stderr}`)),
  );
};
/** The certificate (DER) of board i's current record. */
const recordCert = (i: number) => {
  const rec = w.engine.store.findCurrentRecord(chip(i))!;
  return w.engine.store.listIssuedCertificates(chip(i)).find((c) => c.serialNumber === rec.certificateSerial)!;
};

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: PINS.LINE_STATION_PIN },
    { id: 'sup-1', role: 'supervisor', pin: PINS.LINE_STATION_SUPERVISOR_PIN },
  ]);
  dbFile = join(w.dataDir, 'station.db');
  hq = await startRevocationRegistry(w, { registryId: 'registry-rework', adminToken: 'admin-token-rework-0123456789' });
}, 120_000);

afterAll(async () => {
  await hq?.close();
  await w?.teardown();
});

describe('a rework that erased the board and then failed revokes the old credential at headquarters', () => {
  it('queued once with the reason, shown by the CLI, delivered by sync: CRL and OCSP say revoked; the invariant holds', async () => {
    // Two boards provisioned and synced: headquarters holds their credentials, active (OCSP good).
    for (const i of [0, 1]) expect((await provision(i)).code).toBe(0);
    expect((await cli(['sync', '--data-dir', w.dataDir])).code).toBe(0);
    const old = [recordCert(0), recordCert(1)];
    expect(await ocsp(old[0]!.der)).toMatch(/q\.pem: good/);

    // Board 0 refuses the new certificate, board 1's baseline fails: both after the rework erased them.
    w.sim.setFaults(0, { refuseCert: true });
    w.sim.setFaults(1, { badFirmware: true });
    const r0 = await rework(0);
    const r1 = await rework(1);
    expect(r0.code).toBe(1);
    expect(r0.text).toContain('BOARD_CERT_REFUSED');
    expect(r1.code).toBe(1);
    expect(r1.text).toContain('POLICY_VIOLATION');
    for (const [i, r] of [r0, r1].entries()) {
      expect(r.text).toContain(`previous certificate ${old[i]!.serialNumber} is queued for revocation at headquarters`);
      expect(w.sim.state(i).locked).toBe(false); // erased: the board no longer holds its credential
    }

    // Exactly one request per board, with the reason and the supervisor, signed with the station key.
    for (const i of [0, 1]) {
      const qs = reworkRequests(i);
      expect(qs).toHaveLength(1);
      expect(qs[0]).toMatchObject({ reason: 'rework-failed', certificateSerial: old[i]!.serialNumber });
      expect(qs[0]!.requestId).toMatch(/^rework-failed:/);
      expect(qs[0]!.jws).not.toBeNull();
      const p = ScrapPayloadSchema.parse(JSON.parse(qs[0]!.payloadJson!));
      expect(p).toMatchObject({ supervisor: 'sup-1', operator: 'op-1', certificateSha256: old[i]!.sha256 });
      expect(p.note).toContain(i === 0 ? 'BOARD_CERT_REFUSED' : 'POLICY_VIOLATION');
    }
    const audit = w.engine.store.listAudit(1, 100_000).filter((e) => e.type === 'cert.rework-revocation');
    expect(audit).toHaveLength(2);

    // A second failing rework of board 1 (nothing left to erase) queues nothing more.
    expect((await rework(1)).code).toBe(1);
    expect(reworkRequests(1)).toHaveLength(1);

    // Before the sync the CRL does not list the old certificates; `station sync` delivers the events.
    const signers = readIssuanceSnapshot(dbFile).revocationSignerPems;
    const before = crlSerialsWithOpenssl(await fetchCrl(hq.reg.url, w.engine.station.id), signers);
    expect(before.has(norm(old[0]!.serialNumber))).toBe(false);
    const s = await cli(['sync', '--data-dir', w.dataDir]);
    expect(s.code).toBe(0);
    for (const i of [0, 1]) expect(reworkRequests(i)[0]!.state).toBe('acknowledged');

    // The registry's CRL (signature checked by openssl) lists both old certificates; OCSP answers revoked.
    const crl = crlSerialsWithOpenssl(await fetchCrl(hq.reg.url, w.engine.station.id), signers);
    for (const c of old) expect(crl.has(norm(c.serialNumber))).toBe(true);
    const o = await ocsp(old[0]!.der);
    expect(o).toMatch(/q\.pem: revoked/);
    // Every issued certificate is in a record or on the CRL (board 0's new one is a failed issuance).
    const inv = await assertIssuanceInvariant({
      dbFile,
      registry: { url: hq.reg.url, stationId: w.engine.station.id },
    });
    expect(inv.failedIssuance).toBe(1);
    // Delivered once: a second sync sends nothing; the audit chain verifies.
    expect(must(await w.engine.lifecycle.sendRevocations())).toEqual({ sent: 0, unsupported: false });
    expect((await cli(['verify-log', '--data-dir', w.dataDir])).code).toBe(0);
  });
});
