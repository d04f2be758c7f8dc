/**
 * The doctor ports of a running station (the service's `doctor` operation): the engine's configuration, profiles,
 * logged-in token session (not closed after the checks), the certificates it runs with, its database connection and
 * the service's port discovery. Files, groups and the registry are read as for the CLI (data-dir-ports.ts).
 *
 * May import: core/, native/, station/ (engine types, doctor).
 */
import type { DeviceDiscovery } from '../../core/ports.js';
import { ok } from '../../core/result.js';
import type { Engine } from '../engine.js';
import {
  configuredRegistry,
  diskSpace,
  inspectConfiguredToken,
  machineSerial,
  pinSourceOf,
  privatePaths,
  readChains,
} from './data-dir-ports.js';
import type { DoctorPorts } from './ports.js';

/** The ports of `engine`, with the ports `discovery` detects. */
export function enginePorts(engine: Engine, discovery: () => DeviceDiscovery): DoctorPorts {
  const cfg = engine.config;
  const c = cfg.config;
  const serial = machineSerial(c.ports.extra);
  return {
    dataDir: cfg.dataDir,
    clock: engine.clock,
    config: ok(cfg),
    profiles: () => ok(engine.profiles),
    permissions: () => privatePaths(cfg.dataDir, cfg),
    diskSpace,
    token: {
      module: c.hsm.module,
      tokenLabel: c.hsm.tokenLabel,
      pinSource: pinSourceOf(cfg, false),
      inspect: () => inspectConfiguredToken(cfg),
      // The engine's session: logged in since the station started (it would not run otherwise); left open.
      open: async () => ok({ hsm: engine.hsm, release: async () => {} }),
    },
    // The chains the engine runs with; the pinned HQ root from its file (the engine does not hold it).
    certificates: () => {
      const files = readChains(cfg)();
      return files.ok
        ? ok({
            caChain: [...engine.station.caChain],
            stationChain: [...engine.station.chain],
            hqRoot: files.value.hqRoot,
          })
        : files;
    },
    serial: { ...serial, ports: () => discovery().list() },
    registry: configuredRegistry(cfg, engine.clock),
    backlog: () =>
      ok({
        ...engine.db.outbox.counts(),
        oldestUnacknowledgedAt: engine.db.outbox.oldestUnacknowledgedAt(),
      }),
  };
}
