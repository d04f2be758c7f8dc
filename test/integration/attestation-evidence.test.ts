/**
 * The attestation evidence in a record is re-checkable by a third party by following docs/formats.md
 * ("Re-checking the attestation of a record with openssl") with the openssl CLI: extract the chain, verify it to the
 * vendor root, rebuild the signed bytes from the record's fields, `openssl dgst -verify`. Also: a protocol 1 board
 * is refused unless its profile allows legacy mode, and then its record says so; bytes on the wire v1 vs v2.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BoardClientStats, BoardClientWithStats } from '../../core/protocol/client.js';
import { updateStationConfig } from '../../station/config.js';
import { createWorld, type World } from '../harness.js';

let w: World;
beforeAll(async () => {
  w = await createWorld({
    boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE', versions: [1] }],
  });
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

interface RecordJson {
  board: { chipId: string };
  key: { mode: string; publicKeySpki: string };
  certificate: { pem: string };
  /** v3: the manifest payload itself; v2: its compact JWS. */
  manifest: { payload?: { measurements: unknown }; jws?: string };
  attestation: {
    mode: 'key-bound-v2' | 'legacy-v1';
    nonce: string;
    leafSha256: string;
    chain: string[];
    signature: string;
    statement?: string;
    boundKey?: { role: 'device' | 'transport'; spki: string };
    measurementsSha256?: string;
  };
}

const openssl = (args: string[], input?: string | Buffer): Buffer =>
  execFileSync('openssl', args, { cwd: w.dir, ...(input !== undefined ? { input } : {}) });

/** Canonical JSON as a third party writes it (sorted keys, no whitespace), like `jq -cjS`. */
function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** docs/formats.md "Re-checking the attestation of a record with openssl", steps 1-6, with the openssl CLI. */
function recheck(rec: RecordJson, tag: string): void {
  const a = rec.attestation;
  const f = (name: string) => `${tag}-${name}`;
  // 1. Extract the chain.
  a.chain.forEach((c, i) => {
    writeFileSync(join(w.dir, f(`att-${i}.der`)), openssl(['base64', '-d', '-A'], c));
    openssl(['x509', '-inform', 'DER', '-in', f(`att-${i}.der`), '-out', f(`att-${i}.pem`)]);
  });
  // 2. Verify it to the vendor root.
  const rest = a.chain.slice(1).map((_, i) => readFileSync(join(w.dir, f(`att-${i + 1}.pem`)), 'utf8'));
  writeFileSync(join(w.dir, f('att-rest.pem')), rest.join(''));
  const verified = openssl([
    'verify',
    '-x509_strict',
    '-CAfile',
    w.sim.vendorRootPath,
    '-untrusted',
    f('att-rest.pem'),
    f('att-0.pem'),
  ]).toString();
  expect(verified.trim()).toBe(`${f('att-0.pem')}: OK`);
  // 3. Check the leaf.
  const subject = openssl(['x509', '-in', f('att-0.pem'), '-noout', '-subject', '-nameopt', 'RFC2253']).toString();
  expect(subject).toContain(`serialNumber=${rec.board.chipId}`);
  const fp = openssl(['x509', '-in', f('att-0.pem'), '-noout', '-fingerprint', '-sha256']).toString();
  expect(fp.trim().split('=')[1]!.replace(/:/g, '').toLowerCase()).toBe(a.leafSha256);
  writeFileSync(join(w.dir, f('att-pub.pem')), openssl(['x509', '-in', f('att-0.pem'), '-noout', '-pubkey']));
  // 4. Rebuild the signed bytes from the record's fields.
  const nonce = Buffer.from(a.nonce, 'base64url');
  const chip = Buffer.from(rec.board.chipId, 'ascii');
  let rebuilt: Buffer;
  if (a.mode === 'key-bound-v2') {
    const spki = openssl(['base64', '-d', '-A'], a.boundKey!.spki);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(spki.length);
    rebuilt = Buffer.concat([
      Buffer.from('line-station/attest/v2\0', 'ascii'),
      Buffer.of(a.boundKey!.role === 'device' ? 0x01 : 0x02),
      nonce,
      Buffer.of(chip.length),
      chip,
      len,
      spki,
      Buffer.from(a.measurementsSha256!, 'hex'),
    ]);
    expect(rebuilt.equals(openssl(['base64', '-d', '-A'], a.statement!))).toBe(true);
    // 5. Check what is bound: the certified key (device role) and the manifest's measurements.
    writeFileSync(join(w.dir, f('device.pem')), rec.certificate.pem);
    const certKey = openssl(
      ['base64', '-A'],
      openssl(['pkey', '-pubin', '-outform', 'DER'], openssl(['x509', '-in', f('device.pem'), '-noout', '-pubkey'])),
    ).toString();
    if (a.boundKey!.role === 'device') expect(certKey).toBe(a.boundKey!.spki);
    else expect(rec.key.mode).toBe('injected');
    const manifest =
      rec.manifest.payload ??
      (JSON.parse(Buffer.from(rec.manifest.jws!.split('.')[1]!, 'base64url').toString()) as {
        measurements: unknown;
      });
    writeFileSync(join(w.dir, f('measurements.json')), sortedJson(manifest.measurements));
    const digest = openssl(['dgst', '-sha256', '-r', f('measurements.json')]).toString();
    expect(digest.split(' ')[0]).toBe(a.measurementsSha256);
  } else {
    rebuilt = Buffer.concat([Buffer.from('line-station/attest/v1\0', 'ascii'), nonce, chip]);
  }
  writeFileSync(join(w.dir, f('signed.bin')), rebuilt);
  // 6. Verify the signature.
  writeFileSync(join(w.dir, f('sig.der')), openssl(['base64', '-d', '-A'], a.signature));
  const ok = openssl([
    'dgst',
    '-sha256',
    '-verify',
    f('att-pub.pem'),
    '-signature',
    f('sig.der'),
    f('signed.bin'),
  ]).toString();
  expect(ok.trim()).toBe('Verified OK');
  // ...and a single flipped bit in the rebuilt bytes does not verify (the check can fail).
  rebuilt[rebuilt.length - 1] = rebuilt[rebuilt.length - 1]! ^ 1;
  writeFileSync(join(w.dir, f('signed-bad.bin')), rebuilt);
  const bad = spawnSync(
    'openssl',
    ['dgst', '-sha256', '-verify', f('att-pub.pem'), '-signature', f('sig.der'), f('signed-bad.bin')],
    { cwd: w.dir, encoding: 'utf8' },
  );
  expect(bad.status).not.toBe(0);
  expect(bad.stdout).toContain('Verification failure');
}

