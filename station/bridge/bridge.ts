/**
 * The localhost HTTP bridge (`station serve`): carries the StationApi to a browser on the same machine.
 *
 * - Binds to 127.0.0.1 only. Every /api request needs `Authorization: Bearer <token>` (a random 32-byte
 *   token, compared in constant time) or gets 401; the `Host` header must name this loopback port and an
 *   `Origin`, when sent, must be this origin (DNS rebinding, cross-site requests): 403 otherwise.
 * - `POST /api/<op>` with the JSON arguments answers the JSON ApiResult envelope; `GET /api/events` is a
 *   Server-Sent Events stream of StationEvents with heartbeats (read with fetch so it can carry the token).
 * - Serves the built renderer with a strict CSP. The URL to open is `http://127.0.0.1:PORT/#token=TOKEN`:
 *   the fragment never reaches the server or its logs.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { isOperationName, type ApiResult } from '../../core/api.js';
import { stationError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import type { StationService } from '../service/index.js';
import { toApiError } from '../service/slots.js';
import { packagePath } from '../../native/package-root.js';

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** importReceipt carries up to 16 MiB of content; JSON escaping adds a little. */
export const MAX_BODY_BYTES = 17 * 1024 * 1024;

const DEFAULT_STATIC = packagePath('renderer', 'dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

export interface BridgeOptions {
  readonly service: StationService;
  /** 0 = any free port. */
  readonly port?: number;
  /** Must be a loopback address (127.0.0.1 by default). */
  readonly host?: string;
  /** The built renderer (default renderer/dist). */
  readonly staticDir?: string;
  /** Fixed token (at least 32 characters); default a random 32-byte token. */
  readonly token?: string;
  readonly logger?: Logger;
  /** SSE heartbeat interval (default 15 s). */
  readonly heartbeatMs?: number;
}

export interface Bridge {
  /** The URL to open: `http://127.0.0.1:PORT/#token=TOKEN`. */
  readonly url: string;
  readonly token: string;
  readonly port: number;
  close(): Promise<void>;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

function envelopeError(code: 'INPUT_INVALID' | 'INTERNAL', message: string, details?: Record<string, unknown>) {
  return { ok: false as const, error: toApiError(stationError(code, message, details)) };
}

/** Start the bridge. Rejects for a non-loopback host or a short token (misuse). */
export async function startBridge(o: BridgeOptions): Promise<Bridge> {
  const host = o.host ?? '127.0.0.1';
  if (!isLoopback(host)) throw new Error(`the bridge binds to loopback only; refusing host ${host}`);
  const bindHost = host === 'localhost' ? '127.0.0.1' : host;
  if (o.token !== undefined && o.token.length < 32) throw new Error('bridge token: at least 32 characters');
  const token = o.token ?? randomBytes(32).toString('base64url');
  const staticDir = resolve(o.staticDir ?? DEFAULT_STATIC);
  const log = o.logger?.child('[bridge]');
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  const sockets = new Set<Socket>();
  const streams = new Set<() => void>();
  let port = 0;

  const send = (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Length': Buffer.byteLength(text),
      ...extra,
    });
    res.end(text);
  };
  const plain = (res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-store',
      ...extra,
    });
    res.end(text);
  };

  const hostPart = bindHost === '::1' ? '[::1]' : bindHost;
  const allowedHosts = () => new Set([`${hostPart}:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://${hostPart}:${port}`, `http://localhost:${port}`]);

  function clientIdOf(req: IncomingMessage): string | null {
    const raw = req.headers['x-client-id'];
    const id = Array.isArray(raw) ? raw[0] : raw;
    const v = id ?? 'default';
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(v)) return null;
    // Combined with the token: a client id is meaningless without the token of this bridge run.
    return createHash('sha256').update(`${token}\0${v}`).digest('base64url').slice(0, 32);
  }

  function authorised(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
    return safeEqual(h.slice(7).trim(), token);
  }

  async function readBody(
    req: IncomingMessage,
  ): Promise<{ ok: true; text: string } | { ok: false; tooLarge: boolean }> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > MAX_BODY_BYTES) return { ok: false, tooLarge: true };
      chunks.push(c);
    }
    return { ok: true, text: Buffer.concat(chunks).toString('utf8') };
  }

  async function api(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!authorised(req)) {
      send(res, 401, envelopeError('INPUT_INVALID', 'missing or wrong bearer token'), {
        'WWW-Authenticate': 'Bearer realm="line-station"',
      });
      return;
    }
    const clientId = clientIdOf(req);
    if (!clientId) return send(res, 400, envelopeError('INPUT_INVALID', 'X-Client-Id: 1..128 of A-Z a-z 0-9 _ -'));
    const op = path.slice('/api/'.length);

    if (op === 'events') {
      if (req.method !== 'GET') return send(res, 405, envelopeError('INPUT_INVALID', 'use GET'), { Allow: 'GET' });
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.write('retry: 2000\n: connected\n\n');
      const unsub = o.service.subscribe(
        (e) => {
          res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        },
        { clientId },
      );
      const hb = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
      const end = () => {
        clearInterval(hb);
        unsub();
        streams.delete(end);
        if (!res.writableEnded) res.end();
      };
      streams.add(end);
      req.on('close', end);
      return;
    }

    if (!isOperationName(op))
      return send(res, 404, envelopeError('INPUT_INVALID', `unknown operation ${op.slice(0, 64)}`));
    if (req.method !== 'POST') return send(res, 405, envelopeError('INPUT_INVALID', 'use POST'), { Allow: 'POST' });
    const ct = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(ct))
      return send(res, 415, envelopeError('INPUT_INVALID', 'Content-Type must be application/json'));
    const body = await readBody(req);
    if (!body.ok) {
      send(res, 413, envelopeError('INPUT_INVALID', `request body larger than ${MAX_BODY_BYTES} bytes`), {
        Connection: 'close',
      });
      req.destroy();
      return;
    }
    let args: unknown = {};
    if (body.text.trim() !== '') {
      try {
        args = JSON.parse(body.text) as unknown;
      } catch (e) {
        return send(
          res,
          400,
          envelopeError('INPUT_INVALID', `body is not JSON: ${(e as Error).message}`, { path: '' }),
        );
      }
    }
    const r: ApiResult<unknown> = await o.service.invoke(clientId, op, args);
    send(res, 200, r);
  }

  function serveStatic(req: IncomingMessage, res: ServerResponse, rawPath: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return plain(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    let pathname: string;
    try {
      pathname = decodeURIComponent(rawPath);
    } catch {
      return plain(res, 400, 'bad path');
    }
    if (pathname.includes('\0') || pathname.includes('\\')) return plain(res, 400, 'bad path');
    const segs = pathname.split('/');
    if (segs.some((s) => s === '..' || s === '.')) return plain(res, 403, 'forbidden');
    const root = staticDir;
    let file = resolve(root, `.${pathname}`);
    if (file !== root && !file.startsWith(root + sep)) return plain(res, 403, 'forbidden');
    if (!existsSync(root)) return plain(res, 404, `renderer not built (${root}); run the renderer build`);
    let st = existsSync(file) ? statSync(file) : null;
    if (st?.isDirectory()) {
      file = join(file, 'index.html');
      st = existsSync(file) ? statSync(file) : null;
    }
    if (!st && extname(pathname) === '') {
      // client-side routes fall back to the app
      file = join(root, 'index.html');
      st = existsSync(file) ? statSync(file) : null;
    }
    if (!st || !st.isFile()) return plain(res, 404, 'not found');
    const type = TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const html = type.startsWith('text/html');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': type,
      'Content-Length': st.size,
      'Cache-Control': html
        ? 'no-store'
        : pathname.startsWith('/assets/')
          ? 'public, max-age=31536000, immutable'
          : 'no-cache',
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  }

  const server = createServer((req, res) => {
    void (async () => {
      try {
        const hostHeader = req.headers.host ?? '';
        if (!allowedHosts().has(hostHeader)) return plain(res, 403, 'forbidden host');
        const origin = req.headers.origin;
        if (origin !== undefined && !allowedOrigins().has(origin))
          return plain(res, 403, 'cross-origin request refused');
        const site = req.headers['sec-fetch-site'];
        if (site === 'cross-site') return plain(res, 403, 'cross-site request refused');
        const url = req.url ?? '/';
        const q = url.indexOf('?');
        const path = q >= 0 ? url.slice(0, q) : url;
        if (!path.startsWith('/')) return plain(res, 400, 'bad path');
        if (path === '/api' || path.startsWith('/api/')) return await api(req, res, path);
        serveStatic(req, res, path);
      } catch (e) {
        log?.log('error', `bug: ${(e as Error).stack ?? String(e)}`);
        if (!res.headersSent) send(res, 500, envelopeError('INTERNAL', 'internal error'));
        else res.destroy();
      }
    })();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(o.port ?? 0, bindHost, () => {
      server.off('error', rej);
      res();
    });
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://${hostPart}:${port}/#token=${token}`;
  log?.log('info', `bridge listening on http://${hostPart}:${port}/`);

  return {
    url,
    token,
    port,
    async close() {
      for (const end of [...streams]) end();
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
