/**
 * `station init`: a development station (station/init.ts): a SoftHSM2 token, its keys, commissioned by a development
 * HQ (dev root in a second SoftHSM2 token) or, with `--registry URL --registry-cert PEM --enrolment-code C`, by that
 * registry online (revocation signer included); the database and config.json. Idempotent: an initialised data dir is
 * left as it is; an interrupted one resumes. Imports core/, station/ (init) and sibling command modules.
 */
import { list, str } from '../../core/cli/program.js';
import { REGISTRY_OPTIONS } from './commission-options.js';
import { withSetup, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';

/** `station init`. */
export const initCommand: StationCommand = {
  name: 'init',
  summary: 'create a development station: SoftHSM2 token, keys, CA chain (dev HQ or a registry), database, config',
  details:
    'Creates a SoftHSM2 token "LS Station" with the issuing CA and station keys and commissions it (the same path as\n' +
    'station commission): by a development HQ whose root key is in a second SoftHSM2 token, "LS Offline Root" (chain\n' +
    'station -> station CA -> dev HQ root), or with --registry by that registry, online. Then the database and\n' +
    'config.json. An initialised data dir is left as it is; an interrupted init resumes. Production stations:\n' +
    'station commission on their vendor token (docs/deployment.md).',
  options: {
    'attestation-root': {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: "a board vendor's attestation root (PEM); at least one for a new station",
    },
    'station-id': { type: 'string', arg: 'ID', help: 'the station id (default: generated)' },
    port: { type: 'string', multiple: true, arg: 'PATH|GLOB', help: 'serial ports to watch besides the detected ones' },
    ...REGISTRY_OPTIONS,
  },
  run: (args, { io: o }) =>
    withSetup(
      args,
      o,
      async ({ dataDir, logger }) => {
        const stationId = str(args, 'station-id');
        const { registryAuthority } = await import('./commission.js');
        const { initStation } = await import('../commission/init.js');
        const reg = await registryAuthority(args, o);
        if (!reg.ok) {
          o.err(`${reg.error.code}: ${reg.error.message}`);
          return EXIT.usage;
        }
        const r = await initStation({
          dataDir,
          attestationRoots: list(args, 'attestation-root'),
          ...(stationId ? { stationId } : {}),
          extraPorts: list(args, 'port'),
          ...(reg.value
            ? {
                registry: {
                  url: reg.value.url,
                  registryCertificate: reg.value.registryCertificate,
                  tlsCertificate: reg.value.tlsCertificate,
                  code: reg.value.code,
                  hqRoot: reg.value.hqRoot,
                },
              }
            : {}),
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
