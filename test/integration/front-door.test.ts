/**
 * The registry's front door under attack, against a real `registry serve` child process (node bin/registry.mjs, its
 * own SoftHSM2 token and SQLite database) on loopback, driven with raw sockets: parallel unauthenticated uploads of
 * 64 MiB (the registry's RSS measured in /proc), oversized bodies with valid headers (declared and chunked), the
 * large-body semaphore, slow headers and slow bodies, unknown station vs bad signature. Then, in process: a signed
 * request captured at one registry and replayed to another with a different certificate, a request without an
 * audience, database text in 5xx answers, and a fake registry that answers 1 GiB to the station's sync client.
 */
import { spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { systemClock } from '../../core/ports.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import { openSync } from '../../station/sync.js';
import { exchangeError, httpExchange } from '../../station/hq/transport.js';
import { readRegistryCertificate } from '../../station/hq/pins.js';
import { commitRecords, createStationDb, memoryLogger } from './sync-fixture.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import {
  MAX_BATCH_BYTES,
  MAX_RESPONSE_BYTES,
  REQUEST_TYP,
  registryAudience,
  signRequest,
} from '../../core/hq/protocol.js';
import { createTestStation, makeRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { audienceAt, call, spawnServe } from '../../testkit/registry/harness.js';
import { audienceOf } from '../../registry/common/context.js';
import { enrollStation } from '../../registry/stations/service.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
const tempDir = (p: string) => {
  const d = mkdtempSync(join(tmpdir(), p));
  dirs.push(d);
  return d;
};

/** What a raw-socket client saw. */
interface RawAnswer {
  readonly status: number | null;
  readonly head: string;
  /** Body bytes the client had handed to its socket when the first answer byte arrived (null: no answer). */
  readonly sentBeforeAnswer: number | null;
  /** Body bytes handed to the socket in all. */
  readonly sent: number;
  readonly ms: number;
  readonly error: string | null;
}

/**
 * POST `total` body bytes ('x') over a raw socket as fast as the server takes them (declared, or chunked), stopping
 * at the first answer byte or when the connection ends. `holdAfter`: send only that many bytes, then wait.
 */
function rawUpload(
  port: number,
  o: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    total: number;
    chunked?: boolean;
    holdAfter?: number;
  },
): { done: Promise<RawAnswer>; destroy(): void } {
  const started = performance.now();
  const sock = connect(port, '127.0.0.1');
  let head = '';
  let sent = 0;
  let sentBeforeAnswer: number | null = null;
  let error: string | null = null;
  const piece = Buffer.alloc(256 * 1024, 0x78);
  const lines = [
    `${o.method ?? 'POST'} ${o.path} HTTP/1.1`,
    'host: 127.0.0.1',
    'content-type: application/json',
    ...Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    o.chunked ? 'transfer-encoding: chunked' : `content-length: ${o.total}`,
  ];
  const limit = o.holdAfter ?? o.total;
  let ended = false;
  const pump = () => {
    while (!ended && sentBeforeAnswer === null && sent < limit) {
      const n = Math.min(piece.length, limit - sent);
      const data = o.chunked
        ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from('\r\n')])
        : piece.subarray(0, n);
      sent += n;
      if (!sock.write(data)) {
        sock.once('drain', pump);
        return;
      }
    }
    if (!ended && o.chunked && sent >= o.total) sock.write('0\r\n\r\n');
  };
  const done = new Promise<RawAnswer>((resolve) => {
    const guard = setTimeout(() => sock.destroy(new Error('client guard timeout')), 30_000);
    sock.on('connect', () => {
      sock.write(lines.join('\r\n') + '\r\n\r\n');
      pump();
    });
    sock.on('data', (d: Buffer) => {
      if (sentBeforeAnswer === null) sentBeforeAnswer = sent;
      head += d.toString('latin1');
      if (/\r\n\r\n/.test(head) && /connection: close/i.test(head)) sock.end(); // as HTTP clients do
    });
    sock.on('error', (e) => (error = (e as NodeJS.ErrnoException).code ?? e.message));
    sock.on('close', () => {
      ended = true;
      clearTimeout(guard);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      resolve({
        status: m ? Number(m[1]) : null,
        head,
        sentBeforeAnswer,
        sent,
        ms: Math.round(performance.now() - started),
        error,
      });
    });
  });
  return { done, destroy: () => sock.destroy() };
}

