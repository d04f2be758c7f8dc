import { afterEach, describe, expect, it } from 'vitest';
import { connectBoard, type ConnectOptions } from './client.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import { memoryLinkPair, type MemoryLink } from '../../testkit/memory-link.js';
import {
  decodeRequest,
  encodeResponse,
  OPCODES,
  type AnyRequest,
  type ErrorBody,
  type Op,
  type Responses,
} from './messages.js';
import type { Logger, LogLevel } from '../ports.js';

const b = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

const RESPONSES: Responses = {
  hello: { version: 1, maxFrame: 4096, board: 'fake' },
  identify: {
    chipId: '00A1B2C3D4E5F607',
    serialNumber: 'SN-1',
    model: 'LS-DEV',
    hardwareRevision: 'B',
    firmwareVersion: '1.2.3',
    capabilities: { onboardKeygen: true, keyInjection: false, curves: ['P-256', 'Ed25519'] },
    state: { hasKey: true, certSha256: b(32, 0xcd), locked: false },
  },
  attest: { signature: b(70, 0x30), chain: [b(300, 5)] },
  keygen: { publicKey: b(91, 7), csr: b(250, 8) },
  injectBegin: { transportKey: b(91, 9) },
  injectKey: { publicKey: b(91, 10), csr: b(250, 11) },
  installCert: { certSha256: b(32, 0xee) },
  measure: {
    firmware: [{ name: 'app', version: '2.0', sha256: b(32, 0xab) }],
    secureBoot: true,
    debugLocked: true,
    fuseDigest: b(32, 0x01),
    configDigest: b(32, 0x02),
  },
  lock: { locked: true },
  zeroize: { zeroized: true },
  tpm: { response: Uint8Array.from(Buffer.from('80010000000a00000000', 'hex')) },
};

/**
 * What the fake board does with a request: a response body, `null` to stay silent, or raw bytes to send.
 * By default it answers from RESPONSES and, like a real board, replays its cached response for a repeated id.
 */
type Handler = (
  req: AnyRequest,
  n: number,
  board: FakeBoard,
) => Responses[Op] | ErrorBody | null | Uint8Array | 'default';

interface FakeBoard {
  link: MemoryLink;
  seen: AnyRequest[];
  executed: Op[];
  inFlightMax: number;
  send(bytes: Uint8Array): void;
}

function fakeBoard(link: MemoryLink, handler: Handler = () => 'default'): FakeBoard {
  const dec = new FrameDecoder();
  const board: FakeBoard = {
    link,
    seen: [],
    executed: [],
    inFlightMax: 0,
    send: (x) => void link.write(x).catch(() => undefined),
  };
  let cache: { id: number; op: Op; frame: Uint8Array } | null = null;
  link.onData((chunk) => {
    for (const f of dec.push(chunk)) {
      if (!f.ok) continue;
      const r = decodeRequest(f);
      if (!r.ok) {
        board.send(
          encodeResponse('identify', f.header.requestId, { error: { code: 'BAD_REQUEST', message: r.error.message } }),
        );
        continue;
      }
      const req = r.value;
      board.seen.push(req);
      const out = handler(req, board.seen.length, board);
      if (out === null) continue;
      if (out instanceof Uint8Array) {
        board.send(out);
        continue;
      }
      if (out === 'default' && cache && cache.id === req.requestId && cache.op === req.op) {
        board.send(cache.frame); // replay
        continue;
      }
      board.executed.push(req.op);
      const frame = encodeResponse(req.op, req.requestId, out === 'default' ? RESPONSES[req.op] : out);
      cache = { id: req.requestId, op: req.op, frame };
      board.send(frame);
    }
  });
  return board;
}

class MemoryLogger implements Logger {
  lines: { level: LogLevel; msg: string; ctx?: Readonly<Record<string, unknown>> }[] = [];
  log(level: LogLevel, msg: string, ctx?: Readonly<Record<string, unknown>>): void {
    this.lines.push(ctx ? { level, msg, ctx } : { level, msg });
  }
  child(): Logger {
    return this;
  }
}

const links: MemoryLink[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) await l.close();
});