const recordOf = (i: number): RecordJson =>
  JSON.parse(w.engine.store.findCurrentRecord(w.sim.state(i).chipId)!.recordJson) as RecordJson;

const stats = new Map<number, BoardClientStats>();
async function provision(i: number) {
  let client: BoardClientWithStats | null = null;
  const r = await w.engine.provision({
    port: w.sim.ports[i]!,
    workOrder: 'WO-DEMO-1',
    operator: 'op-1',
    instrumentBoard: (b) => (client = b),
  });
  if (client) stats.set(i, (client as BoardClientWithStats).stats());
  return r;
}

describe('attestation evidence in the record', () => {
  it('a protocol 1 board is refused (ATTEST_LEGACY_REFUSED) when its profile does not allow legacy mode', async () => {
    const r = await provision(2);
    expect(r.ok ? 'ok' : r.error.code).toBe('ATTEST_LEGACY_REFUSED');
    const chipId = w.sim.state(2).chipId;
    expect(w.engine.store.findActiveRun(chipId)).toBeNull();
    expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
    expect(
      w.engine.store.listAudit(0, 100_000).some((e) => e.type === 'run.started' && e.payload['chipId'] === chipId),
    ).toBe(false);
    expect(w.sim.state(2).hasKey).toBe(false);
  });

  it('key-bound records (on-board and injected) re-check with openssl by the documented steps', async () => {
    for (const i of [0, 1]) {
      const r = await provision(i);
      if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
      const rec = recordOf(i);
      expect(rec.attestation.mode).toBe('key-bound-v2');
      expect(rec.attestation.boundKey!.role).toBe(i === 0 ? 'device' : 'transport');
      recheck(rec, `b${i}`);
    }
  });

  it('legacy mode allowed by the profile: the v1 board provisions, its record says legacy-v1 and re-checks', async () => {
    // A copy of the board profiles in which ls-sim-se allows legacy mode.
    const dir = join(w.dir, 'profiles');
    cpSync(join(import.meta.dirname, '..', '..', 'resources', 'boards'), dir, { recursive: true });
    const p = join(dir, 'ls-sim-se.json');
    writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), attestation: { allowLegacyV1: true } }));
    const u = updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      paths: { ...(raw['paths'] as object), profilesDir: dir },
    }));
    expect(u.ok).toBe(true);
    await w.reopen();
    const r = await provision(2);
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    const rec = recordOf(2);
    expect(rec.attestation.mode).toBe('legacy-v1');
    expect(rec.attestation.statement).toBeUndefined();
    recheck(rec, 'b2');

    // Bytes on the wire per board (both directions), protocol 2 vs 1, same model (LS-SIM-SE, on-board key).
    const v2 = stats.get(0)!;
    const v1 = stats.get(2)!;
    const total = (s: BoardClientStats) => s.bytesSent + s.bytesReceived;
    console.log(
      `bytes per board on the wire (LS-SIM-SE): v2 ${total(v2)} (sent ${v2.bytesSent}, received ${v2.bytesReceived}, ${v2.requests} requests); ` +
        `v1 ${total(v1)} (sent ${v1.bytesSent}, received ${v1.bytesReceived}, ${v1.requests} requests); ` +
        `injected v2 (LS-SIM-BASIC): ${total(stats.get(1)!)}`,
    );
    // The statement costs about its own size (~205 bytes for a P-256 key) plus the key name in the request.
    expect(total(v2) - total(v1)).toBeGreaterThan(150);
    expect(total(v2) - total(v1)).toBeLessThan(400);
  });
});
