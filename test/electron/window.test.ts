/**
 * The station window is locked down: every security option of the BrowserWindow, the webContents
 * hardening (navigation, window.open, webviews, permissions, CSP) and the app:// protocol's
 * path-traversal safety. Plain Node: the Electron objects are replaced by recording fakes.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAppProtocolHandler, resolveAppFile } from '../../electron/main/protocol.js';
import {
  CONTENT_SECURITY_POLICY,
  createMainWindowOptions,
  hardenWebContents,
  isAppUrl,
  withCsp,
  type HardenableWebContents,
} from '../../electron/main/window.js';

describe('createMainWindowOptions', () => {
  it('sets every security-relevant web preference explicitly', () => {
    const o = createMainWindowOptions({ preloadPath: '/app/dist/electron/preload.cjs', isPackaged: true });
    expect(o.webPreferences).toMatchObject({
      preload: '/app/dist/electron/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webviewTag: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      spellcheck: false,
      devTools: false,
    });
  });

  it('has DevTools only in development builds', () => {
    expect(createMainWindowOptions({ preloadPath: '/p', isPackaged: false }).webPreferences?.devTools).toBe(true);
    expect(createMainWindowOptions({ preloadPath: '/p', isPackaged: true }).webPreferences?.devTools).toBe(false);
  });
});

describe('app origin and CSP', () => {
  it('recognises only app://station URLs (the WHATWG origin of a custom scheme is "null")', () => {
    expect(isAppUrl('app://station/index.html')).toBe(true);
    expect(isAppUrl('app://station/#/log')).toBe(true);
    for (const u of [
      'app://evil/index.html',
      'app://user:pw@station/',
      'https://station/',
      'file:///index.html',
      'http://127.0.0.1:5173/',
      'javascript:alert(1)',
      '',
      'not a url',
    ])
      expect(isAppUrl(u), u).toBe(false);
    expect(new URL('app://station/x').origin).toBe('null'); // why isAppUrl compares scheme and host
  });

  it('sets the bridge CSP on app:// and file:// responses, replacing any other CSP', () => {
    expect(CONTENT_SECURITY_POLICY).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    const h = withCsp('app://station/index.html', { 'content-security-policy': ['default-src *'], 'X-A': ['1'] });
    expect(h).toEqual({ 'Content-Security-Policy': [CONTENT_SECURITY_POLICY], 'X-A': ['1'] });
    expect(withCsp('file:///opt/x/index.html', undefined)).toEqual({
      'Content-Security-Policy': [CONTENT_SECURITY_POLICY],
    });
    expect(withCsp('https://example.org/', { 'X-A': ['1'] })).toEqual({ 'X-A': ['1'] });
  });
});

/** A webContents that records the handlers hardenWebContents installs. */
function fakeWebContents() {
  const on: Record<string, (e: { preventDefault(): void; url: string }) => void> = {};
  const s = {
    openHandler: null as null | ((d: { url: string }) => { action: 'deny' }),
    permission: null as null | ((wc: unknown, p: string, cb: (g: boolean) => void) => void),
    check: null as null | ((...a: unknown[]) => boolean),
    headers: null as
      | null
      | ((
          d: { url: string; responseHeaders?: Record<string, string[]> },
          cb: (r: { responseHeaders?: Record<string, string[]> }) => void,
        ) => void),
  };
  const wc: HardenableWebContents = {
    session: {
      setPermissionRequestHandler: (h) => void (s.permission = h),
      setPermissionCheckHandler: (h) => void (s.check = h),
      webRequest: { onHeadersReceived: (h) => void (s.headers = h) },
    },
    on: (ev: string, h: (e: { preventDefault(): void; url: string }) => void) => void (on[ev] = h),
    setWindowOpenHandler: (h) => void (s.openHandler = h),
  };
  const fire = (ev: string, url = '') => {
    let prevented = false;
    const h = on[ev];
    if (!h) throw new Error(`no ${ev} handler`);
    h({ preventDefault: () => void (prevented = true), url });
    return prevented;
  };
  return { wc, s, fire };
}

