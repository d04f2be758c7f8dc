import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  createCipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  verify as nodeVerify,
  webcrypto,
  X509Certificate as NodeX509,
} from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeStatement, measurementsDigest } from '../../core/pki/attestation.js';
import { connectBoard, type BoardClientWithStats, type ConnectOptions } from '../../core/protocol/client.js';
import { FrameDecoder } from '../../core/protocol/framing.js';
import { decodeResponse, encodeRequest } from '../../core/protocol/messages.js';
import type { ByteLink } from '../../core/ports.js';
import { simBaseline } from './baseline.js';
import { attestationMessage } from './board.js';
import { nodeCrypto } from './pki.js';
import { liveSocatCount } from './pty.js';
import { serialOpener } from '../../native/serial.js';
import { monotonicMs, type SessionTrace } from './session.js';
import { startSimulator, type SimulatorHandle } from './simulator.js';

let dir: string;
let sim: SimulatorHandle;
const simLog: string[] = [];
const logTo = (l: string) => void simLog.push(l);
const links: ByteLink[] = [];

const SPECS = [
  { model: 'LS-SIM-SE' as const }, // 0: full flow, restart
  { model: 'LS-SIM-BASIC' as const }, // 1: key injection
  { model: 'LS-SIM-SE' as const }, // 2: faults
  { model: 'LS-SIM-SE' as const, latency: { keygen: 150 } }, // 3: replay / busy
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-sim-e2e-'));
  sim = await startSimulator({ dir, boards: SPECS, seed: 42, log: logTo });
});
afterAll(async () => {
  for (const l of links) await l.close();
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function open(path: string): Promise<ByteLink> {
  const l = await serialOpener().open(path);
  if (!l.ok) throw new Error(l.error.message);
  links.push(l.value);
  return l.value;
}

async function connect(i: number, opts: ConnectOptions = {}): Promise<BoardClientWithStats> {
  const c = await connectBoard(await open(sim.ports[i]!), { timeoutMs: 400, retries: 2, ...opts });
  if (!c.ok) throw new Error(`${c.error.code}: ${c.error.message}`);
  return c.value;
}

function value<T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

async function issueFor(spki: Uint8Array): Promise<Uint8Array[]> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const ca = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    { name: 'CN=Test Device CA', keys: ca, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    nodeCrypto,
  );
  const curve = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).asymmetricKeyDetails
    ?.namedCurve;
  const pub = await webcrypto.subtle.importKey(
    'spki',
    spki,
    { name: 'ECDSA', namedCurve: curve === 'secp384r1' ? 'P-384' : 'P-256' },
    true,
    ['verify'],
  );
  const leaf = await x509.X509CertificateGenerator.create(
    {
      subject: 'CN=device',
      issuer: caCert.subject,
      publicKey: pub,
      signingKey: ca.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    },
    nodeCrypto,
  );
  return [new Uint8Array(leaf.rawData), new Uint8Array(caCert.rawData)];
}

