/**
 * Electron main: app lifecycle, single-instance lock, data dir, the one log sink, the engine host
 * (utilityProcess), the app:// protocol, the locked-down window and the IPC registration.
 *
 * Thin by design: every decision lives in a pure, tested module (window.ts, protocol.ts, ipc.ts,
 * engine-client.ts); this file only wires them to Electron.
 */
import { app, BrowserWindow, protocol, utilityProcess } from 'electron';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StationEvent } from '../../core/api.js';
import { restrictUmask } from '../../native/data-dir.js';
import { createLogger } from '../../native/logger.js';
import { APP_ORIGIN, APP_SCHEME } from '../shared/ipc.js';
import { createEngineClient, type HostChild } from './engine-client.js';
import { clientIdFor, registerIpcHandlers } from './ipc.js';
import { createAppProtocolHandler } from './protocol.js';
import { createMainWindowOptions, hardenWebContents, type HardenableWebContents } from './window.js';

/** dist/electron/ (the bundle's own directory). */
const here = dirname(fileURLToPath(import.meta.url));
const appRoot = resolve(here, '..', '..');

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// Private files from the first write (docs/architecture.md "Data directory permissions"); the engine host inherits it.
restrictUmask();
const dataDir = resolve(argValue('--data-dir') ?? process.env.LINE_STATION_DATA_DIR ?? app.getPath('userData'));
const sink = createLogger({ file: join(dataDir, 'logs', 'station.log'), console: !app.isPackaged, level: 'info' }, '');
const log = sink.child('[main]');

// Secure defaults before anything else: sandbox every renderer, our scheme is standard + secure.
app.enableSandbox();
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } },
]);

if (!app.requestSingleInstanceLock()) {
  log.log('warn', 'another Line Station is running; exiting');
  app.quit();
} else {
  void start();
}

async function start(): Promise<void> {
  await app.whenReady();
  log.log('info', 'starting', { version: app.getVersion(), dataDir, packaged: app.isPackaged });
  const rendererRoot = join(appRoot, 'renderer', 'dist');
  if (!existsSync(join(rendererRoot, 'index.html')))
    log.log('error', 'renderer/dist/index.html is missing: build the renderer first', { rendererRoot });
  protocol.handle(APP_SCHEME, createAppProtocolHandler(rendererRoot));

  const trustedIds = new Set<number>();
  const windows = new Set<BrowserWindow>();
  const hostLog = sink.child('[engine]');
  let deliver: (clientId: string, e: StationEvent) => void = () => {};

  const engine = createEngineClient({
    logger: sink.child('[engine-host]'),
    spawn: () => forkUtility(join(here, 'engine-host.mjs'), dataDir),
    onEvent: (clientId, e) => deliver(clientId, e as StationEvent),
    onLog: (line) => hostLog.child(line.subsystem).log(line.level, line.msg, line.ctx),
  });

  const reg = registerIpcHandlers({
    trusted: trustedIds,
    engine,
    logger: sink.child('[ipc]'),
    targets: () => [...windows].map((w) => w.webContents),
  });
  deliver = reg.deliver;

  app.on('web-contents-created', (_e, wc) => {
    // Any webContents (including ones we did not expect) is locked down the same way.
    hardenWebContents(wc as unknown as HardenableWebContents, (what, ctx) =>
      sink.child('[window]').log('warn', what, ctx),
    );
  });

  const createWindow = () => {
    const win = new BrowserWindow(
      createMainWindowOptions({ preloadPath: join(here, 'preload.cjs'), isPackaged: app.isPackaged }),
    );
    const id = win.webContents.id;
    trustedIds.add(id);
    windows.add(win);
    win.on('closed', () => {
      trustedIds.delete(id);
      windows.delete(win);
      engine.detach(clientIdFor(id));
    });
    win.once('ready-to-show', () => win.show());
    win.webContents.on('render-process-gone', (_e, d) =>
      log.log('error', 'renderer process gone', { reason: d.reason, exitCode: d.exitCode }),
    );
    void win.loadURL(`${APP_ORIGIN}/index.html`);
  };

  app.on('second-instance', () => {
    const w = [...windows][0];
    if (w) {
      if (w.isMinimized()) w.restore();
      w.focus();
    }
  });
  app.on('window-all-closed', () => app.quit());
  let quitting = false;
  app.on('before-quit', (e) => {
    if (quitting) return;
    quitting = true;
    e.preventDefault();
    reg.dispose();
    void engine.stop().finally(() => app.quit());
  });
  createWindow();
}

/** Fork the engine host as an Electron utility process, adapted to HostChild. */
function forkUtility(modulePath: string, dir: string): HostChild {
  const child = utilityProcess.fork(modulePath, ['--data-dir', dir], {
    serviceName: 'Line Station engine',
    stdio: 'inherit',
    env: { ...process.env },
  });
  return {
    get pid() {
      return child.pid;
    },
    postMessage: (m) => child.postMessage(m),
    onMessage: (cb) => child.on('message', cb),
    onExit: (cb) => child.once('exit', (code) => cb(code, null)),
    kill: () => void child.kill(),
  };
}
