/**
 * What every registry operation runs with: the RegistryContext (database, receipt signer, registry chain, clock,
 * logger, admin token digest, lifecycle settings), the lifecycle configuration, and who called (`Caller`).
 * Imports core and the station trust type (registry/trust).
 */
import { createHash } from 'node:crypto';
import type { Curve } from '../../core/model.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import type { Result } from '../../core/result.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import type { StationTrust } from '../trust/verify.js';

/** The registry token functions the lifecycle needs (native/hsm HsmAdmin satisfies it). */
export interface LifecycleHsm {
  signer(label: string): Promise<Result<Signer>>;
  generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>>;
  destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>>;
}

/**
 * `ingest-apply`: inside the ingest transaction, after the devices of a batch were written (rolls it back);
 * `commission`: inside the commissioning transaction, after every row was written (rolls it back).
 */
export type FailPoint = 'ingest-apply' | 'commission';

/** Station commissioning settings (registry/commissioning; config.json `commissioning`). */
export interface CommissioningSettings {
  /** The HQ CA (signer in the registry token, chain HQ CA first, root last), or why there is none. */
  readonly hqCa: Result<{
    readonly signer: Signer;
    readonly chain: readonly Uint8Array[];
    readonly rootSha256: string;
  }>;
  /** O of station CAs and station certificates. */
  readonly organization: string;
  /** Station CA validity (days), bounded by the HQ CA's notAfter. */
  readonly stationCaValidityDays: number;
  /** extendedKeyUsage of station CA certificates. */
  readonly stationCaEku: readonly string[];
}

/** Identity lifecycle settings (docs/lifecycle.md). */
export interface LifecycleConfig {
  /** Station commissioning: the HQ CA and its policy (absent: commissioning, HQ CRL and HQ OCSP are unavailable). */
  readonly commissioning?: CommissioningSettings;
  /** Registry token holding the delegated revocation signer keys (`revocation-signer-<requestId>`). */
  readonly hsm?: LifecycleHsm;
  /** CRL nextUpdate - thisUpdate and regeneration interval; also the OCSP validity (default 3600 s). */
  readonly crlIntervalS?: number;
  /**
   * Default lifetime of certificates issued at re-enrolment (whole days, default 365, at least 1). The policy
   * setting `reenrollment.certificateLifetimeSeconds` (`registry policy set --cert-lifetime`, 1 h .. 100 years)
   * overrides it, for short-lived certificates down to one hour.
   */
  readonly certificateLifetimeDays?: number;
  /**
   * Default rotate-before window: devices should re-enrol this many days before expiry (default 30, capped at
   * half the lifetime). Overridden by the policy setting `reenrollment.rotateBeforeSeconds` (below the lifetime).
   */
  readonly rotateBeforeDays?: number;
  /** SHA-256 of the security officer's bearer token (role security-officer). */
  readonly securityOfficerTokenSha256?: Uint8Array;
  /** Test hook: called at named points; throwing there simulates a crash. */
  readonly failpoint?: (point: FailPoint) => void | Promise<void>;
}

/** The registry's operations run with this. */
export interface RegistryContext {
  readonly db: RegistryDb;
  /** Receipt signing key (HSM). */
  readonly signer: Signer;
  /** Registry certificate chain (DER, leaf first); the leaf's key is the signer's. */
  readonly registryChain: readonly Uint8Array[];
  readonly registryId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** SHA-256 of the admin token (none: admin endpoints are refused). */
  readonly adminTokenSha256?: Uint8Array;
  /** Identity lifecycle settings (delegated revocation signers, CRL/OCSP, roles). */
  readonly lifecycle?: LifecycleConfig;
}

/** The same context, by its older name (the lifecycle features took it before it held the lifecycle settings). */
export type LifecycleContext = RegistryContext;

/** Who called an operation: the admin (bearer token) or an authenticated station. */
export type Caller =
  | {
      readonly kind: 'admin';
      /**
       * Import a bundle of a REVOKED station (deliberate, audited): its records completed before the revocation
       * are accepted, later ones rejected STATION_REVOKED. Without it a revoked station's bundle is refused.
       */
      readonly allowRevokedStation?: boolean;
    }
  | { readonly kind: 'station'; readonly trust: StationTrust };

/** The registry clock's now, ISO 8601. */
export const now = (ctx: RegistryContext): string => ctx.clock.now().toISOString();

/** CRL validity and regeneration interval, also the OCSP validity (s). */
export const crlInterval = (ctx: RegistryContext): number => ctx.lifecycle?.crlIntervalS ?? 3600;

/** The request audience of this registry: `registryAudience` of its certificate (registryChain[0]). */
export function audienceOf(ctx: RegistryContext): string {
  const leaf = ctx.registryChain[0];
  return leaf ? createHash('sha256').update(leaf).digest('hex') : '';
}