/** Write `prefix`, then `text` one byte every `everyMs`; resolves when the server closes the connection. */
function dribble(
  port: number,
  prefix: string,
  text: string,
  everyMs: number,
): Promise<{ ms: number; sentBytes: number; head: string }> {
  const started = performance.now();
  const sock = connect(port, '127.0.0.1', () => sock.write(prefix));
  let i = 0;
  let head = '';
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (i < text.length && sock.writable) sock.write(text[i++]!);
    }, everyMs);
    const guard = setTimeout(() => sock.destroy(), 30_000);
    sock.on('data', (d: Buffer) => (head += d.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearInterval(timer);
      clearTimeout(guard);
      resolve({ ms: Math.round(performance.now() - started), sentBytes: i, head });
    });
  });
}

/** VmRSS and VmHWM (peak) of a process, in MiB. */
function memory(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)![1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

interface LogLine {
  readonly msg: string;
  readonly ctx?: { path?: string; code?: string; message?: string; bytesRead?: number };
}
const logLines = (file: string): LogLine[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);

describe('registry front door (a real `registry serve` process on loopback)', () => {
  let dataDir: string;
  let child: ChildProcessByStdio<null, Readable, Readable>;
  let url: string;
  let port: number;
  let audience: string;
  let A: TestStation;
  const logFile = () => join(dataDir, 'logs', 'registry.log');
  const sign = async (station: TestStation, method: string, path: string, body: string, aud = audience) => {
    const a = await signRequest(station.signer, station.id, method, path, body, systemClock, aud);
    if (!a.ok) throw new Error(a.error.message);
    return a.value;
  };

  beforeAll(async () => {
    dataDir = tempDir('ls-front-door-');
    const init = spawnSync(
      process.execPath,
      ['bin/registry.mjs', 'init', '--data-dir', dataDir, '--registry-id', 'front-door'],
      { encoding: 'utf8' },
    );
    expect(init.status, init.stderr).toBe(0);
    const cfgFile = join(dataDir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    cfg['http'] = { maxLargeBodies: 2, headersTimeoutMs: 2000, requestTimeoutMs: 4000 };
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    ({ child, url } = await spawnServe(dataDir, ['--verbose']));
    port = Number(new URL(url).port);
    const cert = readRegistryCertificate(join(dataDir, 'registry.pem'));
    if (!cert.ok) throw new Error(cert.error.message);
    audience = await registryAudience(cert.value);
    A = await createTestStation('fd-station-a', systemClock);
    const token = readFileSync(join(dataDir, 'secrets', 'admin.token'), 'utf8').trim();
    const e = await call(url, 'POST', '/v1/admin/stations', {
      bearer: token,
      body: { stationId: A.id, chainPem: A.chainPem },
    });
    expect(e.status, e.text).toBe(201);
  }, 60_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM'); // the registry process itself (node runs bin/registry.mjs; no wrapper)
      await exited;
    }
  });

  it('the health answer names the audience of the certificate stations pin', async () => {
    expect(await audienceAt(url)).toBe(audience);
  });

  it('parallel unauthenticated 64 MiB uploads: 401 from the headers, no body read, RSS stays flat', async () => {
    // Warm up (first requests compile code paths), then measure.
    for (let i = 0; i < 3; i++) await rawUpload(port, { path: '/v1/bundles', total: 4 * MiB }).done;
    const before = memory(child.pid!);
    const unknown = await createTestStation('fd-nobody', systemClock);
    const auths = [
      undefined,
      'LS-Sig not-a-jws',
      await sign(unknown, 'POST', '/v1/bundles', ''),
      `Bearer ${'0'.repeat(40)}`,
    ];
    const results: RawAnswer[] = [];
    for (const n of [8, 32]) {
      const batch = await Promise.all(
        Array.from({ length: n }, (_, i) => {
          const a = auths[i % auths.length];
          return rawUpload(port, {
            path: '/v1/bundles',
            total: 64 * MiB,
            chunked: i % 3 === 2,
            ...(a ? { headers: { authorization: a } } : {}),
          }).done;
        }),
      );
      results.push(...batch);
    }
    const after = memory(child.pid!);
    const refused = logLines(logFile()).filter((l) => l.msg === 'request refused' && l.ctx?.path === '/v1/bundles');
    const bytesRead = refused.slice(-40).map((l) => l.ctx!.bytesRead!);
    // What the registry had read from each refused connection when it closed it (after the linger, not reading).
    const atClose = logLines(logFile())
      .filter((l) => l.msg === 'refused connection closed')
      .map((l) => l.ctx!.bytesRead!);
    const figures = {
      requests: results.length,
      statuses: [...new Set(results.map((r) => r.status))],
      rssBeforeMiB: before.rss.toFixed(1),
      rssAfterMiB: after.rss.toFixed(1),
      peakBeforeMiB: before.peak.toFixed(1),
      peakAfterMiB: after.peak.toFixed(1),
      serverBytesReadMax: Math.max(...bytesRead),
      serverBytesReadAtCloseMax: Math.max(...atClose),
      clientBodyBytesSentBeforeAnswerMax: Math.max(...results.map((r) => r.sentBeforeAnswer ?? -1)),
      clientBodyBytesSentMax: Math.max(...results.map((r) => r.sent)),
      slowestMs: Math.max(...results.map((r) => r.ms)),
    };
    console.log('front door, unauthenticated 64 MiB uploads (8 then 32 in parallel):', JSON.stringify(figures));
    // Every client got its answer (no reset before the 401/403), and the connection was closed.
    const lost = results.flatMap((r, i) => (r.status === null ? [{ i, ...r, head: undefined }] : []));
    if (lost.length) console.log('no answer:', JSON.stringify(lost));
    for (const r of results) expect([401, 403], r.head.slice(0, 200) + (r.error ?? '')).toContain(r.status);
    expect(results.filter((r) => /connection: close/i.test(r.head)).length).toBe(results.length);
    // The server read the headers and at most what arrived with them, never the 64 MiB body.
    expect(bytesRead.length).toBe(40);
    expect(Math.max(...bytesRead)).toBeLessThan(1 * MiB);
    expect(atClose.length).toBeGreaterThanOrEqual(40);
    expect(Math.max(...atClose)).toBeLessThan(1 * MiB);
    // 40 × 64 MiB offered; buffering even one of them would show. The peak moved by less than 32 MiB.
    expect(after.peak - before.peak).toBeLessThan(32);
    expect(after.rss - before.rss).toBeLessThan(32);
  }, 120_000);

  it('unknown station, bad signature and malformed header get byte-identical answers; the log has the reasons', async () => {
    const body = JSON.stringify({ batchId: globalThis.crypto.randomUUID(), records: ['x'] });
    const unknown = await createTestStation('fd-unknown', systemClock);
    const impostor: TestStation = { ...A, signer: await createTestSigner('P-256') };
    const answers = [];
    for (const authorization of [
      await sign(unknown, 'POST', '/v1/batches', body),
      await sign(impostor, 'POST', '/v1/batches', body),
      'LS-Sig a.b.c',
      'Basic Zm9vOmJhcg==',
    ]) {
      const r = await fetch(`${url}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body,
      });
      const headers = [...r.headers.entries()].filter(([k]) => k !== 'date');
      answers.push({ status: r.status, headers, text: await r.text() });
    }
    console.log('generic 401:', answers[0]!.text);
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0]);
    expect(answers[0]!.status).toBe(401);
    expect(answers[0]!.text).not.toMatch(/fd-unknown|fd-station-a|enrolled key|sqlite|database/i);
    const reasons = logLines(logFile())
      .filter((l) => l.msg === 'request refused' && l.ctx?.path === '/v1/batches')
      .slice(-4)
      .map((l) => l.ctx!.code);
    expect(reasons).toEqual(['AUTH_UNKNOWN_STATION', 'AUTH_SIGNATURE_INVALID', 'AUTH_MALFORMED', 'AUTH_MALFORMED']);
  });

  it('valid headers, body over the cap: 413 from Content-Length at once; a chunked one is cut at the cap', async () => {
    const before = memory(child.pid!);
    const declared = await rawUpload(port, {
      path: '/v1/batches',
      total: MAX_BATCH_BYTES + 1,
      headers: { authorization: await sign(A, 'POST', '/v1/batches', 'x'.repeat(MAX_BATCH_BYTES + 1)) },
    }).done;
    expect(declared.status, declared.head).toBe(413);
    expect(declared.head).toMatch(/BODY_TOO_LARGE/);
    const declaredRead = logLines(logFile())
      .filter((l) => l.ctx?.code === 'BODY_TOO_LARGE')
      .at(-1)!.ctx!.bytesRead!;
    expect(declaredRead).toBeLessThan(1 * MiB);

    const chunked = await rawUpload(port, {
      path: '/v1/batches',
      total: 40 * MiB,
      chunked: true,
      headers: { authorization: await sign(A, 'POST', '/v1/batches', '') },
    }).done;
    expect(chunked.status, chunked.head).toBe(413);
    expect(chunked.head).toMatch(/connection: close/i);
    const chunkedRead = logLines(logFile())
      .filter((l) => l.ctx?.code === 'BODY_TOO_LARGE')
      .at(-1)!.ctx!.bytesRead!;
    const after = memory(child.pid!);
    console.log(
      'front door, oversize with valid headers:',
      JSON.stringify({
        declaredBytesRead: declaredRead,
        chunkedOffered: 40 * MiB,
        chunkedBytesRead: chunkedRead,
        chunkedClientSent: chunked.sent,
        peakGrowthMiB: (after.peak - before.peak).toFixed(1),
      }),
    );
    // Read up to the cap (plus what was in flight), never the 40 MiB offered.
    expect(chunkedRead).toBeGreaterThan(MAX_BATCH_BYTES);
    expect(chunkedRead).toBeLessThan(MAX_BATCH_BYTES + 2 * MiB);
    expect(chunked.sent).toBeLessThan(40 * MiB);
  }, 60_000);

  it('at most maxLargeBodies (2) large bodies at once: the third gets 503 REGISTRY_BUSY with Retry-After', async () => {
    const held = [];
    for (let i = 0; i < 2; i++) {
      const authorization = await sign(A, 'POST', '/v1/batches', '');
      held.push(rawUpload(port, { path: '/v1/batches', total: 4 * MiB, holdAfter: 1024, headers: { authorization } }));
    }
    await new Promise((r) => setTimeout(r, 400));
    const third = await rawUpload(port, {
      path: '/v1/batches',
      total: 4 * MiB,
      headers: { authorization: await sign(A, 'POST', '/v1/batches', '') },
    }).done;
    expect(third.status, third.head).toBe(503);
    expect(third.head).toMatch(/retry-after: 2/i);
    expect(third.head).toMatch(/REGISTRY_BUSY/);
    for (const h of held) h.destroy();
    await Promise.all(held.map((h) => h.done));
    // Slots are free again: the next large body is read (and refused for its digest, after reading).
    const next = await rawUpload(port, {
      path: '/v1/batches',
      total: 2 * MiB,
      headers: { authorization: await sign(A, 'POST', '/v1/batches', '') },
    }).done;
    expect(next.status, next.head).toBe(401);
    expect(next.head).toMatch(/AUTH_REQUEST_MISMATCH/);
  }, 30_000);

  it('a captured LS-Sig header replayed with a large junk body: refused from the headers (AUTH_REPLAY), no body read, no slot taken', async () => {
    // The original request, as the station sent it (its nonce is now used).
    const authorization = await sign(A, 'POST', '/v1/batches', 'x');
    const original = await rawUpload(port, { path: '/v1/batches', total: 1, headers: { authorization } }).done;
    expect(original.status, original.head).toBe(400); // authenticated; 'x' is not JSON
    // Replayed (within the ±300 s window) by whoever saw it, with 4 MiB of junk, alone and then twice in parallel
    // holding the connections open, while the station uploads a large body of its own.
    const replay = await rawUpload(port, { path: '/v1/batches', total: 4 * MiB, headers: { authorization } }).done;
    const replayRead = logLines(logFile())
      .filter((l) => l.msg === 'request refused' && l.ctx?.path === '/v1/batches')
      .at(-1)!.ctx!;
    const held = [0, 1].map(() =>
      rawUpload(port, { path: '/v1/batches', total: 4 * MiB, holdAfter: 1024, headers: { authorization } }),
    );
    await new Promise((r) => setTimeout(r, 400));
    const legit = await rawUpload(port, {
      path: '/v1/batches',
      total: 2 * MiB,
      headers: { authorization: await sign(A, 'POST', '/v1/batches', '') },
    }).done;
    for (const h of held) h.destroy();
    const heldAnswers = await Promise.all(held.map((h) => h.done));
    console.log(
      'front door, replayed header with a 4 MiB body:',
      JSON.stringify({ status: replay.status, code: replayRead.code, bytesRead: replayRead.bytesRead }),
    );
    expect(replay.status, replay.head).toBe(401);
    expect(replay.head).toMatch(/AUTH_REPLAY/);
    expect(replayRead.code).toBe('AUTH_REPLAY');
    expect(replayRead.bytesRead).toBeLessThan(1 * MiB);
    for (const h of heldAnswers) expect(h.head).toMatch(/AUTH_REPLAY/);
    // The replays held no large-body slot: the station's own upload was read (and refused for its digest).
    expect(legit.status, legit.head).toBe(401);
    expect(legit.head).toMatch(/AUTH_REQUEST_MISMATCH/);
  }, 30_000);

  it('Expect: 100-continue: no 100 for a caller refused by its headers; 100 once they pass', async () => {
    const ask = (authorization: string | null) =>
      new Promise<string>((resolve) => {
        let head = '';
        const sock = connect(port, '127.0.0.1', () =>
          sock.write(
            'POST /v1/batches HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\n' +
              `${authorization ? `authorization: ${authorization}\r\n` : ''}content-length: ${MiB}\r\n\r\n`,
          ),
        );
        sock.on('data', (d: Buffer) => {
          head += d.toString('latin1');
          if (head.includes('\r\n\r\n')) sock.destroy();
        });
        sock.on('error', () => undefined);
        sock.on('close', () => resolve(head));
      });
    expect(await ask(null)).toMatch(/^HTTP\/1\.1 401 /);
    expect(await ask(await sign(await createTestStation('fd-expect', systemClock), 'POST', '/v1/batches', ''))).toMatch(
      /^HTTP\/1\.1 401 /,
    );
    expect(await ask(await sign(A, 'POST', '/v1/batches', ''))).toMatch(/^HTTP\/1\.1 100 Continue/);
  });

  it('a GET with a body is refused at once (413, connection closed) instead of being drained', async () => {
    const r = await rawUpload(port, { method: 'GET', path: '/v1/health', total: 64 * MiB }).done;
    expect(r.status, r.head).toBe(413);
    expect(r.head).toMatch(/connection: close/i);
    const read = logLines(logFile()).filter((l) => l.ctx?.path === '/v1/health' && l.ctx.code === 'BODY_TOO_LARGE');
    expect(read.at(-1)!.ctx!.bytesRead).toBeLessThan(1 * MiB);
    expect(r.sent).toBeLessThan(64 * MiB);
  });

  it('slow headers are cut after headersTimeout (2 s), a slow body after requestTimeout (4 s)', async () => {
    const slowHeaders = await dribble(
      port,
      '',
      'POST /v1/batches HTTP/1.1\r\nhost: x\r\nx-padding: ' + 'a'.repeat(200),
      100,
    );
    const slowBody = await dribble(
      port,
      'POST /v1/ocsp HTTP/1.1\r\nhost: x\r\ncontent-type: application/ocsp-request\r\ncontent-length: 400\r\n\r\n',
      '{'.repeat(400),
      20,
    );
    console.log('front door, slow clients:', JSON.stringify({ slowHeaders, slowBody }));
    // Closed with 408 once the timeout passed (+ the 500 ms check interval, + a loaded machine), long before the
    // client would have finished (headers: 23 s, body: 8 s).
    for (const [r, timeout] of [
      [slowHeaders, 2000],
      [slowBody, 4000],
    ] as const) {
      expect(r.head).toMatch(/^HTTP\/1\.1 408 /);
      expect(r.ms).toBeGreaterThanOrEqual(timeout - 100);
      expect(r.ms).toBeLessThan(timeout + 3000);
    }
    expect(slowHeaders.sentBytes).toBeLessThan(100);
    expect(slowBody.sentBytes).toBeLessThan(400);
  }, 30_000);
});

describe('audience, generic 5xx, and the station client against a hostile registry (in process)', () => {
  const token = 'front-door-admin-token-0123456789';

  it('a request captured at one registry and replayed to another (other certificate) is refused AUTH_AUDIENCE_MISMATCH', async () => {
    const one = await startLifecycleRegistry(`sqlite:${join(tempDir('ls-fd-one-'), 'r.db')}`, {
      registryId: 'one',
      adminToken: token,
    });
    const two = await startLifecycleRegistry(`sqlite:${join(tempDir('ls-fd-two-'), 'r.db')}`, {
      registryId: 'two',
      adminToken: token,
    });
    try {
      const S = await createTestStation('fd-roaming', systemClock);
      for (const r of [one, two])
        expect((await enrollStation(r.context, { stationId: S.id, chainPem: S.chainPem })).ok).toBe(true);
      expect(audienceOf(one.context)).not.toBe(audienceOf(two.context));
      const records = await makeRecords(S, systemClock, 1);
      const body = JSON.stringify({ batchId: globalThis.crypto.randomUUID(), records: records.map((m) => m.jws) });
      const audOne = await registryAudience(one.context.registryChain[0]!);
      const captured = await signRequest(S.signer, S.id, 'POST', '/v1/batches', body, systemClock, audOne);
      if (!captured.ok) throw new Error(captured.error.message);
      const atOne = await call(one.url, 'POST', '/v1/batches', { rawBody: body, authorization: captured.value });
      expect(atOne.status, atOne.text).toBe(200);
      const replayed = await call(two.url, 'POST', '/v1/batches', { rawBody: body, authorization: captured.value });
      expect(replayed.status).toBe(401);
      expect(replayed.json).toMatchObject({ error: { code: 'AUTH_AUDIENCE_MISMATCH' } });
      const stats = await call(two.url, 'GET', '/v1/stats', { bearer: token });
      expect(stats.json).toMatchObject({ records: 0 });
      // The same station signing for registry two is accepted there (the audience is the only difference).
      const own = await call(two.url, 'POST', '/v1/batches', { rawBody: body, station: S });
      expect(own.status, own.text).toBe(200);

      // A request in the format before audiences (no `aud`): refused like any unauthenticated request.
      const claims = {
        method: 'POST',
        path: '/v1/batches',
        bodySha256: await sha256Hex(utf8(body)),
        ts: new Date().toISOString(),
        nonce: toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16))),
      };
      const old = await signJws({
        signer: S.signer,
        payload: utf8(canonicalJson(claims)),
        header: { typ: REQUEST_TYP, kid: S.id },
      });
      if (!old.ok) throw new Error(old.error.message);
      const legacy = await call(two.url, 'POST', '/v1/batches', {
        rawBody: body,
        authorization: `LS-Sig ${old.value}`,
      });
      expect(legacy.status).toBe(401);
      expect(legacy.json).toMatchObject({ error: { code: 'AUTH_SIGNATURE_INVALID' } });
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('a database failure answers 503 STORE_UNAVAILABLE without the database text', async () => {
    const opened = await openRegistryDb(`sqlite:${join(tempDir('ls-fd-db-'), 'r.db')}`);
    if (!opened.ok) throw new Error(opened.error.message);
    const reg = await startLifecycleRegistry(opened.value, { registryId: 'db', adminToken: token });
    try {
      const S = await createTestStation('fd-db', systemClock);
      expect((await enrollStation(reg.context, { stationId: S.id, chainPem: S.chainPem })).ok).toBe(true);
      const aud = await audienceAt(reg.url);
      await opened.value.close();
      const r = await call(reg.url, 'POST', '/v1/batches', { rawBody: '{}', station: S, audience: aud });
      expect(r.status).toBe(503);
      expect(r.json).toEqual({
        error: { code: 'STORE_UNAVAILABLE', message: 'the registry database is unavailable: retry later' },
      });
    } finally {
      await reg.close();
    }
  });

  describe('a fake registry answering 1 GiB', () => {
    let fake: Server;
    let fakeUrl: string;
    const written: number[] = [];
    beforeAll(async () => {
      fake = createServer((req, res) => {
        req.resume();
        if (req.url === '/v1/health') {
          const h = JSON.stringify({
            status: 'ok',
            api: 'v1',
            registryId: 'fake',
            time: new Date().toISOString(),
            audience: '0'.repeat(64),
          });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(h) });
          res.end(h);
          return;
        }
        // 1 GiB of JSON-looking bytes, declared (?length=1) or chunked; count what the station let us write.
        const declared = req.url!.includes('length') || req.headers['x-declare'] === '1';
        res.writeHead(200, {
          'content-type': 'application/json',
          ...(declared ? { 'content-length': 1024 * MiB } : {}),
        });
        const block = Buffer.alloc(MiB, 0x20);
        let n = 0;
        const pump = () => {
          while (n < 1024 && !res.destroyed) {
            n++;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => written.push(n * MiB));
        pump();
      });
      await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
      fakeUrl = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((r) => fake.close(() => r())));

    it('httpExchange stops at the cap (declared: before reading; chunked: at the cap) with SYNC_RESPONSE_TOO_LARGE', async () => {
      for (const path of ['/v1/policy?length', '/v1/policy']) {
        const rss0 = process.memoryUsage().rss;
        const e = await httpExchange(`${fakeUrl}${path}`, { method: 'GET', signal: AbortSignal.timeout(20_000) }).then(
          () => null,
          (x: unknown) => x,
        );
        const grown = (process.memoryUsage().rss - rss0) / MiB;
        const se = exchangeError(e, `GET ${path}`);
        console.log(
          `station client, fake registry 1 GiB (${path}): ${se.code}: ${se.message}; RSS +${grown.toFixed(1)} MiB`,
        );
        expect(se.code).toBe('SYNC_RESPONSE_TOO_LARGE');
        expect(grown).toBeLessThan(64);
      }
    });

    it('the sync service fails the batch with SYNC_RESPONSE_TOO_LARGE and acknowledges nothing', async () => {
      const S = await createTestStation('fd-sync', systemClock);
      const d = createStationDb('NORMAL');
      dirs.push(d.dir);
      commitRecords(d.store, S, await makeRecords(S, systemClock, 2));
      const log = memoryLogger();
      const s = openSync({
        outbox: d.db.outbox,
        stationId: S.id,
        signer: S.signer,
        chain: S.chain,
        registryUrl: fakeUrl,
        registryCertificate: S.chain[2]!,
        logger: log,
        timeoutMs: 20_000,
      });
      if (!s.ok) throw new Error(s.error.message);
      try {
        const before = written.length;
        const r = await s.value.syncOnce();
        expect(r.ok ? 'ok' : r.error.code).toBe('SYNC_RESPONSE_TOO_LARGE');
        expect(s.value.status()).toMatchObject({ acknowledged: 0, sent: 2 });
        await new Promise((res) => setTimeout(res, 200));
        const sentByFake = written.slice(before);
        console.log(
          'station sync, fake registry streaming 1 GiB: bytes the fake wrote before the station closed:',
          sentByFake,
        );
        for (const n of sentByFake) expect(n).toBeLessThan(MAX_RESPONSE_BYTES + 8 * MiB);
      } finally {
        await s.value.close();
        d.store.close();
      }
    });
  });
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
