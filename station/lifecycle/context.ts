/**
 * What the parts of the station lifecycle share (station/lifecycle/index.ts composes them): the lifecycle tables,
 * the station's identity and keys, the registry client (null: no registry URL), and the outcome types of the
 * documents the registry signs.
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

export const NO_REGISTRY_CERT = 'no registry certificate is configured: run station enroll --registry-cert FILE';
export const NO_REGISTRY_URL = 'no registry URL is configured: run station enroll --registry URL';