describe('simulator over real ptys', () => {
  it('exposes one station link per board, the vendor root, and alternating board info', () => {
    expect(sim.ports).toEqual(SPECS.map((_, i) => join(dir, `board-${i}`)));
    for (const p of sim.ports) expect(existsSync(p)).toBe(true);
    expect(readFileSync(sim.vendorRootPath, 'utf8')).toBe(sim.vendorRootPem);
    expect(sim.boards.map((b) => b.model)).toEqual(SPECS.map((s) => s.model));
    expect(liveSocatCount()).toBe(SPECS.length);
  });

  it('full SE flow: identify, attest, keygen + CSR, installCert, measure, lock; state survives a restart', async () => {
    const c = await connect(0);
    expect(c.protocolVersion).toBe(2);
    const id = value(await c.identify());
    expect(id).toMatchObject({
      chipId: sim.boards[0]!.chipId,
      serialNumber: sim.boards[0]!.serialNumber,
      model: 'LS-SIM-SE',
    });
    expect(id.state).toEqual({ hasKey: false, certificateSha256: null, locked: false });

    // Protocol 2: the statement binds a key the board holds; before keygen there is none.
    const nonce = new Uint8Array(randomBytes(32));
    const none = await c.attest(nonce, { key: 'device' });
    expect(!none.ok && none.error.code).toBe('BOARD_NO_KEY');

    const gen = value(await c.generateKey({ curve: 'P-256', subject: `LS ${id.serialNumber}` }));
    const csr = new x509.Pkcs10CertificateRequest(gen.csr);
    expect(await csr.verify(nodeCrypto)).toBe(true);
    expect(Buffer.from(csr.publicKey.rawData).equals(Buffer.from(gen.publicKeySpki))).toBe(true);

    const ev = value(await c.attest(nonce, { key: 'device' }));
    if (ev.protocol !== 2) throw new Error('expected protocol 2 evidence');
    const leaf = new NodeX509(Buffer.from(ev.chain[0]!));
    expect(leaf.verify(new NodeX509(sim.vendorRootPem).publicKey)).toBe(true);
    expect(leaf.subject).toContain(`serialNumber=${id.chipId}`);
    expect(nodeVerify('sha256', ev.statement, leaf.publicKey, ev.signature)).toBe(true);
    const st = decodeStatement(ev.statement)!;
    expect(st).toMatchObject({ role: 'device', chipId: id.chipId });
    expect(Buffer.from(st.nonce).equals(Buffer.from(nonce))).toBe(true);
    expect(Buffer.from(st.key).equals(Buffer.from(gen.publicKeySpki))).toBe(true);
    expect(st.measurementsSha256).toBe(await measurementsDigest(value(await c.readMeasurements())));

    const chain = await issueFor(gen.publicKeySpki);
    const inst = value(await c.installCertificate(chain));
    expect(inst.certificateSha256).toBe(
      new NodeX509(Buffer.from(chain[0]!)).fingerprint256.replace(/:/g, '').toLowerCase(),
    );

    const m = value(await c.readMeasurements());
    const base = simBaseline();
    expect(base.firmware['application']).toContain(m.firmware.find((f) => f.name === 'application')!.sha256);
    expect(base.fuseDigests).toContain(m.fuseDigest);
    expect(m.secureBoot && m.debugLocked).toBe(true);

    value(await c.lock());
    const locked = await c.generateKey({ curve: 'P-256', subject: 'again' });
    expect(!locked.ok && locked.error.code).toBe('BOARD_LOCKED');
    expect(sim.state(0)).toMatchObject({ hasKey: true, certSha256: inst.certificateSha256, locked: true });
    await c.close();

    // restart the whole simulator on the same dirs: the board is still provisioned
    const chipIds = sim.boards.map((b) => b.chipId);
    await sim.stop();
    expect(liveSocatCount()).toBe(0);
    sim = await startSimulator({ dir, boards: SPECS, seed: 43, log: logTo });
    expect(sim.boards.map((b) => b.chipId)).toEqual(chipIds);
    const c2 = await connect(0);
    const id2 = value(await c2.identify());
    expect(id2.state).toEqual({ hasKey: true, certificateSha256: inst.certificateSha256, locked: true });
    await c2.close();
  });

  it('key injection on a BASIC board through the client (HSM side emulated with node crypto)', async () => {
    const c = await connect(1);
    const t = value(await c.beginKeyInjection({ curve: 'P-256' }));
    const device = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const eph = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const kek = diffieHellman({
      privateKey: eph.privateKey,
      publicKey: createPublicKey({ key: Buffer.from(t.publicKeySpki), format: 'der', type: 'spki' }),
    });
    const w = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('A65959A6', 'hex'));
    const wrapped = Buffer.concat([w.update(device.privateKey.export({ type: 'pkcs8', format: 'der' })), w.final()]);
    const spki = new Uint8Array(device.publicKey.export({ type: 'spki', format: 'der' }));
    const r = value(
      await c.injectWrappedKey({
        curve: 'P-256',
        ephemeralPublicKeySpki: new Uint8Array(eph.publicKey.export({ type: 'spki', format: 'der' })),
        wrappedKey: new Uint8Array(wrapped),
        publicKeySpki: spki,
        subject: 'LS injected',
      }),
    );
    expect(Buffer.from(r.publicKeySpki).equals(Buffer.from(spki))).toBe(true);
    expect(await new x509.Pkcs10CertificateRequest(r.csr).verify(nodeCrypto)).toBe(true);
    const keygen = await c.generateKey({ curve: 'P-256', subject: 'x' });
    expect(!keygen.ok && keygen.error.code).toBe('BOARD_UNSUPPORTED');
    await c.close();
  });

  it('faults: refuseCert, badAttestation, badFirmware/debugUnlocked, stale, dropBytes, corruptBytes', async () => {
    const c = await connect(2);
    const gen = value(await c.generateKey({ curve: 'P-256', subject: 'dev' }));
    sim.setFaults(2, { refuseCert: true });
    const refused = await c.installCertificate(await issueFor(gen.publicKeySpki));
    expect(!refused.ok && refused.error.code).toBe('BOARD_CERT_REFUSED');

    sim.setFaults(2, { badAttestation: true });
    const nonce = new Uint8Array(randomBytes(32));
    const ev = value(await c.attest(nonce));
    const leaf = new NodeX509(Buffer.from(ev.chain[0]!));
    const signed = ev.protocol === 2 ? ev.statement : attestationMessage(nonce, sim.boards[2]!.chipId);
    expect(nodeVerify('sha256', signed, leaf.publicKey, ev.signature)).toBe(false);

    sim.setFaults(2, { badFirmware: true, debugUnlocked: true });
    const m = value(await c.readMeasurements());
    expect(simBaseline().firmware['application']).not.toContain(m.firmware[1]!.sha256);
    expect(m.debugLocked).toBe(false);

    sim.setFaults(2, { stale: true });
    simLog.length = 0;
    expect(value(await c.identify()).chipId).toBe(sim.boards[2]!.chipId);
    expect(simLog.some((l) => l.includes('fault stale'))).toBe(true);

    sim.setFaults(2, { dropBytes: 1 });
    const dropped = await c.identify({ timeoutMs: 150 });
    expect(!dropped.ok && dropped.error.code).toBe('PROTOCOL_TIMEOUT');

    sim.setFaults(2, { corruptBytes: 1 });
    const corrupt = await c.identify({ timeoutMs: 150 });
    expect(corrupt.ok).toBe(false);
    expect(!corrupt.ok && corrupt.error.code).toBe('PROTOCOL_CRC');

    sim.setFaults(2, {});
    expect(value(await c.identify()).chipId).toBe(sim.boards[2]!.chipId);
    await c.close();
  });

  it('disconnectOn unplugs mid-op (LINK_DISCONNECTED); the op took effect; re-plug resumes', async () => {
    const c = await connect(2);
    sim.setFaults(2, { disconnectOn: 'keygen' });
    const before = sim.state(2);
    const r = await c.generateKey({ curve: 'P-256', subject: 'dev' });
    expect(!r.ok && r.error.code).toBe('LINK_DISCONNECTED');
    await new Promise((res) => setTimeout(res, 100));
    expect(existsSync(sim.ports[2]!)).toBe(false);
    expect(sim.state(2).hasKey).toBe(true);
    expect(before.certSha256).toBeNull();
    await c.close();
    await sim.plug(2);
    expect(existsSync(sim.ports[2]!)).toBe(true);
    const c2 = await connect(2);
    expect(value(await c2.identify()).state.hasKey).toBe(true);
    // the fault fired once only
    value(await c2.generateKey({ curve: 'P-256', subject: 'dev' }));
    await c2.close();
  });

  it('replays the cached response for a repeated requestId+opcode, answers BUSY while executing, ignores garbage', async () => {
    const link = await open(sim.ports[3]!);
    const dec = new FrameDecoder();
    const frames: { requestId: number; opcode: number; payload: Uint8Array }[] = [];
    link.onData((d) => {
      for (const f of dec.push(d)) if (f.ok) frames.push({ ...f.header, payload: f.payload });
    });
    const waitFor = async (n: number) => {
      for (let t = 0; t < 200 && frames.length < n; t++) await new Promise((r) => setTimeout(r, 10));
      expect(frames.length).toBeGreaterThanOrEqual(n);
    };
    await link.write(new Uint8Array([0x55, 0x12, 0x00, 0x01, 0x02, 0x03, 0x00])); // noise, invalid frames: ignored
    const req = encodeRequest('keygen', 700, { curve: 'P-256', subject: 'replay' });
    await link.write(req);
    await new Promise((r) => setTimeout(r, 30));
    await link.write(encodeRequest('identify', 701, {})); // while keygen runs (150 ms latency): BUSY
    await link.write(req); // retry of the in-flight request: no second answer
    await waitFor(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(frames.map((f) => f.requestId)).toEqual([701, 700]);
    const busy = decodeResponse('identify', {
      header: { version: 1, kind: 'response', requestId: 701, opcode: 2 },
      payload: frames[0]!.payload,
    });
    expect(!busy.ok && busy.error.code).toBe('BOARD_BUSY');
    const first = value(
      decodeResponse('keygen', {
        header: { version: 1, kind: 'response', requestId: 700, opcode: 4 },
        payload: frames[1]!.payload,
      }),
    );
    await link.write(req); // lost answer: the station retries with the same id
    await waitFor(3);
    expect(Buffer.from(frames[2]!.payload).equals(Buffer.from(frames[1]!.payload))).toBe(true);
    // a new id executes again: a different key
    await link.write(encodeRequest('keygen', 702, { curve: 'P-256', subject: 'replay' }));
    await waitFor(4);
    const second = value(
      decodeResponse('keygen', {
        header: { version: 1, kind: 'response', requestId: 702, opcode: 4 },
        payload: frames[3]!.payload,
      }),
    );
    expect(Buffer.from(second.publicKey).equals(Buffer.from(first.publicKey))).toBe(false);
    // a schema-invalid request gets BAD_REQUEST
    await link.write(encodeRequest('attest', 703, { nonce: new Uint8Array(3) }));
    await waitFor(5);
    const bad = decodeResponse('attest', {
      header: { version: 1, kind: 'response', requestId: 703, opcode: 3 },
      payload: frames[4]!.payload,
    });
    expect(!bad.ok && bad.error.code).toBe('BOARD_BAD_REQUEST');
  });

  it('unplug removes the link and fails an open client; stop leaves no socat behind', async () => {
    const c = await connect(1);
    await sim.unplug(1);
    expect(existsSync(sim.ports[1]!)).toBe(false);
    const r = await c.identify();
    expect(!r.ok && r.error.code).toBe('LINK_DISCONNECTED');
    await c.close();
    await sim.plug(1);
    const c2 = await connect(1);
    expect(value(await c2.identify()).chipId).toBe(sim.boards[1]!.chipId);
    await c2.close();
    await sim.stop();
    expect(liveSocatCount()).toBe(0);
    for (const p of sim.ports) expect(existsSync(p)).toBe(false);
  });
});