describe('hardenWebContents', () => {
  const refusals: string[] = [];
  const f = fakeWebContents();
  hardenWebContents(f.wc, (what) => refusals.push(what));

  it('refuses navigation and redirects away from the app origin, allows in-app navigation', () => {
    expect(f.fire('will-navigate', 'https://evil.example/')).toBe(true);
    expect(f.fire('will-navigate', 'file:///etc/passwd')).toBe(true);
    expect(f.fire('will-redirect', 'http://127.0.0.1:9/')).toBe(true);
    expect(f.fire('will-navigate', 'app://station/index.html#/log')).toBe(false);
    expect(refusals).toContain('navigation refused');
  });

  it('denies window.open, webviews and every permission; permission checks answer false', () => {
    expect(f.s.openHandler?.({ url: 'app://station/other' })).toEqual({ action: 'deny' });
    expect(f.fire('will-attach-webview')).toBe(true);
    const granted: boolean[] = [];
    for (const p of ['media', 'geolocation', 'notifications', 'usb', 'serial', 'clipboard-read'])
      f.s.permission?.({}, p, (g) => granted.push(g));
    expect(granted).toEqual([false, false, false, false, false, false]);
    expect(f.s.check?.({}, 'usb')).toBe(false);
  });

  it('adds the CSP header to the app pages it serves', () => {
    let out: { responseHeaders?: Record<string, string[]> } | null = null;
    f.s.headers?.({ url: 'app://station/index.html', responseHeaders: {} }, (r) => (out = r));
    expect(out).toEqual({ responseHeaders: { 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
});

describe('app:// protocol', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ls-app-proto-'));
  const root = join(dir, 'dist');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>Line Station</title>');
  writeFileSync(join(root, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'outside the root');
  symlinkSync(join(dir, 'secret.txt'), join(root, 'assets', 'link.js'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('maps app URLs under the root; / and client routes serve index.html', () => {
    expect(resolveAppFile(root, 'app://station/')).toBe(join(root, 'index.html'));
    expect(resolveAppFile(root, 'app://station/log/record')).toBe(join(root, 'index.html'));
    expect(resolveAppFile(root, 'app://station/assets/app.js?v=1')).toBe(join(root, 'assets', 'app.js'));
  });

  it('refuses traversal, encoded separators, NUL, other hosts and schemes', () => {
    for (const u of [
      'app://station/..%2fsecret.txt',
      'app://station/..\\secret.txt',
      'app://station/..%5csecret.txt',
      'app://station/a%00.js',
      'app://station/%E0%A4%A',
      'app://other/index.html',
      'file:///etc/passwd',
    ])
      expect(resolveAppFile(root, u), u).toBeNull();
    // The URL parser already collapses dot segments, literal or %2e-encoded: they stay inside the root.
    for (const u of ['app://station/../../secret.txt', 'app://station/assets/%2e%2e/%2e%2e/%2e%2e/secret.txt'])
      expect(resolveAppFile(root, u), u).toBe(join(root, 'secret.txt'));
  });

  it('serves files with the CSP, 404s what is outside the root (also through a symlink)', async () => {
    const handle = createAppProtocolHandler(root);
    const ok = await handle({ url: 'app://station/assets/app.js', method: 'GET' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(ok.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await ok.text()).toBe('console.log(1)');
    expect((await handle({ url: 'app://station/assets/link.js', method: 'GET' })).status).toBe(404);
    expect((await handle({ url: 'app://station/%2e%2e/secret.txt', method: 'GET' })).status).toBe(404);
    expect((await handle({ url: 'app://station/missing.js', method: 'GET' })).status).toBe(404);
    expect((await handle({ url: 'app://station/', method: 'POST' })).status).toBe(405);
  });
});
