/**
 * Simulated TPM boards end to end: the real protocol client over socat ptys to the board firmware, relayed to real
 * swtpm processes; checked with tpm2-tools and openssl (straight on the board's swtpm, and through the relay with the
 * `cmd` TCTI bridge). Re-plug keeps NV; each TPM fault is observed at the TPM level; LS boards have no relay.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBoard, type BoardClientWithStats } from '../../core/protocol/client.js';
import { encodeFrame, FrameDecoder } from '../../core/protocol/framing.js';
import { decodeResponse, encodePayload, OPCODES } from '../../core/protocol/messages.js';
import type { ByteLink } from '../../core/ports.js';
import { serialOpener } from '../../native/serial.js';
import { tpm2tools, type RunningSwtpm } from '../../testkit/tpm/swtpm.js';
import { simTpmPcrs } from './baseline.js';
import { liveSocatCount } from './pty.js';
import { startSimulator, type SimulatorHandle } from './simulator.js';
import { tpmBridge, type TpmBridge } from './tpm-bridge.js';

const run = promisify(execFile);

let dir: string;
let sim: SimulatorHandle;
const links: ByteLink[] = [];
const simLog: string[] = [];

const ECC = 0;
const RSA = 1;
const LS_V3 = 2;
const LS = 3;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-sim-tpm-'));
  sim = await startSimulator({
    dir,
    boards: [
      { model: 'LS-SIM-TPM-ECC' },
      { model: 'LS-SIM-TPM-RSA' },
      { model: 'LS-SIM-SE', versions: [1, 2, 3] },
      { model: 'LS-SIM-SE' },
    ],
    log: (l) => void simLog.push(l),
  });
}, 60_000);
afterAll(async () => {
  for (const l of links) await l.close().catch(() => undefined);
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(i: number): Promise<BoardClientWithStats> {
  const l = await serialOpener().open(sim.ports[i]!);
  if (!l.ok) throw new Error(l.error.message);
  links.push(l.value);
  const c = await connectBoard(l.value, { timeoutMs: 2000, longTimeoutMs: 20_000, retries: 1 });
  if (!c.ok) throw new Error(`${c.error.code}: ${c.error.message}`);
  return c.value;
}

function value<T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
/** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MANUFACTURER, 1). */
const GETCAP_MANUFACTURER = hex('8001 00000016 0000017a 00000006 00000105 00000001');
/** TPM2_PCR_Read(sha256: PCRs 0, 4, 7). */
const PCR_READ_0_4_7 = hex('8001 00000014 0000017e 00000001 000b 03 910000');

/** A TPM 2.0 command (Part 1 §18): with `handles` and, if `auth`, one empty password session (TPM_RS_PW). */
function tpmCommand(cc: number, handles: number[], auth: boolean, params: string): Uint8Array {
  const body = Buffer.concat([
    Buffer.from(handles.map((h) => h.toString(16).padStart(8, '0')).join(''), 'hex'),
    auth ? hex('00000009 40000009 0000 00 0000') : Buffer.alloc(0),
    hex(params),
  ]);
  const head = Buffer.alloc(10);
  head.writeUInt16BE(auth ? 0x8002 : 0x8001, 0);
  head.writeUInt32BE(10 + body.length, 2);
  head.writeUInt32BE(cc, 6);
  return new Uint8Array(Buffer.concat([head, body]));
}
/** Empty TPM2B_SENSITIVE_CREATE, then a TPM2B_PUBLIC ECC P-256 template with `attrs` (hex u32) and `scheme`. */
const eccTemplate = (attrs: string, symmetric: string, scheme: string) => {
  const pub = `0023 000b ${attrs} 0000 ${symmetric} ${scheme} 0003 0010 0000 0000`;
  return `0004 0000 0000 ${(pub.replace(/\s/g, '').length / 2).toString(16).padStart(4, '0')} ${pub} 0000 00000000`;
};
/** TPM2_CreatePrimary(owner): an ECC P-256 storage key (restricted decrypt, AES-128-CFB). */
const CREATE_PRIMARY_SRK = tpmCommand(0x131, [0x40000001], true, eccTemplate('00030072', '0006 0080 0043', '0010'));
/** TPM2_Create(parent): an ECC P-256 ECDSA-SHA256 signing key, fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth. */
const createSigningKey = (parent: number) =>
  tpmCommand(0x153, [parent], true, eccTemplate('00040072', '0010', '0018 000b'));

