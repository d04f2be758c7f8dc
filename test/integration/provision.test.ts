/**
 * End to end with real parts: the simulator on socat ptys, SoftHSM2, SQLite; certificates checked
 * with openssl, manifests and records with jose (an independent JOSE implementation).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compactVerify, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../core/model.js';
import { toPem } from '../../core/pki/pem.js';
import {
  jwsHeaderOf,
  RECORD_SCHEMA_V3,
  recordIssuingChain,
  recordManifestJws,
} from '../../core/provisioning/record-manifest.js';
import { createWorld, type World } from '../harness.js';

let w: World;

beforeAll(async () => {
  w = await createWorld({
    boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE', faults: { badFirmware: true } }],
  });
});
afterAll(async () => {
  await w?.teardown();
});

function pemOf(x5cB64: string): string {
  return `-----BEGIN CERTIFICATE-----\n${x5cB64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

describe('provisioning end to end', () => {
  it('provisions an on-board-keygen board and an injected-key board; openssl and jose verify the results', async () => {
    for (const i of [0, 1]) {
      const events: ProgressEvent[] = [];
      const r = await w.engine.provision({
        port: w.sim.ports[i]!,
        workOrder: 'WO-DEMO-1',
        operator: 'op-7',
        onProgress: (e) => events.push(e),
      });
      if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText()}`);
      expect(r.value.status).toBe('provisioned');
      const steps = events.filter((e) => e.status === 'done').map((e) => e.step);
      expect(steps).toEqual(['detect', 'identify', 'baseline', 'key', 'attest', 'certify', 'record']);
      // The board holds the certificate and is locked.
      const st = w.sim.state(i);
      expect(st.locked).toBe(true);
      expect(st.certSha256).not.toBeNull();
    }

    const records = w.engine.store.listRecords({});
    expect(records).toHaveLength(2);
    const modes = records.map((r) => (JSON.parse(r.recordJson) as { key: { mode: string } }).key.mode).sort();
    expect(modes).toEqual(['injected', 'onboard']);

    for (const r of records) {
      const rec = JSON.parse(r.recordJson) as {
        schema: string;
        certificate: { pem: string; sha256: string };
        board: { chipId: string };
      };
      // Format v3: the station chain once, in x5c; the manifest rebuilt from it is the one the station signed.
      expect(rec.schema).toBe(RECORD_SCHEMA_V3);
      // The payload carries one PEM certificate (the device's) and no JWS: the station chain is only in x5c.
      expect(r.recordJson.split('-----BEGIN CERTIFICATE-----')).toHaveLength(2);
      expect(r.recordJson).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./);
      const header = jwsHeaderOf(r.jws);
      const chain = recordIssuingChain(rec, header);
      const manifestJws = recordManifestJws(rec, header);
      if (!chain.ok || !manifestJws.ok) throw new Error('v3 record unreadable');
      expect(manifestJws.value).toBe(w.engine.store.getRun(r.runId)!.data.manifest!.jws);
      // openssl verifies the device certificate against the station's root.
      const dir = w.dir;
      writeFileSync(join(dir, 'dev.pem'), rec.certificate.pem);
      writeFileSync(join(dir, 'ca.pem'), toPem(chain.value[0]!, 'CERTIFICATE'));
      writeFileSync(join(dir, 'root.pem'), toPem(chain.value[chain.value.length - 1]!, 'CERTIFICATE'));
      const out = execFileSync(
        'openssl',
        [
          'verify',
          '-x509_strict',
          '-purpose',
          'sslclient',
          '-CAfile',
          join(dir, 'root.pem'),
          '-untrusted',
          join(dir, 'ca.pem'),
          join(dir, 'dev.pem'),
        ],
        {
          encoding: 'utf8',
        },
      );
      expect(out.trim()).toBe(`${join(dir, 'dev.pem')}: OK`);
      const text = execFileSync('openssl', ['x509', '-in', join(dir, 'dev.pem'), '-noout', '-text'], {
        encoding: 'utf8',
      });
      expect(text).toContain(rec.board.chipId);
      expect(text).toContain('TLS Web Client Authentication');

      // jose verifies the record and the (rebuilt) manifest with the station certificate from x5c.
      for (const jws of [r.jws, manifestJws.value]) {
        const header = JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString()) as {
          x5c: string[];
          alg: string;
        };
        const key = await importX509(pemOf(header.x5c[0]!), header.alg);
        const v = await compactVerify(jws, key);
        expect(v.payload.length).toBeGreaterThan(0);
      }
      expect(
        Buffer.from(
          (
            await compactVerify(
              r.jws,
              await importX509(
                pemOf(
                  (JSON.parse(Buffer.from(r.jws.split('.')[0]!, 'base64url').toString()) as { x5c: string[] }).x5c[0]!,
                ),
                'ES256',
              ),
            )
          ).payload,
        ).toString(),
      ).toBe(r.recordJson);
    }
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  });

  it('recognises an already provisioned board and does not give it a second identity', async () => {
    const before = w.engine.store.listIssuedCertificates().length;
    const r = await w.engine.provision({ port: w.sim.ports[0]!, workOrder: 'WO-DEMO-1', operator: 'op-7' });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.status).toBe('already-provisioned');
    expect(w.engine.store.listIssuedCertificates().length).toBe(before);
  });

  it('re-provisions only when asked, as a rotation that supersedes the old record', async () => {
    const old = w.engine.store.listRecords({}).find((r) => r.serialNumber === w.sim.boards[0]!.serialNumber)!;
    const r = await w.engine.provision({
      port: w.sim.ports[0]!,
      workOrder: 'WO-DEMO-1',
      operator: 'supervisor-1',
      reprovision: true,
    });
    if (!r.ok) throw new Error(`${r.error.code} ${r.error.message}`);
    expect(r.value.status).toBe('provisioned');
    if (r.value.status !== 'provisioned') return;
    expect(r.value.record.kind).toBe('rotation');
    expect(r.value.record.supersedesRecordId).toBe(old.recordId);
    expect(w.engine.store.findCurrentRecord(old.chipId)?.recordId).toBe(r.value.record.recordId);
    expect(r.value.record.certificateSerial).not.toBe(old.certificateSerial);
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  });

  it('fails a board with an unexpected firmware digest with POLICY_VIOLATION and a signed manifest as evidence', async () => {
    const r = await w.engine.provision({ port: w.sim.ports[2]!, workOrder: 'WO-DEMO-1', operator: 'op-7' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('POLICY_VIOLATION');
    expect(r.error.action).toBe('set-aside');
    expect(r.error.message).toMatch(/application/);
    // Not locked, no record: nothing half-written.
    expect(w.sim.state(2).locked).toBe(false);
    const chipId = w.sim.boards[2]!.chipId;
    expect(w.engine.store.findCurrentRecord(chipId)).toBeNull();
    expect(w.engine.store.verifyAudit().ok).toBe(true);
    // No identity before the board passes: no key on the board, no certificate issued for it.
    expect(w.sim.state(2).hasKey).toBe(false);
    expect(w.sim.state(2).certSha256).toBeNull();
    expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
    // The failed run keeps the signed manifest (verdict fail) as evidence.
    const failed = w.engine.store.listAudit(0, 10_000).filter((e) => e.type === 'run.failed');
    const run = w.engine.store.getRun(failed[failed.length - 1]!.runId!)!;
    expect(run).toMatchObject({ chipId, state: 'failed', error: { code: 'POLICY_VIOLATION', step: 'baseline' } });
    expect(run.data.key).toBeUndefined();
    expect(run.data.certificate).toBeUndefined();
    const manifest = JSON.parse(Buffer.from(run.data.manifest!.jws.split('.')[1]!, 'base64url').toString()) as {
      verdict: { pass: boolean };
      board: { chipId: string };
    };
    expect(manifest).toMatchObject({ verdict: { pass: false }, board: { chipId } });
  });
});
