/**
 * The options `station commission` and `station init` share (the registry and its pins, the enrolment code) and the
 * environment variable names they read: a module of constants, so that registering the commands loads nothing else.
 * Imports core/cli only.
 */
import type { OptionTable } from '../../core/cli/program.js';

/** The environment variable the station reads its HSM PIN from unless told another (config.json `hsm.pin.env`). */
export const DEFAULT_PIN_ENV = 'LINE_STATION_HSM_PIN';
/** The environment variable an enrolment code may come from (instead of --enrolment-code or stdin). */
export const ENROLMENT_CODE_ENV = 'LINE_STATION_ENROLMENT_CODE';

/** The registry options of `station commission` and `station init`. */
export const REGISTRY_OPTIONS = {
  registry: { type: 'string', arg: 'URL', help: 'commission online at this registry (needs --registry-cert)' },
  'registry-cert': {
    type: 'string',
    arg: 'registry.pem',
    help: "the registry's signing certificate, pinned: the answer must verify with it",
  },
  'registry-tls-cert': { type: 'string', arg: 'tls.pem', help: "the registry's TLS certificate, pinned (https)" },
  'enrolment-code': {
    type: 'string',
    arg: 'CODE',
    help: `the one-time code of registry commission-station (else $${ENROLMENT_CODE_ENV}, else a line of stdin)`,
  },
  'hq-root': {
    type: 'string',
    arg: 'hq-root.pem',
    help: 'the HQ root certificate, pinned: the answer must chain to exactly this root',
  },
} as const satisfies OptionTable;