function setup(handler?: Handler, opts: ConnectOptions = {}) {
  const [station, boardEnd] = memoryLinkPair('mem:station', 'mem:board');
  links.push(station, boardEnd);
  const board = fakeBoard(boardEnd, handler);
  const logger = new MemoryLogger();
  const connect = () => connectBoard(station, { timeoutMs: 60, retries: 2, logger, ...opts });
  return { station, board, logger, connect };
}

async function connected(handler?: Handler, opts: ConnectOptions = {}) {
  const s = setup(handler, opts);
  const r = await s.connect();
  if (!r.ok) throw new Error(`connect failed: ${r.error.code} ${r.error.message}`);
  return { ...s, client: r.value };
}

describe('connectBoard: negotiation', () => {
  it('says hello offering [1, 2, 3], then converts every answer to the model types', async () => {
    const { client, board } = await connected(undefined, { firstRequestId: 65534 });
    expect(board.seen[0]).toEqual({ op: 'hello', requestId: 65534, body: { versions: [1, 2, 3] } });
    expect(client.protocolVersion).toBe(1);
    expect(client.board).toBe('fake');
    expect(client.path).toBe('mem:station');

    const id = await client.identify();
    expect(id).toEqual({
      ok: true,
      value: {
        protocolVersion: 1,
        chipId: '00a1b2c3d4e5f607',
        serialNumber: 'SN-1',
        model: 'LS-DEV',
        hardwareRevision: 'B',
        firmwareVersion: '1.2.3',
        capabilities: { onboardKeygen: true, keyInjection: false, curves: ['P-256'] },
        state: { hasKey: true, certificateSha256: 'cd'.repeat(32), locked: false },
      },
    });
    // ids increment and wrap from 65535 to 1 (0 is reserved)
    expect(board.seen.map((r) => r.requestId)).toEqual([65534, 65535]);
    await client.lock();
    expect(board.seen[2]!.requestId).toBe(1);

    const nonce = b(32, 0x5a);
    expect(await client.attest(nonce)).toEqual({ ok: true, value: { protocol: 1, ...RESPONSES.attest } });
    expect(board.seen.at(-1)).toEqual(expect.objectContaining({ op: 'attest', body: { nonce } }));
    expect(await client.generateKey({ curve: 'P-384', subject: 'CN=a' })).toEqual({
      ok: true,
      value: { publicKeySpki: RESPONSES.keygen.publicKey, csr: RESPONSES.keygen.csr },
    });
    expect(board.seen.at(-1)).toMatchObject({ op: 'keygen', body: { curve: 'P-384', subject: 'CN=a' } });
    expect(await client.beginKeyInjection({ curve: 'P-256' })).toEqual({
      ok: true,
      value: { curve: 'P-256', publicKeySpki: RESPONSES.injectBegin.transportKey },
    });
    const inj = await client.injectWrappedKey({
      curve: 'P-256',
      ephemeralPublicKeySpki: b(91, 1),
      wrappedKey: b(48, 2),
      publicKeySpki: b(91, 3),
      subject: 'CN=b',
    });
    expect(inj).toEqual({
      ok: true,
      value: { publicKeySpki: RESPONSES.injectKey.publicKey, csr: RESPONSES.injectKey.csr },
    });
    expect(board.seen.at(-1)).toMatchObject({
      op: 'injectKey',
      body: { curve: 'P-256', ephemeralKey: b(91, 1), wrappedKey: b(48, 2), publicKey: b(91, 3), subject: 'CN=b' },
    });
    expect(await client.installCertificate([b(400, 1), b(300, 2)])).toEqual({
      ok: true,
      value: { certificateSha256: 'ee'.repeat(32) },
    });
    expect(await client.readMeasurements()).toEqual({
      ok: true,
      value: {
        firmware: [{ name: 'app', version: '2.0', sha256: 'ab'.repeat(32) }],
        secureBoot: true,
        debugLocked: true,
        fuseDigest: '01'.repeat(32),
        configDigest: '02'.repeat(32),
      },
    });
    expect(await client.zeroize('00a1b2c3d4e5f607')).toEqual({ ok: true, value: { zeroized: true } });
    expect(board.seen.at(-1)).toMatchObject({ op: 'zeroize', body: { chipId: '00a1b2c3d4e5f607' } });

    // input guards never reach the wire
    const before = board.seen.length;
    expect(await client.attest(b(31))).toMatchObject({ ok: false, error: { code: 'INPUT_INVALID' } });
    expect(await client.zeroize('zz')).toMatchObject({ ok: false, error: { code: 'INPUT_INVALID' } });
    expect(board.seen.length).toBe(before);

    const st = client.stats();
    expect(st.requests).toBe(board.seen.length);
    expect(st.retries).toBe(0);
    expect(st.bytesSent).toBeGreaterThan(400 + 300 + 91 * 2 + 48);
    expect(st.bytesReceived).toBeGreaterThan(300 + 250 * 2);
  });

  it('fails with PROTOCOL_VERSION when the board answers VERSION or picks a version not offered', async () => {
    const a = setup((req) => (req.op === 'hello' ? { error: { code: 'VERSION', message: 'only v2' } } : 'default'));
    expect(await a.connect()).toMatchObject({ ok: false, error: { code: 'PROTOCOL_VERSION' } });
    const c = setup((req) => (req.op === 'hello' ? { version: 4, maxFrame: 4096, board: 'future' } : 'default'));
    expect(await c.connect()).toMatchObject({ ok: false, error: { code: 'PROTOCOL_VERSION' } });
  });

  it('protocol 2: attest names the key to bind and returns the statement; an answer without one is refused', async () => {
    const statement = b(180, 0x11);
    let withStatement = true;
    const { client, board } = await connected((req) => {
      if (req.op === 'hello') return { version: 2, maxFrame: 4096, board: 'v2' };
      if (req.op === 'attest') return withStatement ? { statement, ...RESPONSES.attest } : RESPONSES.attest;
      return 'default';
    });
    expect(client.protocolVersion).toBe(2);
    const nonce = b(32, 0x5b);
    expect(await client.attest(nonce, { key: 'transport' })).toEqual({
      ok: true,
      value: { protocol: 2, statement, ...RESPONSES.attest },
    });
    expect(board.seen.at(-1)).toMatchObject({ op: 'attest', body: { nonce, key: 'transport' } });
    withStatement = false;
    expect(await client.attest(nonce, { key: 'device' })).toMatchObject({
      ok: false,
      error: { code: 'ATTEST_STATEMENT_INVALID' },
    });
  });

  it('protocol 3: tpmTransmit relays one TPM command and returns the response bytes unchanged', async () => {
    // TPM2_GetCapability(TPM_PROPERTIES, TPM_PT_MANUFACTURER, 1) and a response carrying "IBM"
    const command = Uint8Array.from(
      Buffer.from('800100000016' + '0000017a' + '00000006' + '00000105' + '00000001', 'hex'),
    );
    const response = Uint8Array.from(
      Buffer.from('80010000001b' + '00000000' + '00' + '00000006' + '00000001' + '00000105' + '49424d00', 'hex'),
    );
    let answer: 'ok' | 'no-tpm' | 'garbage' | 'silent-once' = 'ok';
    let silent = 0;
    const { client, board } = await connected((req) => {
      if (req.op === 'hello') return { version: 3, maxFrame: 4096, board: 'tpm board' };
      if (req.op !== 'tpm') return 'default';
      if (answer === 'no-tpm') return { error: { code: 'UNSUPPORTED', message: 'this board has no TPM' } };
      if (answer === 'garbage') return { response: response.subarray(0, 12) };
      if (answer === 'silent-once' && silent++ === 0) return null;
      return { response };
    });
    expect(board.seen[0]).toMatchObject({ op: 'hello', body: { versions: [1, 2, 3] } });
    expect(client.protocolVersion).toBe(3);
    const r = await client.tpmTransmit(command);
    expect(r).toEqual({ ok: true, value: response });
    expect(board.seen.at(-1)).toMatchObject({ op: 'tpm', body: { command } });

    // a retry after a timeout carries the same request id: the board replays its answer, the TPM runs it once
    answer = 'silent-once';
    const n = board.executed.length;
    expect(await client.tpmTransmit(command, { timeoutMs: 60 })).toEqual({ ok: true, value: response });
    const tries = board.seen.slice(-2);
    expect(tries.map((q) => q.op)).toEqual(['tpm', 'tpm']);
    expect(tries[0]!.requestId).toBe(tries[1]!.requestId);
    expect(board.executed.length).toBe(n + 1);

    answer = 'no-tpm';
    expect(await client.tpmTransmit(command)).toMatchObject({ ok: false, error: { code: 'BOARD_UNSUPPORTED' } });
    answer = 'garbage'; // not one TPM response: malformed, retried, then reported
    expect(await client.tpmTransmit(command)).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MALFORMED' } });

    // not one TPM command, or more than one frame carries: refused before anything is sent
    const before = board.seen.length;
    const big = new Uint8Array(4096);
    new DataView(big.buffer).setUint16(0, 0x8001);
    new DataView(big.buffer).setUint32(2, 4096);
    for (const bad of [command.subarray(0, 9), Uint8Array.of(...command.subarray(0, 21)), big])
      expect(await client.tpmTransmit(bad)).toMatchObject({ ok: false, error: { code: 'INPUT_INVALID' } });
    expect(board.seen.length).toBe(before);
  });

  it('a protocol 1 or 2 session has no TPM relay: BOARD_UNSUPPORTED without sending anything', async () => {
    for (const version of [1, 2]) {
      const { client, board } = await connected((req) =>
        req.op === 'hello' ? { version, maxFrame: 4096, board: 'ls' } : 'default',
      );
      const before = board.seen.length;
      const r = await client.tpmTransmit(
        Uint8Array.from(Buffer.from('80010000000c0000014400000000', 'hex').subarray(0, 12)),
      );
      expect(r).toMatchObject({
        ok: false,
        error: { code: 'BOARD_UNSUPPORTED', details: { protocolVersion: version } },
      });
      expect(board.seen.length).toBe(before);
    }
  });

  it('times out with PROTOCOL_TIMEOUT after 1 + retries attempts when nobody answers', async () => {
    const s = setup(() => null);
    const t0 = performance.now();
    const r = await s.connect();
    expect(r).toMatchObject({ ok: false, error: { code: 'PROTOCOL_TIMEOUT', details: { attempts: 3 } } });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(170);
    expect(s.board.seen).toHaveLength(3);
    expect(new Set(s.board.seen.map((q) => q.requestId)).size).toBe(1);
  });
});

