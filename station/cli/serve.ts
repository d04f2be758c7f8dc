/**
 * `station serve`: open the engine, start the station service and the localhost HTTP bridge for the browser UI, and
 * run until SIGINT/SIGTERM. The bridge's access token never reaches stdout, a log or another process's argv: it is
 * only in `secrets/ui-url.html` (0600), the page `--open` hands to the browser by its path. Imports core/, native/,
 * station/ (bridge, engine, service) and sibling command modules.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { flagOn, str } from '../../core/cli/program.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { commandLogger, dataDirOf, type StationCommand } from './context.js';
import { describeError, EXIT, notReadyExit } from './exit.js';

/** Where `station serve` writes the UI address with its access token (relative to the data dir, 0600). */
export const UI_URL_FILE = join('secrets', 'ui-url.html');

/** A page that sends the browser on to the bridge URL (the token stays in the fragment) and shows the link. */
function uiLauncher(url: string): string {
  const u = url.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return (
    `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
    `<meta http-equiv="refresh" content="0;url=${u}"><title>Line Station</title>` +
    `<p>Line Station UI: <a href="${u}">${u}</a></p>\n`
  );
}

/** `station serve`. */
export const serveCommand: StationCommand = {
  name: 'serve',
  summary: 'serve the browser UI on 127.0.0.1 until Ctrl-C',
  details:
    'The UI address with its access token is written to <data-dir>/secrets/ui-url.html (0600, removed on exit);\n' +
    'open that file in a browser on this machine. The token is never printed.',
  options: {
    port: { type: 'string', arg: 'N', help: 'the port on 127.0.0.1 (0..65535; default 0: any free port)' },
    open: { type: 'boolean', help: 'open the UI in the default browser (given the file, not the address)' },
    'static-dir': { type: 'string', arg: 'DIR', help: 'serve the UI from DIR (default: renderer/dist)' },
  },
  async run(args, { io: o }) {
    const [{ startBridge }, { openEngine }, { createLogTap, createStationService }] = await Promise.all([
      import('../bridge/bridge.js'),
      import('../engine.js'),
      import('../service/index.js'),
    ]);
    const portArg = str(args, 'port');
    const port = portArg ? Number(portArg) : 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      o.err('--port: 0..65535');
      return EXIT.usage;
    }
    const dataDir = dataDirOf(args);
    const hub = createLogTap();
    const logger = commandLogger(dataDir, args, hub.tap);
    const eng = await openEngine({ dataDir, logger });
    if (!eng.ok) {
      o.err(describeError(eng.error));
      return notReadyExit(eng.error);
    }
    const engine = eng.value;
    const service = createStationService({ engine, logger, logTap: hub });
    await service.start();
    let bridge;
    try {
      const staticDir = str(args, 'static-dir');
      bridge = await startBridge({ service, port, logger, ...(staticDir ? { staticDir: resolve(staticDir) } : {}) });
    } catch (e) {
      o.err(`cannot start the bridge: ${(e as Error).message}`);
      await service.stop();
      await engine.close();
      return EXIT.notReady;
    }
    // The address with its token only in a 0600 file (secrets/ is 0700 too); the browser gets the file's path.
    const urlFile = join(dataDir, UI_URL_FILE);
    writeFileAtomic(urlFile, uiLauncher(bridge.url), 0o600);
    o.out(
      `Line Station ${engine.station.id}: UI on http://127.0.0.1:${bridge.port}/\n` +
        `  open ${urlFile} in a browser on this machine (its address carries the access token; readable only by you)`,
    );
    if (flagOn(args, 'open')) {
      try {
        const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [urlFile], {
          stdio: 'ignore',
          detached: true,
        });
        child.on('error', () => o.err(`could not open a browser; open ${urlFile}`));
        child.unref();
      } catch {
        o.err(`could not open a browser; open ${urlFile}`);
      }
    }
    await new Promise<void>((res) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        res();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    o.out('stopping: boards in progress stop at their last checkpoint');
    rmSync(urlFile, { force: true });
    await bridge.close();
    await service.stop();
    await engine.close();
    return EXIT.ok;
  },
};
