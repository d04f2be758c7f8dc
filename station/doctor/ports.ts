/**
 * What `station doctor` reads the station through: small injected ports (configuration, file permissions and disk
 * space, the HSM token, the serial side, the registry client, the sync outbox, the clock), so every check is a
 * function over data that a unit test can hand it. Two adapters build them: station/doctor/data-dir-ports.ts (the
 * CLI, from a data dir, opening each part on its own so one broken part does not hide the others) and
 * station/doctor/engine-ports.ts (the running service, over its open engine).
 *
 * May import: core/ (types) and station/config.ts (types).
 */
import type { Clock, DetectedPort, Hsm } from '../../core/ports.js';
import type { StationError } from '../../core/errors.js';
import type { Health } from '../../core/hq/protocol.js';
import type { TokenReport } from '../../core/hsm/inspection.js';
import type { BoardProfile } from '../../core/provisioning/profiles.js';
import type { Result } from '../../core/result.js';
import type { LoadedConfig } from '../config.js';

/** Where the HSM user PIN came from (reported by hsm-login; the PIN itself never is). */
export type PinSource =
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' };

/** A logged-in token session for the checks; `release` closes what the adapter opened (nothing for the engine's). */
export interface TokenSession {
  readonly hsm: Hsm;
  release(): Promise<void>;
}

/** The stage at which opening the token failed: loading the module, finding the token, reading the PIN, logging in. */
export type TokenStage = 'module' | 'token' | 'pin' | 'login';

export interface TokenOpenFailure {
  readonly stage: TokenStage;
  readonly error: StationError;
}

/** The station's HSM token as configured. */
export interface DoctorToken {
  readonly module: string;
  readonly tokenLabel: string;
  readonly pinSource: PinSource;
  /**
   * The token without a login (native/hsm `inspectToken`): module, token and its PIN flags, the mechanisms and the
   * station's requirements on them, whether the token enforces non-extractability. Never rejects.
   */
  inspect(): Promise<TokenReport>;
  /** Read the PIN and log in (called once per doctor run, after a passing inspection). */
  open(): Promise<Result<TokenSession, TokenOpenFailure>>;
}

/** Free and total bytes of the file system holding a path. */
export interface DiskSpace {
  readonly availableBytes: number;
  readonly totalBytes: number;
}

/** The user running the station, as the serial checks need it. */
export interface StationUser {
  readonly name: string;
  readonly uid: number;
  /** Groups of the running process (what opening a device node is checked against). */
  readonly processGroups: readonly string[];
  /** Groups /etc/group gives the user (a group added since the last login is here, not in processGroups). */
  readonly accountGroups: readonly string[];
}

/** The serial side of the machine. */
export interface DoctorSerial {
  /** Where the station's udev rules are installed (UDEV_RULES_PATH). */
  readonly udevRulesPath: string;
  user(): StationUser | null;
  /** The installed udev rules file's text, or null when it is not there. */
  udevRules(): string | null;
  /** The ports discovery detects now (enumerated serial ports and the configured ones). */
  ports(): Promise<readonly DetectedPort[]>;
  /** null when this process may read and write the device node, else the errno code (EACCES, ENOENT, ...). */
  access(path: string): string | null;
}

/** The registry's health answer and the station's wall clock just before and after the exchange. */
export interface RegistryHealth {
  readonly health: Health;
  readonly sentAt: Date;
  readonly receivedAt: Date;
}

/** The configured registry, through the one registry client (station/hq/client.ts). */
export interface DoctorRegistry {
  /** Base URL; null: the station is enrolled for offline bundles only. */
  readonly url: string | null;
  /** The pinned registry certificate (registry.pem, DER). */
  readonly certificate: Result<Uint8Array>;
  /** `GET /v1/health` through the client (URL policy and TLS pin of the transport). */
  health(): Promise<Result<RegistryHealth>>;
}

/** The sync outbox: records not yet at headquarters. */
export interface SyncBacklog {
  readonly pending: number;
  readonly sent: number;
  readonly failed: number;
  /** When the oldest record not yet acknowledged was queued (ISO), or null when none waits. */
  readonly oldestUnacknowledgedAt: string | null;
}

/** Everything runDoctor reads. */
export interface DoctorPorts {
  readonly dataDir: string;
  readonly clock: Clock;
  /** config.json parsed and validated (without the permission check: `permissions` reports that). */
  readonly config: Result<LoadedConfig>;
  /** The board profiles of the configuration's profilesDir. */
  readonly profiles: () => Result<readonly BoardProfile[]>;
  /** The data dir, its secrets, token files and PIN file private (0700/0600, this user's). */
  readonly permissions: () => Result<void>;
  readonly diskSpace: (path: string) => DiskSpace | null;
  /** The configured token; null without a valid configuration. */
  readonly token: DoctorToken | null;
  /**
   * The station's certificate files (pki.caChain, pki.stationChain), DER, leaf first, and the HQ root it pins
   * (pki.hqRoot; null: not configured, a station made before commissioning: the last certificate of caChain).
   */
  readonly certificates: () => Result<{
    readonly caChain: Uint8Array[];
    readonly stationChain: Uint8Array[];
    readonly hqRoot: Uint8Array | null;
  }>;
  readonly serial: DoctorSerial;
  /** The configured registry; null when config.json has no registry section. */
  readonly registry: DoctorRegistry | null;
  readonly backlog: () => Result<SyncBacklog>;
}