describe('client: retries, stale answers and errors', () => {
  it('retries after a timeout with the same request id; the board replays a mutating answer', async () => {
    let keygens = 0;
    const { client, board } = await connected((req) => {
      if (req.op !== 'keygen') return 'default';
      keygens++;
      if (keygens === 1) return 'default'; // executed; pretend the answer is lost below
      return 'default';
    });
    // drop the first keygen answer on the wire: intercept by swallowing it
    const origSend = board.send;
    let dropped = 0;
    board.send = (x) => {
      if (dropped === 0 && board.seen.at(-1)?.op === 'keygen') {
        dropped++;
        return;
      }
      origSend(x);
    };
    const r = await client.generateKey({ curve: 'P-256', subject: 'CN=z' }, { timeoutMs: 50 });
    expect(r).toMatchObject({ ok: true, value: { publicKeySpki: RESPONSES.keygen.publicKey } });
    const kg = board.seen.filter((q) => q.op === 'keygen');
    expect(kg).toHaveLength(2);
    expect(kg[0]!.requestId).toBe(kg[1]!.requestId);
    expect(board.executed.filter((o) => o === 'keygen')).toHaveLength(1); // replayed, not re-executed
    expect(client.stats().retries).toBe(1);
  });

  it('uses the long timeout for keygen', async () => {
    const { client } = await connected((req) => (req.op === 'keygen' ? null : 'default'), {
      timeoutMs: 20,
      longTimeoutMs: 150,
      retries: 0,
    });
    const t0 = performance.now();
    const r = await client.generateKey({ curve: 'P-256', subject: 'CN=z' });
    expect(r).toMatchObject({ ok: false, error: { code: 'PROTOCOL_TIMEOUT' } });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('discards stale responses (wrong id) and still returns the right one', async () => {
    const { client, board, logger } = await connected((req) => {
      if (req.op !== 'identify') return 'default';
      const stale = encodeResponse('identify', (req.requestId + 0xfffe) % 0x10000, {
        ...RESPONSES.identify,
        serialNumber: 'STALE',
      });
      const good = encodeResponse('identify', req.requestId, RESPONSES.identify);
      return Uint8Array.from([...stale, ...stale, ...good]);
    });
    const r = await client.identify();
    expect(r).toMatchObject({ ok: true, value: { serialNumber: 'SN-1' } });
    expect(board.seen.filter((q) => q.op === 'identify')).toHaveLength(1);
    expect(logger.lines.filter((l) => l.msg === 'stale frame discarded')).toHaveLength(2);
  });

  it('gives PROTOCOL_UNEXPECTED when stale frames keep coming', async () => {
    const { client } = await connected((req) => {
      if (req.op !== 'measure') return 'default';
      const frames: number[] = [];
      for (let i = 1; i <= 12; i++)
        frames.push(...encodeResponse('measure', (req.requestId + i) % 0x10000, RESPONSES.measure));
      return Uint8Array.from(frames);
    });
    expect(await client.readMeasurements()).toMatchObject({ ok: false, error: { code: 'PROTOCOL_UNEXPECTED' } });
  });

  it('retries after a corrupted (CRC) answer and succeeds on the replay', async () => {
    let n = 0;
    const { client, board } = await connected((req) => {
      if (req.op !== 'identify' || n++ > 0) return 'default';
      const f = encodeResponse('identify', req.requestId, RESPONSES.identify);
      const broken = f.slice();
      broken[20] = broken[20] === 0x41 ? 0x42 : 0x41; // corrupt one payload byte (never a 0x00 here)
      return broken;
    });
    const r = await client.identify();
    expect(r.ok).toBe(true);
    expect(client.stats().retries).toBe(1);
    expect(board.seen.filter((q) => q.op === 'identify').map((q) => q.requestId)).toHaveLength(2);
  });

  it('turns garbage from the board into an error after the retries, without hanging', async () => {
    const garbage = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff || 1);
    const { client } = await connected((req) => (req.op === 'identify' ? Uint8Array.from([...garbage, 0]) : 'default'));
    const r = await client.identify({ timeoutMs: 5000 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(['PROTOCOL_MALFORMED', 'PROTOCOL_CRC']).toContain(r.error.code);
    expect(client.stats().retries).toBe(2);

    // an endless stream without delimiters: oversize, not unbounded buffering
    const s2 = await connected((req) => (req.op === 'measure' ? new Uint8Array(20_000).fill(0x55) : 'default'));
    const m = await s2.client.readMeasurements({ timeoutMs: 100 });
    expect(m).toMatchObject({ ok: false, error: { code: 'PROTOCOL_OVERSIZE' } });
  });

  it('retries a schema-invalid answer and then reports PROTOCOL_MALFORMED', async () => {
    const { client, board } = await connected((req) =>
      req.op === 'installCert'
        ? encodeFrame(
            { version: 1, kind: 'response', requestId: req.requestId, opcode: OPCODES.installCert },
            Uint8Array.of(0xa0),
          )
        : 'default',
    );
    const r = await client.installCertificate([b(10)]);
    expect(r).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MALFORMED' } });
    expect(board.seen.filter((q) => q.op === 'installCert')).toHaveLength(3);
  });

  it('passes board errors through without retrying', async () => {
    const { client, board } = await connected((req) =>
      req.op === 'lock' ? { error: { code: 'NO_KEY', message: 'generate a key first' } } : 'default',
    );
    const r = await client.lock();
    expect(r).toMatchObject({ ok: false, error: { code: 'BOARD_NO_KEY', details: { boardCode: 'NO_KEY' } } });
    expect(board.seen.filter((q) => q.op === 'lock')).toHaveLength(1);
  });

  it('refuses a request larger than the frame limit before sending it', async () => {
    const { client, board } = await connected();
    const r = await client.installCertificate([b(3000), b(3000)]);
    expect(r).toMatchObject({ ok: false, error: { code: 'INPUT_INVALID' } });
    expect(board.seen.some((q) => q.op === 'installCert')).toBe(false);
  });
});

describe('client: queueing, disconnects and cancellation', () => {
  it('keeps one request in flight per board', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const { client, board } = await connected((req, _n, board) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        board.send(encodeResponse(req.op, req.requestId, RESPONSES[req.op]));
      }, 5);
      return null;
    });
    const rs = await Promise.all([
      client.identify(),
      client.readMeasurements(),
      client.attest(b(32)),
      client.identify(),
    ]);
    expect(rs.every((r) => r.ok)).toBe(true);
    expect(maxInFlight).toBe(1);
    expect(board.seen.map((q) => q.op)).toEqual(['hello', 'identify', 'measure', 'attest', 'identify']);
  });

  it('gives LINK_DISCONNECTED when the link closes mid-request, and for later calls', async () => {
    const { client } = await connected((req, _n, board) => {
      if (req.op === 'keygen') {
        setTimeout(() => board.link.sever('unplugged'), 10);
        return null;
      }
      return 'default';
    });
    const t0 = performance.now();
    const r = await client.generateKey({ curve: 'P-256', subject: 'CN=z' }, { timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: false, error: { code: 'LINK_DISCONNECTED', details: { cause: 'unplugged' } } });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await client.identify()).toMatchObject({ ok: false, error: { code: 'LINK_DISCONNECTED' } });
  });

  it('cancels promptly with FLOW_CANCELLED, in flight and while queued, and stays usable', async () => {
    const { client, board } = await connected((req) => (req.op === 'measure' ? null : 'default'));
    const ac = new AbortController();
    const t0 = performance.now();
    const inFlight = client.readMeasurements({ signal: ac.signal, timeoutMs: 10_000 });
    const queued = client.identify({ signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect(await inFlight).toMatchObject({ ok: false, error: { code: 'FLOW_CANCELLED' } });
    expect(await queued).toMatchObject({ ok: false, error: { code: 'FLOW_CANCELLED' } });
    expect(performance.now() - t0).toBeLessThan(500);
    expect(board.seen.filter((q) => q.op === 'identify')).toHaveLength(0);
    // already aborted: nothing is sent
    expect(await client.identify({ signal: ac.signal })).toMatchObject({
      ok: false,
      error: { code: 'FLOW_CANCELLED' },
    });
    // the connection is still usable afterwards
    expect((await client.identify()).ok).toBe(true);
  });

  it('cancels the hello exchange through the connect signal', async () => {
    const s = setup(() => null);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    const r = await connectBoard(s.station, { timeoutMs: 10_000, signal: ac.signal });
    expect(r).toMatchObject({ ok: false, error: { code: 'FLOW_CANCELLED' } });
  });

  it('close() closes the link and fails pending and later calls', async () => {
    const { client, board } = await connected((req) => (req.op === 'identify' ? null : 'default'));
    const pending = client.identify({ timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 10));
    await client.close();
    expect(await pending).toMatchObject({ ok: false, error: { code: 'LINK_DISCONNECTED' } });
    expect(board.link.closed).toBe(true);
    expect(await client.lock()).toMatchObject({ ok: false, error: { code: 'LINK_DISCONNECTED' } });
  });

  it('works over a link that delivers one byte at a time', async () => {
    const [station, boardEnd] = memoryLinkPair('mem:s', 'mem:b', { chunkSize: 1 });
    links.push(station, boardEnd);
    fakeBoard(boardEnd);
    const r = await connectBoard(station, { timeoutMs: 2000 });
    expect(r.ok).toBe(true);
    if (r.ok) expect((await r.value.readMeasurements()).ok).toBe(true);
  });
});