describe('UART pacing and latency', () => {
  it('delays answers by the op latency and by the emulated byte rate', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ls-sim-baud-'));
    const slow = await startSimulator({
      dir: d,
      boards: [{ model: 'LS-SIM-SE', latency: { other: 100, keygen: 300 } }],
      baud: 4800,
    });
    try {
      const l = await serialOpener().open(slow.ports[0]!);
      if (!l.ok) throw new Error(l.error.message);
      let received = 0;
      l.value.onData((c) => (received += c.length));
      const c = value(await connectBoard(l.value, { timeoutMs: 5000 }));
      received = 0;
      let t = performance.now();
      value(await c.identify());
      const identifyMs = performance.now() - t;
      // 10 bit times per byte at 4800 baud, plus the 100 ms "other" latency
      expect(identifyMs).toBeGreaterThanOrEqual(100 + (received * 10 * 1000) / 4800 - 20);
      expect(received).toBeGreaterThan(150);
      t = performance.now();
      value(await c.generateKey({ curve: 'P-256', subject: 'slow' }));
      expect(performance.now() - t).toBeGreaterThanOrEqual(300);
      await c.close();
    } finally {
      await slow.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('trace', () => {
  it("reports each answered request's board-side timeline on the monotonic clock the station side reads too", async () => {
    const d = mkdtempSync(join(tmpdir(), 'ls-sim-trace-'));
    const traces: Array<{ board: number } & SessionTrace> = [];
    const traced = await startSimulator({
      dir: d,
      boards: [{ model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE', latency: { other: 40, keygen: 120 } }],
      trace: (board, t) => traces.push({ board, ...t }),
    });
    try {
      const l = await serialOpener().open(traced.ports[1]!);
      if (!l.ok) throw new Error(l.error.message);
      const c = value(await connectBoard(l.value, { timeoutMs: 5000 }));
      const calls: Array<{ start: number; end: number }> = [];
      const timedCall = async (call: () => Promise<{ ok: boolean }>): Promise<void> => {
        const start = monotonicMs();
        expect((await call()).ok).toBe(true);
        calls.push({ start, end: monotonicMs() });
      };
      await timedCall(() => c.identify());
      await timedCall(() => c.generateKey({ curve: 'P-256', subject: 'traced' }));
      await c.close();
      await new Promise((r) => setTimeout(r, 50)); // the trace of the last answer comes as it is written
      expect(traces.map((t) => [t.board, t.op])).toEqual([
        [1, 'hello'],
        [1, 'identify'],
        [1, 'keygen'],
      ]);
      for (const [k, t] of traces.slice(1).entries()) {
        // The request is decoded after the station sent it; the answer is written before the station has it.
        expect(t.rx).toBeGreaterThanOrEqual(calls[k]!.start);
        expect(t.sent).toBeLessThanOrEqual(calls[k]!.end);
        expect(t.rx).toBeLessThanOrEqual(t.run);
        expect(t.run).toBeLessThanOrEqual(t.done);
        expect(t.done).toBeLessThanOrEqual(t.sent);
      }
      // The processing time is spent between decoding and running the firmware (timers fire no earlier than set).
      expect(traces[1]!.run - traces[1]!.rx).toBeGreaterThanOrEqual(40 - 1);
      expect(traces[2]!.run - traces[2]!.rx).toBeGreaterThanOrEqual(120 - 1);
    } finally {
      await traced.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
