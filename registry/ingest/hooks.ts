/**
 * How the device identity lifecycle takes part in ingest without ingest importing it: the hooks a batch or bundle
 * calls at fixed points. The lifecycle features implement them (registry/transitions/ingest-hooks.ts,
 * registry/revocation); registry/http/compose.ts puts them together. Imports core and registry/common only.
 */
import type { Result } from '../../core/result.js';
import type { IngestRecord, SqlExec, StationRow } from '../../core/hq/registry-db.js';
import type { RejectReason, RevocationResult } from '../../core/hq/protocol.js';
import type { RegistryContext } from '../common/context.js';
import type { ApiError } from '../common/errors.js';
import type { StationTrust } from '../trust/verify.js';

/** The lifecycle's part in ingest. */
export interface IngestHooks {
  /**
   * Before the verified records are stored: the ones the lifecycle refuses, by index (decommissioned or blocked
   * device, station or operator revoked before completedAt, a failed issuance's certificate). Throws on a
   * database failure (ingest then stores nothing: STORE_UNAVAILABLE).
   */
  precheck(
    ctx: RegistryContext,
    station: StationRow,
    records: readonly IngestRecord[],
  ): Promise<Map<number, RejectReason>>;
  /**
   * Inside the ingest transaction (`tx`), for the records newly stored: devices and credentials. Throws on a
   * database failure, which rolls the whole batch back. `credentialsChanged`: re-sign the station's CRL after.
   */
  apply(
    ctx: RegistryContext,
    tx: SqlExec,
    stationId: string,
    stored: readonly IngestRecord[],
  ): Promise<{ readonly credentialsChanged: boolean }>;
  /** After the commit, when `apply` changed what the station's CRL lists. */
  credentialsChanged(ctx: RegistryContext, stationId: string): Promise<void>;
  /** A bundle's revocation events (scrap, failed issuance), applied after its records are stored. */
  revocations(
    ctx: RegistryContext,
    trust: StationTrust,
    events: readonly string[],
  ): Promise<Result<{ results: RevocationResult[] }, ApiError>>;
}
