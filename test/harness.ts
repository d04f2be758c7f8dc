/**
 * A throwaway world for integration tests: a temp data dir, the board simulator on real ptys, a
 * development station (SoftHSM2 tokens initialised for this run only) and the engine.
 * Logs are kept under the temp dir and printed on failure by the caller.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/ports.js';
import { openEngine, type Engine } from '../station/engine.js';
import { initStation } from '../station/commission/init.js';
import { createLogger } from '../native/logger.js';
import { startSimulator, type SimulatorHandle } from './sim/simulator.js';

export interface World {
  readonly dir: string;
  readonly dataDir: string;
  readonly sim: SimulatorHandle;
  readonly engine: Engine;
  readonly logger: Logger;
  readonly logFile: string;
  readonly logText: () => string;
  /** Re-open the engine (e.g. after a simulated station restart). */
  reopen(): Promise<Engine>;
  teardown(): Promise<void>;
}

export type SimBoards = Parameters<typeof startSimulator>[0]['boards'];

export async function createWorld(opts: { boards: SimBoards; keep?: boolean; dataDir?: string }): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ls-world-'));
  const dataDir = opts.dataDir ?? join(dir, 'station');
  const logFile = join(dir, 'station.log');
  const logger = createLogger({ file: logFile, level: 'debug' });
  const sim = await startSimulator({ dir: join(dir, 'ports'), stateDir: join(dir, 'sim-state'), boards: opts.boards });
  const init = await initStation({
    dataDir,
    stationId: 'test-station',
    // LS vendor root; with TPM boards also the TPM vendor root and its EK-issuing CA (test/sim/README.md)
    attestationRoots: [sim.vendorRootPath, sim.tpmVendorRootPath, sim.tpmVendorIssuerPath].filter(
      (p): p is string => p !== null,
    ),
    logger,
  });
  if (!init.ok) {
    await sim.stop();
    throw new Error(`station init failed: ${init.error.code} ${init.error.message}`);
  }
  const eng = await openEngine({ dataDir, logger });
  if (!eng.ok) {
    await sim.stop();
    throw new Error(`engine failed: ${eng.error.code} ${eng.error.message}`);
  }
  let engine = eng.value;
  const world: World = {
    dir,
    dataDir,
    sim,
    get engine() {
      return engine;
    },
    logger,
    logFile,
    logText: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async reopen() {
      await engine.close();
      const e = await openEngine({ dataDir, logger });
      if (!e.ok) throw new Error(`engine reopen failed: ${e.error.code} ${e.error.message}`);
      engine = e.value;
      return engine;
    },
    async teardown() {
      await engine.close();
      await sim.stop();
      if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}
