/**
 * What the parts of the station lifecycle share (station/lifecycle/index.ts composes them): the lifecycle tables,
 * the station's identity and keys, the registry client (null: no registry URL), the outcome types of the
 * documents the registry signs, and the lifecycle's defaults (station/config.ts takes its default from here, so
 * nothing in station/lifecycle imports station/).
 *
 * May import: core/ (types), native/store/lifecycle.ts (types), station/hq/client.ts (types).
 */
import type { Clock, Logger, Signer } from '../../core/ports.js';
import type { Store } from '../../core/provisioning/store.js';
import type { LifecycleDb, StoreDocumentOutcome } from '../../native/store/lifecycle.js';
import type { RegistryClient } from '../hq/client.js';

export interface LifecycleContext {
  readonly db: LifecycleDb;
  readonly stationId: string;
  /** Station signing key: signs scrap and failed-issuance events (LS-Sig requests: through `client`). */
  readonly signer: Signer;
  /** Station chain (DER, leaf first): x5c of the events. */
  readonly chain: readonly Uint8Array[];
  readonly registryCertificate: Uint8Array | null;
  /** The registry client; null when no registry URL is configured. */
  readonly client: RegistryClient | null;
  /** The Store: lifecycle events go to the audit trail. */
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
}

/** The registry's signed answer about this station (GET /v1/station-status), verified. */
export interface StationStatusOutcome {
  readonly status: 'active' | 'revoked';
  readonly revokedAt: string | null;
  /** The answer's issuedAt (registry clock). */
  readonly issuedAt: string;
}

export interface DocumentOutcome {
  readonly version: number;
  /** stored: newer, now in force; same: the version in force; older: ignored (never rolled back). */
  readonly outcome: StoreDocumentOutcome;
}

export interface PullOutcome {
  readonly policy: DocumentOutcome;
  readonly quotas: DocumentOutcome;
}

/**
 * Default `lifecycle.activeRunLifetimeS`: 24 h. A board that really comes back (a reseated cable, a power loss, a
 * station restart, the next shift) does so within a day, while a board that is gone (unplugged and lost, taken off
 * the fixture) keeps a valid certificate nobody reported only this long. Ending a run too early costs little: the
 * board, if it returns, is simply provisioned again with a new identity.
 */
export const DEFAULT_ACTIVE_RUN_LIFETIME_S = 86_400;

export const NO_REGISTRY_CERT = 'no registry certificate is configured: run station enroll --registry-cert FILE';
export const NO_REGISTRY_URL = 'no registry URL is configured: run station enroll --registry URL';
