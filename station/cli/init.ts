/**
 * `station init`: create a development station (SoftHSM2 tokens, the CA chain, the database, config.json);
 * idempotent: an initialised data dir is left as it is. Imports core/, station/ (init) and sibling command modules.
 */
import { list, str } from '../../core/cli/program.js';
import { withSetup, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';

/** `station init`. */
export const initCommand: StationCommand = {
  name: 'init',
  summary: 'create the station: HSM tokens, CA chain, database and config.json',
  details:
    'Creates SoftHSM2 tokens (offline root, station), the CA chain root -> issuing CA -> station/devices, the\n' +
    'database and config.json. An initialised data dir is left as it is.',
  options: {
    'attestation-root': {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: "a board vendor's attestation root (PEM); at least one for a new station",
    },
    'station-id': { type: 'string', arg: 'ID', help: 'the station id (default: generated)' },
    port: { type: 'string', multiple: true, arg: 'PATH|GLOB', help: 'serial ports to watch besides the detected ones' },
  },
  run: (args, { io: o }) =>
    withSetup(
      args,
      o,
      async ({ dataDir, logger }) => {
        const stationId = str(args, 'station-id');
        const { initStation } = await import('../init.js');
        const r = await initStation({
          dataDir,
          attestationRoots: list(args, 'attestation-root'),
          ...(stationId ? { stationId } : {}),
          extraPorts: list(args, 'port'),
          logger,
        });
        if (!r.ok) return reportError(o, r.error);
        o.out(
          r.value.created
            ? `station ${r.value.config.stationId} initialised in ${dataDir}`
            : `station ${r.value.config.stationId} already initialised in ${dataDir}`,
        );
        return EXIT.ok;
      },
      { checkDataDir: false },
    ),
};