function rc(rsp: Uint8Array): number {
  return Buffer.from(rsp).readUInt32BE(6);
}

/** Send a command through the board's relay; resend on TPM_RC_RETRY / TESTING / YIELDED (as a TSS does). */
async function transmit(c: BoardClientWithStats, command: Uint8Array): Promise<Uint8Array> {
  for (let i = 0; ; i++) {
    const r = value(await c.tpmTransmit(command));
    if (![0x922, 0x90a, 0x908].includes(rc(r)) || i === 5) return r;
  }
}
/** TPM2_CreatePrimary(owner): an ECC P-256 ECDSA-SHA256 signing key (not restricted: it may quote anything). */
const CREATE_PRIMARY_SIGNER = tpmCommand(0x131, [0x40000001], true, eccTemplate('00040072', '0010', '0018 000b'));
/** TPM2_Quote(key, qualifyingData, key's scheme, sha256: PCRs 0, 4, 7). */
const quoteCommand = (key: number, nonce: string) =>
  tpmCommand(
    0x158,
    [key],
    true,
    `${(nonce.length / 2).toString(16).padStart(4, '0')} ${nonce} 0010 00000001 000b 03 910000`,
  );
/** TPM2_FlushContext(handle). */
const flushCommand = (handle: number) => tpmCommand(0x165, [], false, handle.toString(16).padStart(8, '0'));

/** The outPublic (TPM2B_PUBLIC, size included) of a TPM2_Create response. */
function createdPublic(rsp: Uint8Array): Buffer {
  const b = Buffer.from(rsp);
  expect(rc(rsp)).toBe(0);
  let o = 14; // header, parameterSize
  o += 2 + b.readUInt16BE(o); // outPrivate
  return b.subarray(o, o + 2 + b.readUInt16BE(o));
}

/** Read a whole NV index with password sessions (TPM2_NV_ReadPublic, then TPM2_NV_Read in 512-byte chunks). */
async function nvReadByRelay(c: BoardClientWithStats, index: number): Promise<Buffer> {
  const pub = Buffer.from(value(await c.tpmTransmit(tpmCommand(0x169, [index], false, ''))));
  expect(rc(pub)).toBe(0);
  const size = pub.readUInt16BE(10 + 2 + 4 + 2 + 4 + 2 + pub.readUInt16BE(10 + 2 + 4 + 2 + 4)); // nvPublic.dataSize
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += 512) {
    const n = Math.min(512, size - off);
    const p = `${n.toString(16).padStart(4, '0')}${off.toString(16).padStart(4, '0')}`;
    const r = Buffer.from(value(await c.tpmTransmit(tpmCommand(0x14e, [index, index], true, p))));
    expect(rc(r)).toBe(0);
    parts.push(r.subarray(16, 16 + r.readUInt16BE(14)));
  }
  return Buffer.concat(parts);
}

/** The SHA-256 digests of a TPM2_PCR_Read response, in PCR order. */
function pcrDigests(rsp: Uint8Array): string[] {
  const b = Buffer.from(rsp);
  expect(b.readUInt32BE(6)).toBe(0);
  let o = 10 + 4; // header, pcrUpdateCounter
  const sels = b.readUInt32BE(o);
  o += 4;
  for (let i = 0; i < sels; i++) o += 3 + b[o + 2]!;
  const n = b.readUInt32BE(o);
  o += 4;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = b.readUInt16BE(o);
    out.push(b.subarray(o + 2, o + 2 + len).toString('hex'));
    o += 2 + len;
  }
  return out;
}

function mainTpm(i: number): RunningSwtpm {
  const t = sim.tpm(i)?.main;
  if (!t) throw new Error(`board ${i} has no running TPM`);
  return t;
}

