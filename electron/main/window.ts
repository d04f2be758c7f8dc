/**
 * The locked-down main window: BrowserWindow options and the hardening applied to its webContents.
 *
 * Everything that decides is a pure function (tested in plain Node, test/electron/window.test.ts);
 * `hardenWebContents` only wires those decisions to Electron's events. Structural types keep this
 * file free of runtime Electron imports.
 */
import type { BrowserWindowConstructorOptions } from 'electron';
import { APP_HOST, APP_SCHEME } from '../shared/ipc.js';

/**
 * The renderer's Content-Security-Policy. Identical to the one the HTTP bridge sends: same-origin
 * scripts, styles and connections only, no inline script, no framing, no base/form targets.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export interface WindowOptionsInput {
  /** Absolute path of the bundled preload (dist/electron/preload.cjs). */
  readonly preloadPath: string;
  /** `app.isPackaged`: DevTools exist only in development builds. */
  readonly isPackaged: boolean;
}

/** BrowserWindow options for the station window. Every security-relevant preference is explicit. */
export function createMainWindowOptions(o: WindowOptionsInput): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 800,
    minWidth: 1024,
    minHeight: 640,
    title: 'Line Station',
    show: false,
    backgroundColor: '#111418',
    autoHideMenuBar: true,
    webPreferences: {
      preload: o.preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webviewTag: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      spellcheck: false,
      devTools: !o.isPackaged,
    },
  };
}

/** True for URLs of the app itself: `app://station/...` (custom standard scheme; WHATWG origin is "null"). */
export function isAppUrl(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST && u.username === '' && u.password === '';
}

/** Navigation is allowed only within the app origin (a reload or an in-app route). */
export function isNavigationAllowed(url: string): boolean {
  return isAppUrl(url);
}

type Headers = Record<string, string[]>;

/** Response headers with our CSP for the app's own pages (app:// or file://); other URLs unchanged. */
export function withCsp(url: string, headers: Readonly<Headers> | undefined): Headers | undefined {
  const isOwn = isAppUrl(url) || url.startsWith('file:');
  if (!isOwn) return headers ? { ...headers } : undefined;
  const out: Headers = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (k.toLowerCase() !== 'content-security-policy') out[k] = v;
  out['Content-Security-Policy'] = [CONTENT_SECURITY_POLICY];
  return out;
}

/** The parts of Electron's WebContents/Session that hardening touches (structural: fakeable in tests). */
export interface HardenableSession {
  setPermissionRequestHandler(h: (wc: unknown, permission: string, cb: (granted: boolean) => void) => void): void;
  setPermissionCheckHandler(h: (...args: unknown[]) => boolean): void;
  readonly webRequest: {
    onHeadersReceived(
      h: (
        details: { url: string; responseHeaders?: Record<string, string[]> },
        cb: (r: { responseHeaders?: Record<string, string[]> }) => void,
      ) => void,
    ): void;
  };
}
export interface HardenableWebContents {
  readonly session: HardenableSession;
  on(event: 'will-navigate' | 'will-redirect', h: (e: { preventDefault(): void; url: string }) => void): unknown;
  on(event: 'will-attach-webview', h: (e: { preventDefault(): void }) => void): unknown;
  setWindowOpenHandler(h: (d: { url: string }) => { action: 'deny' }): void;
}

/** Something to tell about refused attempts (the main log). */
export type Refusal = (what: string, ctx: Record<string, unknown>) => void;

/**
 * Lock a webContents down: navigation outside the app origin, new windows, webviews and every
 * permission request are refused; our CSP is set on the app's responses.
 */
export function hardenWebContents(wc: HardenableWebContents, refused: Refusal = () => {}): void {
  const guard = (kind: string) => (e: { preventDefault(): void; url: string }) => {
    if (!isNavigationAllowed(e.url)) {
      e.preventDefault();
      refused(`${kind} refused`, { url: e.url });
    }
  };
  wc.on('will-navigate', guard('navigation'));
  wc.on('will-redirect', guard('redirect'));
  wc.on('will-attach-webview', (e) => {
    e.preventDefault();
    refused('webview refused', {});
  });
  wc.setWindowOpenHandler((d) => {
    refused('window.open refused', { url: d.url });
    return { action: 'deny' };
  });
  wc.session.setPermissionRequestHandler((_wc, permission, cb) => {
    refused('permission refused', { permission });
    cb(false);
  });
  wc.session.setPermissionCheckHandler(() => false);
  wc.session.webRequest.onHeadersReceived((details, cb) => {
    const responseHeaders = withCsp(details.url, details.responseHeaders);
    cb(responseHeaders ? { responseHeaders } : {});
  });
}
