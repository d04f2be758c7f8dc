/**
 * `registry serve`: the registry over HTTP until SIGINT/SIGTERM, announced in `<data-dir>/serve.json` (its URL,
 * for tools and the demo; removed when it stops). Imports core/, native/atomic-file.ts and registry/cli/; zod,
 * registry/setup/keys.ts, registry/cli/open.ts and registry/http/server.ts when it runs.
 */
import { readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { str } from '../../core/cli/program.js';
import { systemClock } from '../../core/ports.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { usage, type RegistryCommand } from '../cli/command.js';
import { reportError } from '../cli/report.js';

/** The file `serve` announces its URL in, in the data dir (removed when it stops). */
export const SERVE_FILE = 'serve.json';
const SERVE_SCHEMA = 'line-station/registry-serve/v1';

/** serve.json's shape (made when `serve` stops: declaring the command loads no zod). */
async function serveFileSchema() {
  const { z } = await import('zod');
  return z.object({
    schema: z.literal(SERVE_SCHEMA),
    url: z.string().url(),
    pid: z.number().int().positive(),
    startedAt: z.string(),
  });
}

/** `registry serve` announces its URL in `<dataDir>/serve.json` (removed when it stops). */
function writeServeFile(dataDir: string, url: string, startedAt: string): void {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.hostname === '[::]') u.hostname = '[::1]';
  const file = resolve(dataDir, SERVE_FILE);
  const body = { schema: SERVE_SCHEMA, url: u.origin, pid: process.pid, startedAt };
  writeFileAtomic(file, JSON.stringify(body, null, 2) + '\n');
}

/** Remove serve.json if it is this process's. */
async function removeServeFile(dataDir: string): Promise<void> {
  const file = resolve(dataDir, SERVE_FILE);
  const ServeFileSchema = await serveFileSchema();
  try {
    const s = ServeFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (s.success && s.data.pid === process.pid) rmSync(file, { force: true });
  } catch {
    // not there or not ours
  }
}

/** Resolves on the first SIGINT or SIGTERM. */
function stopSignal(): Promise<void> {
  return new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

const serve: RegistryCommand = {
  name: 'serve',
  summary: 'serve the registry API over HTTP (docs/registry-api.md) until SIGINT/SIGTERM',
  details: `The URL is printed ("listening on URL") and written to <data-dir>/${SERVE_FILE} while it runs.`,
  options: {
    port: { type: 'string', arg: 'N', help: 'TCP port, 0..65535 (default 8443; 0: any free port)' },
    host: { type: 'string', arg: 'H', help: 'address to listen on (default 127.0.0.1)' },
  },
  opens: 'config',
  async run(a, { dataDir, logger, out, config, dbUrl }) {
    const p = str(a, 'port');
    const port = p === undefined ? 8443 : Number(p);
    if (!Number.isInteger(port) || port < 0 || port > 65535) return usage('--port must be 0..65535');
    const [{ openRegistryKeys }, { lifecycleSettings }, { startRegistry }] = await Promise.all([
      import('../setup/keys.js'),
      import('../cli/open.js'),
      import('./server.js'),
    ]);
    const keys = await openRegistryKeys(dataDir, logger);
    if (!keys.ok) return reportError(out, keys.error);
    const lc = lifecycleSettings(config, keys.value);
    const srv = await startRegistry({
      db: dbUrl,
      port,
      host: str(a, 'host') ?? '127.0.0.1',
      signer: keys.value.signer,
      registryChain: keys.value.chain,
      registryId: config.registryId,
      adminToken: keys.value.adminToken,
      clock: systemClock,
      logger,
      lifecycle: lc.lifecycle,
      crlRefreshS: lc.crlRefreshS,
      ...(config.http ? { http: config.http } : {}),
    });
    if (!srv.ok) {
      await keys.value.close();
      return reportError(out, srv.error);
    }
    writeServeFile(dataDir, srv.value.url, systemClock.now().toISOString());
    out.log(`registry ${config.registryId} listening on ${srv.value.url} (${srv.value.db.backend})`);
    await stopSignal();
    await removeServeFile(dataDir);
    await srv.value.close();
    await keys.value.close();
    return 'ok';
  },
};

/** The HTTP feature's commands. */
export const HTTP_COMMANDS: readonly RegistryCommand[] = [serve];