/** Chip id per the contract, computed with openssl from the EK certificate tpm2-tools reads from the board's TPM. */
async function chipIdByTools(i: number, nvIndex: string): Promise<string> {
  const der = join(dir, `ek-${i}.der`);
  await tpm2tools(mainTpm(i))('tpm2_nvread', [nvIndex, '-C', 'o', '-o', der]);
  const pem = await run('openssl', ['x509', '-inform', 'der', '-in', der, '-noout', '-pubkey']);
  const pubPem = join(dir, `ek-${i}.pub.pem`);
  writeFileSync(pubPem, pem.stdout);
  const spki = await run('openssl', ['pkey', '-pubin', '-in', pubPem, '-outform', 'der'], { encoding: 'buffer' });
  return createHash('sha256').update(spki.stdout).digest().subarray(0, 16).toString('hex');
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

describe('TPM boards: identify and relay over the protocol', () => {
  it('answer hello with protocol 3 and identify with the model and the EK-derived chip id (checked with tpm2-tools and openssl)', async () => {
    expect(sim.tpmVendorRootPath).toBe(join(dir, 'state', 'tpm-vendor-root.pem'));
    expect(sim.tpmVendorRootPem?.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(sim.tpmVendorIssuerPath).toBe(join(dir, 'state', 'tpm-vendor-ek-ca.pem'));
    for (const [i, model, nv] of [
      [ECC, 'LS-SIM-TPM-ECC', '0x01c0000a'],
      [RSA, 'LS-SIM-TPM-RSA', '0x01c00002'],
    ] as const) {
      const c = await connect(i);
      expect(c.protocolVersion).toBe(3);
      const id = value(await c.identify());
      expect(id.model).toBe(model);
      expect(id.serialNumber).toMatch(/^LT[0-9A-F]{8}$/);
      expect(id.capabilities).toEqual({ onboardKeygen: true, keyInjection: false, curves: ['P-256'] });
      expect(id.chipId).toBe(await chipIdByTools(i, nv));
      expect(sim.boards[i]!.chipId).toBe(id.chipId);
      // the LS messages that make no sense for a TPM board
      expect(await c.readMeasurements()).toMatchObject({ ok: false, error: { code: 'BOARD_UNSUPPORTED' } });
      expect(await c.generateKey({ curve: 'P-256', subject: 'x' })).toMatchObject({
        ok: false,
        error: { code: 'BOARD_UNSUPPORTED' },
      });
      expect(await c.attest(new Uint8Array(32))).toMatchObject({ ok: false, error: { code: 'BOARD_UNSUPPORTED' } });
      await c.close();
    }
  });

  it('relays TPM2_GetCapability and TPM2_PCR_Read through the protocol client to swtpm, bytes unchanged', async () => {
    const c = await connect(ECC);
    const cap = value(await c.tpmTransmit(GETCAP_MANUFACTURER));
    expect(Buffer.from(cap.subarray(6, 10)).readUInt32BE(0)).toBe(0);
    expect(Buffer.from(cap.subarray(-4)).toString('latin1')).toBe('IBM\0');
    // the same bytes as swtpm gives the command directly
    expect(cap).toEqual(value(await mainTpm(ECC).transmit(GETCAP_MANUFACTURER)));
    const pcrs = pcrDigests(value(await c.tpmTransmit(PCR_READ_0_4_7)));
    const want = simTpmPcrs();
    expect(pcrs).toEqual([want[0], want[4], want[7]]);
    // tpm2-tools agrees, straight on the board's swtpm
    const { stdout } = await tpm2tools(mainTpm(ECC))('tpm2_pcrread', ['sha256:0,4,7']);
    expect(stdout.toLowerCase().replace(/\s+/g, '')).toContain(`4:0x${want[4]}`);
    await c.close();
  });

  it('a malformed tpm request (not one TPM 2.0 command) is answered BAD_REQUEST by the board schema check', async () => {
    const c = await connect(ECC); // a protocol 3 session (hello) on the board
    await c.close();
    const l = await serialOpener().open(sim.ports[ECC]!);
    if (!l.ok) throw new Error(l.error.message);
    links.push(l.value);
    const frames: Uint8Array[] = [];
    const dec = new FrameDecoder();
    l.value.onData((d) => {
      for (const f of dec.push(d)) if (f.ok) frames.push(f.payload);
    });
    const ask = async (id: number, command: Uint8Array) => {
      const n = frames.length;
      const header = { version: 1, kind: 'request', requestId: id, opcode: OPCODES.tpm } as const;
      await l.value.write(encodeFrame(header, encodePayload({ command })));
      for (let i = 0; i < 100 && frames.length === n; i++) await new Promise((r) => setTimeout(r, 20));
      return decodeResponse('tpm', { header: { ...header, kind: 'response' }, payload: frames[n]! });
    };
    const sizeLies = new Uint8Array(GETCAP_MANUFACTURER);
    sizeLies[5] = 0x40; // header size 0x40, 22 bytes carried
    const tpm12 = new Uint8Array(GETCAP_MANUFACTURER);
    tpm12[0] = 0x00;
    tpm12[1] = 0xc1;
    for (const [id, bad] of [
      [101, sizeLies],
      [102, tpm12],
      [103, GETCAP_MANUFACTURER.subarray(0, 9)],
    ] as const)
      expect(await ask(id, bad)).toMatchObject({ ok: false, error: { code: 'BOARD_BAD_REQUEST' } });
    expect(simLog.filter((x) => x.includes('tpm #10') && x.includes('BAD_REQUEST'))).toHaveLength(3);
    // the same link still relays a good command (the hello of this fresh link is not needed again: same power cycle)
    expect(await ask(104, GETCAP_MANUFACTURER)).toMatchObject({ ok: true });
  });

  it('LS boards have no TPM relay: BOARD_UNSUPPORTED from the client (protocol 2) or from the board (protocol 3)', async () => {
    const v2 = await connect(LS);
    expect(v2.protocolVersion).toBe(2);
    expect(await v2.tpmTransmit(GETCAP_MANUFACTURER)).toMatchObject({
      ok: false,
      error: { code: 'BOARD_UNSUPPORTED' },
    });
    const v3 = await connect(LS_V3);
    expect(v3.protocolVersion).toBe(3);
    expect(await v3.tpmTransmit(GETCAP_MANUFACTURER)).toMatchObject({
      ok: false,
      error: { code: 'BOARD_UNSUPPORTED', details: { boardCode: 'UNSUPPORTED' } },
    });
    await v2.close();
    await v3.close();
  });

  it('a re-plug restarts the swtpm with the same state: NV and persistent keys stay, PCRs boot again', async () => {
    const tools = tpm2tools(mainTpm(RSA));
    const data = join(dir, 'nv-data.bin');
    writeFileSync(data, 'kept across a power cycle');
    await tools('tpm2_nvdefine', ['0x01800123', '-C', 'o', '-s', '25', '-a', 'ownerread|ownerwrite']);
    await tools('tpm2_nvwrite', ['0x01800123', '-C', 'o', '-i', data]);
    const before = mainTpm(RSA).pid;
    await sim.unplug(RSA);
    expect(sim.tpm(RSA)).toEqual({ main: null, other: null });
    expect(alive(before)).toBe(false);
    await sim.plug(RSA);
    expect(mainTpm(RSA).pid).not.toBe(before);
    // read back through the relay with tpm2-tools (cmd TCTI bridge over the station's client)
    const c = await connect(RSA);
    const bridge = await tpmBridge((cmd, o) => c.tpmTransmit(cmd, o));
    try {
      const out = join(dir, 'nv-out.bin');
      await bridge.tools('tpm2_nvread', ['0x01800123', '-C', 'o', '-o', out]);
      expect(readFileSync(out, 'utf8')).toBe('kept across a power cycle');
      await bridge.tools('tpm2_nvundefine', ['0x01800123', '-C', 'o']);
    } finally {
      await bridge.close();
    }
    const want = simTpmPcrs();
    expect(pcrDigests(value(await c.tpmTransmit(PCR_READ_0_4_7)))).toEqual([want[0], want[4], want[7]]);
    await c.close();
  });
});

describe('TPM board faults, seen at the TPM level', () => {
  let bridge: TpmBridge | null = null;
  afterAll(async () => {
    await bridge?.close();
  });

  /** Set board i's faults, re-plug it (boot faults act at power-on) and bridge tpm2-tools through its relay. */
  async function rebootWith(i: number, faults: Parameters<SimulatorHandle['setFaults']>[1]) {
    await bridge?.close();
    bridge = null;
    sim.setFaults(i, faults);
    await sim.unplug(i);
    await sim.plug(i);
    const c = await connect(i);
    bridge = await tpmBridge((cmd, o) => c.tpmTransmit(cmd, o));
    return { c, tools: bridge.tools };
  }

  it('tpm-rogue-template: the key created through the relay lacks fixedTPM and fixedParent (tpm2_print)', async () => {
    const { c } = await rebootWith(ECC, { tpmRogueTemplate: true });
    const prim = await transmit(c, CREATE_PRIMARY_SRK);
    expect(rc(prim)).toBe(0);
    const parent = Buffer.from(prim).readUInt32BE(10);
    const print = async (pub: Buffer, name: string) => {
      writeFileSync(join(dir, name), pub);
      return (await run('tpm2_print', ['-t', 'TPM2B_PUBLIC', join(dir, name)])).stdout;
    };
    const rogue = await print(createdPublic(await transmit(c, createSigningKey(parent))), 'rogue.pub');
    expect(rogue).toMatch(/sensitivedataorigin\|userwithauth\|sign/);
    expect(rogue).not.toMatch(/fixedtpm/);
    expect(rogue).not.toMatch(/fixedparent/);
    expect(simLog.some((l) => l.includes('tpm-rogue-template'))).toBe(true);
    // without the fault (it acts at once) the same template keeps them
    sim.setFaults(ECC, {});
    const honest = await print(createdPublic(await transmit(c, createSigningKey(parent))), 'honest.pub');
    expect(honest).toMatch(/fixedtpm\|fixedparent\|sensitivedataorigin/);
    expect(rc(value(await c.tpmTransmit(flushCommand(parent))))).toBe(0);
  });

  it('tpm-stale-quote: every TPM2_Quote is answered with the first one (its old qualifying data, tpm2_print)', async () => {
    const { c } = await rebootWith(ECC, { tpmStaleQuote: true });
    const key = Buffer.from(await transmit(c, CREATE_PRIMARY_SIGNER));
    expect(rc(key)).toBe(0);
    const handle = key.readUInt32BE(10);
    const attest = async (nonce: string, n: number) => {
      const r = Buffer.from(await transmit(c, quoteCommand(handle, nonce)));
      expect(rc(r)).toBe(0);
      const quoted = r.subarray(16, 16 + r.readUInt16BE(14)); // header, parameterSize, TPM2B_ATTEST
      writeFileSync(join(dir, `quote-${n}.bin`), quoted);
      return (await run('tpm2_print', ['-t', 'TPMS_ATTEST', join(dir, `quote-${n}.bin`)])).stdout;
    };
    const first = await attest('1111111111111111', 1);
    const second = await attest('2222222222222222', 2);
    expect(first).toMatch(/extraData: 1111111111111111/);
    expect(second).toMatch(/extraData: 1111111111111111/); // the new nonce is not in it
    expect(simLog.some((l) => l.includes('tpm-stale-quote'))).toBe(true);
    sim.setFaults(ECC, {}); // acts at once: a fresh quote again
    expect(await attest('3333333333333333', 3)).toMatch(/extraData: 3333333333333333/);
    expect(rc(value(await c.tpmTransmit(flushCommand(handle))))).toBe(0);
  });

  it('tpm-pcr-mismatch: PCR 4 holds the tampered application after boot; PCRs 0 and 7 are as expected', async () => {
    const { c } = await rebootWith(RSA, { tpmPcrMismatch: true });
    const got = pcrDigests(value(await c.tpmTransmit(PCR_READ_0_4_7)));
    const want = simTpmPcrs();
    expect(got).toEqual([want[0], simTpmPcrs({ tampered: true })[4], want[7]]);
    expect(got[1]).not.toBe(want[4]);
  });

  it('tpm-lockout: the TPM is in DA lockout at boot (tpm2_getcap) and refuses DA-protected use; cleared, it recovers', async () => {
    const { tools } = await rebootWith(RSA, { tpmLockout: true });
    const vars = (await tpm2tools(mainTpm(RSA))('tpm2_getcap', ['properties-variable'])).stdout;
    expect(vars).toMatch(/inLockout:\s+1/);
    expect(vars).toMatch(/TPM2_PT_MAX_AUTH_FAIL: 0x1/);
    const f = (n: string) => join(dir, n);
    await tools('tpm2_createprimary', ['-C', 'o', '-G', 'ecc256', '-c', f('l-prim.ctx')]);
    await tools('tpm2_flushcontext', ['-t']);
    await expect(
      tools('tpm2_create', ['-C', f('l-prim.ctx'), '-G', 'ecc256', '-u', f('l.pub'), '-r', f('l.priv')]),
    ).rejects.toThrow(/0x921|lockout/i);
    await tools('tpm2_flushcontext', ['-t']);
    await rebootWith(RSA, { tpmLockout: true }); // still on: locked out again at the next boot
    expect((await tpm2tools(mainTpm(RSA))('tpm2_getcap', ['properties-variable'])).stdout).toMatch(/inLockout:\s+1/);
    await rebootWith(RSA, {});
    const after = (await tpm2tools(mainTpm(RSA))('tpm2_getcap', ['properties-variable'])).stdout;
    expect(after).toMatch(/inLockout:\s+0/);
    expect(after).toMatch(/TPM2_PT_MAX_AUTH_FAIL: 0x3/);
  });

  it('tpm-untrusted-ek: the board runs a TPM whose EK certificate the station-trusted CA did not sign (openssl verify)', async () => {
    const genuine = sim.boards[RSA]!.chipId;
    const { c } = await rebootWith(RSA, { tpmUntrustedEk: true });
    const id = value(await c.identify());
    expect(id.chipId).not.toBe(genuine);
    expect(id.chipId).toBe(await chipIdByTools(RSA, '0x01c00002'));
    const trust = ['-CAfile', sim.tpmVendorRootPath!, '-untrusted', sim.tpmVendorIssuerPath!];
    const pem = join(dir, 'ek-untrusted.pem');
    await run('openssl', ['x509', '-inform', 'der', '-in', join(dir, `ek-${RSA}.der`), '-out', pem]);
    await expect(run('openssl', ['verify', ...trust, pem])).rejects.toThrow(/unable to get local issuer/);
    // the genuine TPM's certificate verifies against the same file
    const { c: back } = await rebootWith(RSA, {});
    expect(value(await back.identify()).chipId).toBe(genuine);
    await chipIdByTools(RSA, '0x01c00002');
    await run('openssl', ['x509', '-inform', 'der', '-in', join(dir, `ek-${RSA}.der`), '-out', pem]);
    await run('openssl', ['verify', ...trust, pem]);
  });

  it('tpm-other-tpm: the EK certificate comes from the board TPM, everything else from a second TPM', async () => {
    const { c, tools } = await rebootWith(RSA, { tpmOtherTpm: true });
    const tpms = sim.tpm(RSA)!;
    expect(tpms.other).not.toBeNull();
    expect(value(await c.identify()).chipId).toBe(sim.boards[RSA]!.chipId);
    // the EK certificate read through the relay (password sessions) is the board's own ...
    const viaRelay = join(dir, 'ek-relay.der');
    writeFileSync(viaRelay, await nvReadByRelay(c, 0x01c00002));
    await chipIdByTools(RSA, '0x01c00002');
    expect(readFileSync(viaRelay)).toEqual(readFileSync(join(dir, `ek-${RSA}.der`)));
    // ... but the EK the relay answers with (recreated from the template) is the other TPM's, not the certificate's
    const ekRelay = join(dir, 'ek-relay.pem');
    await tools('tpm2_createek', ['-c', '-', '-G', 'rsa', '-u', ekRelay, '-f', 'pem']);
    const ekOther = join(dir, 'ek-other.pem');
    await tpm2tools(tpms.other!)('tpm2_createek', ['-c', '-', '-G', 'rsa', '-u', ekOther, '-f', 'pem']);
    const certKey = (await run('openssl', ['x509', '-inform', 'der', '-in', viaRelay, '-noout', '-pubkey'])).stdout;
    expect(readFileSync(ekRelay, 'utf8').trim()).toBe(readFileSync(ekOther, 'utf8').trim());
    expect(readFileSync(ekRelay, 'utf8').trim()).not.toBe(certKey.trim());
    await rebootWith(RSA, {});
    expect(sim.tpm(RSA)!.other).toBeNull();
    expect(alive(tpms.other!.pid)).toBe(false);
  });

  it('tpm-disconnect-on: the TPM runs the command, then the board is unplugged before answering', async () => {
    const { c } = await rebootWith(ECC, { tpmDisconnectOn: 'GetCapability' });
    const r = await c.tpmTransmit(GETCAP_MANUFACTURER);
    expect(r).toMatchObject({ ok: false, error: { code: 'LINK_DISCONNECTED' } });
    expect(sim.tpm(ECC)).toEqual({ main: null, other: null });
    await sim.plug(ECC);
    const again = await connect(ECC);
    expect(value(await again.tpmTransmit(GETCAP_MANUFACTURER)).length).toBeGreaterThan(10);
  });
});

describe('stop', () => {
  it('kills every swtpm process the simulator started (and its socat)', async () => {
    const pids = [ECC, RSA].flatMap((i) => {
      const t = sim.tpm(i);
      return [t?.main?.pid, t?.other?.pid].filter((p): p is number => p !== undefined);
    });
    expect(pids.length).toBeGreaterThanOrEqual(2);
    for (const p of pids) expect(alive(p)).toBe(true);
    await sim.stop();
    for (const p of pids) expect(alive(p)).toBe(false);
    expect(sim.tpm(ECC)).toEqual({ main: null, other: null });
    expect(liveSocatCount()).toBe(0);
  });
});
