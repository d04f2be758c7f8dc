/**
 * The registry client against a scripted registry on loopback: each method calls its route of the route table,
 * signs it (LS-Sig naming the method, path and body, for the pinned audience) unless the route is public, and
 * maps refusals, broken answers and transport failures to typed failures with the station's error codes.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { systemClock } from '../../core/ports.js';
import { AUTH_SCHEME, registryAudience, requestClaimsOf } from '../../core/hq/protocol.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { createRegistryClient, type RegistryClient } from './client.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly body: string;
}

const seen: Seen[] = [];
/** What the scripted registry answers to a path (without the query): status and body. */
let answers: Record<string, { status: number; body: string }> = {};
let server: Server;
let url: string;
const registryCertificate = utf8('not a certificate: only its SHA-256 (the audience) matters here');

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

beforeAll(async () => {
  server = createServer((req, res) => {
    void body(req).then((b) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body: b });
      const a = answers[(req.url ?? '').split('?')[0]!] ?? {
        status: 404,
        body: '{"error":{"code":"NOT_FOUND","message":"no"}}',
      };
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}, 30_000);

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

async function client(o: { cert?: Uint8Array | null; url?: string } = {}): Promise<RegistryClient> {
  return createRegistryClient({
    url: o.url ?? url,
    tlsCertificate: null,
    registryCertificate: o.cert === undefined ? registryCertificate : o.cert,
    stationId: 'st-1',
    signer: await createTestSigner(),
    clock: systemClock,
    timeoutMs: 5000,
  });
}

describe('the registry client', () => {
  it('calls each route of the table, signed for the pinned audience (health unsigned)', async () => {
    answers = {
      '/v1/health': {
        status: 200,
        body: JSON.stringify({
          status: 'ok',
          api: 'v1',
          registryId: 'r',
          time: '2026-01-01T00:00:00Z',
          audience: 'a'.repeat(64),
        }),
      },
      '/v1/policy': { status: 200, body: '{"jws":"p.p.p","version":3}' },
      '/v1/audit-heads': { status: 200, body: '{"jws":"h.h.h"}' },
      '/v1/revocations': { status: 200, body: '{"results":[{"requestId":"r1","status":"revoked"}]}' },
      '/v1/stations/revocation-signer/request': { status: 200, body: '{"jws":"s.s.s"}' },
    };
    seen.length = 0;
    const c = await client();
    expect(c.url).toBe(url.slice(0, -1));
    expect(await c.health()).toBe(true);
    const policy = await c.policy();
    expect(policy.ok && policy.value.jws).toBe('p.p.p');
    const heads = await c.auditHeads();
    expect(heads.ok && heads.value.jws).toBe('h.h.h');
    const revs = await c.sendRevocations({ requests: ['e.e.e'] });
    expect(revs.ok && revs.value).toEqual([{ requestId: 'r1', status: 'revoked' }]);
    const signer = await c.revocationSignerRequest();
    expect(signer.ok && signer.value).toBe('s.s.s');

    expect(seen.map((s) => `${s.method} ${s.url.split('?')[0]}`)).toEqual([
      'GET /v1/health',
      'GET /v1/policy',
      'GET /v1/audit-heads',
      'POST /v1/revocations',
      'POST /v1/stations/revocation-signer/request',
    ]);
    expect(seen[0]!.authorization).toBeUndefined();
    const aud = await registryAudience(registryCertificate);
    for (const s of seen.slice(1)) {
      expect(s.authorization?.startsWith(`${AUTH_SCHEME} `)).toBe(true);
      const claims = requestClaimsOf(s.authorization!);
      expect(claims).toMatchObject({ method: s.method, path: s.url, aud, bodySha256: await sha256Hex(utf8(s.body)) });
    }
    expect(seen[2]!.url).toMatch(/^\/v1\/audit-heads\?challenge=[A-Za-z0-9_-]{22}$/);
    expect(seen[2]!.url.endsWith(heads.ok ? heads.value.challenge : '?')).toBe(true);
    expect(seen[3]!.body).toBe('{"requests":["e.e.e"]}');
    expect(seen[4]!.body).toBe('{}');
    // The claims of a document's request come back with it (the station-status answer is bound to them).
    expect(policy.ok && policy.value.claims.path).toBe('/v1/policy');
  });

  it('maps refusals, broken answers and transport failures to typed failures', async () => {
    answers = {
      '/v1/batches': { status: 409, body: '{"error":{"code":"BATCH_CONFLICT","message":"used"}}' },
      '/v1/quotas': { status: 503, body: 'busy, not JSON' },
      '/v1/station-status': { status: 200, body: '{"nojws":1}' },
      '/v1/stations/key-rotation': {
        status: 401,
        body: '{"error":{"code":"AUTH_SIGNATURE_INVALID","message":"who?"}}',
      },
    };
    const c = await client();
    const batchId = '00000000-0000-4000-8000-000000000001';
    const b = await c.sendBatch({ batchId, records: ['r.r.r'] });
    expect(!b.ok && b.error).toMatchObject({
      kind: 'refused',
      status: 409,
      code: 'BATCH_CONFLICT',
      error: {
        code: 'SYNC_REJECTED',
        message: `batch ${batchId}: registry answered 409 BATCH_CONFLICT: used`,
        details: { batchId, status: 409, code: 'BATCH_CONFLICT' },
      },
    });
    const q = await c.quotas();
    expect(!q.ok && q.error).toMatchObject({
      kind: 'refused',
      code: 'HTTP 503',
      error: { code: 'SYNC_UNREACHABLE', message: 'GET /v1/quotas: registry answered 503 HTTP 503: busy, not JSON' },
    });
    const s = await c.stationStatus();
    expect(!s.ok && s.error).toMatchObject({
      kind: 'invalid',
      error: { code: 'INPUT_INVALID', message: 'GET /v1/station-status: the answer is not {jws}' },
    });
    const k = await c.rotateKey({ request: 'k.k.k' });
    expect(!k.ok && k.error).toMatchObject({ kind: 'refused', code: 'AUTH_SIGNATURE_INVALID' });

    const noCert = await (await client({ cert: null })).policy();
    expect(!noCert.ok && noCert.error).toMatchObject({ kind: 'unsent', error: { code: 'CONFIG_INVALID' } });
    const insecure = await (await client({ url: 'http://registry.example' })).policy();
    expect(!insecure.ok && insecure.error).toMatchObject({ kind: 'unsent', error: { code: 'SYNC_INSECURE_URL' } });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const down = await (await client({ url: `http://127.0.0.1:${port}` })).policy();
    expect(!down.ok && down.error).toMatchObject({ kind: 'unreachable', error: { code: 'SYNC_UNREACHABLE' } });
    expect(await (await client({ url: `http://127.0.0.1:${port}` })).health()).toBe(false);
  });
});
