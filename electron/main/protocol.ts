/**
 * The `app://station/` protocol: serves the built renderer (renderer/dist) to the window.
 *
 * `resolveAppFile` is the pure, path-traversal-safe mapping from a request URL to a file under the
 * root (tested in plain Node); `createAppProtocolHandler` turns it into a fetch-style handler for
 * Electron's `protocol.handle`, adding our CSP and refusing everything else.
 */
import { readFile, realpath } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { APP_HOST, APP_SCHEME } from '../shared/ipc.js';
import { CONTENT_SECURITY_POLICY } from './window.js';

const MIME: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/**
 * Map `app://station/<path>` to an absolute file under `root`, or null when the URL is not ours,
 * is malformed, or would escape the root (`..`, encoded separators, NUL, absolute paths).
 * `/` and extension-less paths (client-side routes) serve index.html.
 */
export function resolveAppFile(root: string, rawUrl: string): string | null {
  let u: URL;
  try {
    u = new URL(rawUrl);
  } catch {
    return null;
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST || u.username || u.password) return null;
  let path: string;
  try {
    path = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  if (path.includes('\0') || path.includes('\\') || /%2f|%5c/i.test(u.pathname)) return null;
  const segments = path.split('/').filter((s) => s.length > 0);
  if (segments.some((s) => s === '..' || s === '.')) return null;
  const rel =
    segments.length === 0 || extname(segments[segments.length - 1] ?? '') === '' ? 'index.html' : segments.join('/');
  const base = resolve(root);
  const file = resolve(base, rel);
  const r = relative(base, file);
  if (r === '' || r.startsWith('..') || isAbsolute(r) || r.split(sep).includes('..')) return null;
  return file;
}

/** A fetch-style handler for `protocol.handle('app', ...)` serving files under `root` with our CSP. */
export function createAppProtocolHandler(root: string): (req: { url: string; method: string }) => Promise<Response> {
  const headers = (type: string): Record<string, string> => ({
    'Content-Type': type,
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  return async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return new Response('method not allowed', { status: 405 });
    const file = resolveAppFile(root, req.url);
    if (!file) return new Response('not found', { status: 404 });
    try {
      // A symlink inside the root must not lead outside it either.
      const real = await realpath(file);
      const realRoot = await realpath(root);
      if (real !== realRoot && !real.startsWith(realRoot + sep)) return new Response('not found', { status: 404 });
      const body = await readFile(real);
      return new Response(req.method === 'HEAD' ? null : body, {
        status: 200,
        headers: headers(MIME[extname(real).toLowerCase()] ?? 'application/octet-stream'),
      });
    } catch {
      return new Response('not found', { status: 404 });
    }
  };
}
