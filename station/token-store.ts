/**
 * The station token (HSM session) and database of a data dir, opened together: by the engine (station/engine.ts)
 * and by `station rotate-key` (station/rotate-key.ts). The caller reads the PIN (readPin) and registers or locks
 * the data dir (station/instance.ts) first.
 */
import { join } from 'node:path';
import type { Clock, Logger } from '../core/ports.js';
import { ok, type Result } from '../core/result.js';
import { openHsm, resolveTokenConfig, type HsmAdmin } from '../native/hsm/index.js';
import { openStationDb, type SqliteStore, type StationDb } from '../native/store/index.js';
import type { LoadedConfig } from './config.js';

export interface StationTokenAndStore {
  readonly hsm: HsmAdmin;
  /** The station database: the process's one connection, every port on it (native/store/station-db.ts). */
  readonly db: StationDb;
  /** `db.store`, the Store port. */
  readonly store: SqliteStore;
  /** Close both, in reverse order (database, then the token session). */
  close(): Promise<void>;
}

/**
 * The configured token's profile and C_Initialize library parameters (NSS softoken: the key database directory), with
 * SOFTHSM2_CONF set first (SoftHSM2 reads its configuration when the module is loaded). For opening or inspecting it.
 */
export function stationTokenConfig(cfg: LoadedConfig): ReturnType<typeof resolveTokenConfig> {
  const c = cfg.config.hsm;
  if (c.softhsmConf) process.env.SOFTHSM2_CONF = cfg.path(c.softhsmConf);
  return resolveTokenConfig({
    module: c.module,
    tokenLabel: c.tokenLabel,
    ...(c.profile !== undefined ? { profile: c.profile } : {}),
    ...(c.tokenDir !== undefined ? { tokenDir: cfg.path(c.tokenDir) } : {}),
  });
}

/** Open the station token (SOFTHSM2_CONF set first) and `station.db`; on failure nothing stays open. */
export async function openTokenAndStore(
  cfg: LoadedConfig,
  pin: string,
  o: { readonly clock: Clock; readonly hsmLogger: Logger; readonly storeLogger: Logger },
): Promise<Result<StationTokenAndStore>> {
  const c = cfg.config;
  const tok = stationTokenConfig(cfg);
  if (!tok.ok) return tok;
  const hsmR = await openHsm({
    module: c.hsm.module,
    tokenLabel: c.hsm.tokenLabel,
    pin,
    logger: o.hsmLogger,
    ...tok.value,
  });
  if (!hsmR.ok) return hsmR;
  const hsm = hsmR.value;
  const dbR = openStationDb(join(cfg.dataDir, 'station.db'), { clock: o.clock, logger: o.storeLogger });
  if (!dbR.ok) {
    await hsm.close();
    return dbR;
  }
  const db = dbR.value;
  return ok({
    hsm,
    db,
    store: db.store,
    async close() {
      db.close();
      await hsm.close();
    },
  });
}
