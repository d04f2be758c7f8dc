/**
 * Ports: the interfaces through which the Electron-free core reaches the outside world.
 * Adapters in native/ implement them (pkcs11js, serialport, usb, better-sqlite3); tests and the
 * simulator provide real stand-ins. The core never imports an adapter.
 */
import type { Result } from './result.js';
import type { AttestationEvidence, AttestKeyRole, BoardIdentity, Curve, Measurements } from './model.js';

// ---------------------------------------------------------------- clock & logging

export interface Clock {
  /** Wall-clock time (certificate validity, record timestamps). */
  now(): Date;
  /** Monotonic milliseconds (timings, timeouts). */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured logger. Context values must never contain PINs or key material. */
export interface Logger {
  log(level: LogLevel, msg: string, ctx?: Readonly<Record<string, unknown>>): void;
  /** A logger whose lines carry a subsystem prefix, e.g. `[serial /dev/ttyACM0]`. */
  child(prefix: string): Logger;
}

// ---------------------------------------------------------------- board link

/** A raw, bidirectional byte stream to one board (a serial port, a pty). */
export interface ByteLink {
  readonly path: string;
  write(data: Uint8Array): Promise<void>;
  /** Subscribe to incoming bytes; returns an unsubscribe function. */
  onData(cb: (chunk: Uint8Array) => void): () => void;
  /** Called once when the link closes (err set if it closed because of an error, e.g. unplug). */
  onClose(cb: (error?: Error) => void): () => void;
  close(): Promise<void>;
}

export interface ByteLinkOpener {
  open(path: string): Promise<Result<ByteLink>>;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the per-request timeout (ms). */
  readonly timeoutMs?: number;
}

export interface AttestOptions extends CallOptions {
  /** Protocol 2: the key the statement must bind (default device); ignored by protocol 1 boards. */
  readonly key?: AttestKeyRole;
}

/** Key injection, first half: the board's ephemeral ECDH transport key (SPKI DER). */
export interface TransportKey {
  readonly curve: Curve;
  readonly publicKeySpki: Uint8Array;
}

/** Key injection, second half: what the HSM produced for the board. */
export interface WrappedDeviceKey {
  readonly curve: Curve;
  /** Station's ephemeral ECDH public key (SPKI DER); the board derives the KEK from it and its transport key. */
  readonly ephemeralPublicKeySpki: Uint8Array;
  /** The device private key (PKCS#8) wrapped with AES key wrap with padding (RFC 5649) under the ECDH-derived KEK. */
  readonly wrappedKey: Uint8Array;
  /** Public key of the wrapped device key (SPKI DER), to cross-check the board's CSR. */
  readonly publicKeySpki: Uint8Array;
}

export interface GeneratedKey {
  readonly publicKeySpki: Uint8Array;
  /** PKCS#10 CSR (DER) signed by the new key: proof of possession. */
  readonly csr: Uint8Array;
}

/**
 * A board speaking the Line Station wire protocol (docs/protocol.md). Every response has been
 * parsed and schema-validated; anything else is a PROTOCOL_* or BOARD_* error.
 */
export interface BoardClient {
  readonly path: string;
  /** Negotiated protocol version (after `hello`). */
  readonly protocolVersion: number;
  identify(opts?: CallOptions): Promise<Result<BoardIdentity>>;
  /** Answer a fresh 32-byte challenge (protocol 2: a statement binding `opts.key`, docs/protocol.md). */
  attest(nonce: Uint8Array, opts?: AttestOptions): Promise<Result<AttestationEvidence>>;
  /** Generate the device key pair on the board; `subject` is a hint for the CSR subject. */
  generateKey(params: { curve: Curve; subject: string }, opts?: CallOptions): Promise<Result<GeneratedKey>>;
  beginKeyInjection(params: { curve: Curve }, opts?: CallOptions): Promise<Result<TransportKey>>;
  /** The board unwraps and installs the key, then returns a CSR signed by it. */
  injectWrappedKey(key: WrappedDeviceKey & { subject: string }, opts?: CallOptions): Promise<Result<GeneratedKey>>;
  /** Install the device certificate chain (DER, leaf first); returns SHA-256 (hex) of the leaf as stored. */
  installCertificate(chain: readonly Uint8Array[], opts?: CallOptions): Promise<Result<{ certificateSha256: string }>>;
  readMeasurements(opts?: CallOptions): Promise<Result<Measurements>>;
  lock(opts?: CallOptions): Promise<Result<{ locked: true }>>;
  /** Erase the board's device identity (key and certificate). `chipId` must match, as a guard. */
  zeroize(chipId: string, opts?: CallOptions): Promise<Result<{ zeroized: true }>>;
  /**
   * Relay one raw TPM 2.0 command (header + parameters, 10..4096 bytes) to the board's TPM and return its raw
   * response bytes, unmodified (protocol 3 `tpm`, docs/protocol.md §3.3). Not one TPM command: INPUT_INVALID; a
   * board without a TPM (or a protocol 1/2 session): BOARD_UNSUPPORTED. The TPM's own response code is in the bytes.
   */
  tpmTransmit(command: Uint8Array, opts?: CallOptions): Promise<Result<Uint8Array>>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- HSM

export type SignatureAlgorithm = 'ES256' | 'ES384';

/** A private key that lives in the HSM (or on another device) and can only be asked to sign. */
export interface Signer {
  readonly algorithm: SignatureAlgorithm;
  readonly curve: Curve;
  /** SPKI DER of the public half. */
  readonly publicKeySpki: Uint8Array;
  /** Hash (SHA-256 for ES256, SHA-384 for ES384) and sign; returns raw r||s (IEEE P1363), as WebCrypto and JWS use. */
  sign(data: Uint8Array): Promise<Result<Uint8Array>>;
}

export interface HsmKeyInfo {
  readonly label: string;
  readonly id: string; // hex CKA_ID
  readonly class: 'private' | 'public' | 'secret' | 'certificate';
  readonly keyType?: string;
  readonly sensitive?: boolean;
  readonly extractable?: boolean;
  /** Private keys: CKA_ALWAYS_SENSITIVE / CKA_NEVER_EXTRACTABLE as the token reports them (absent: not reported). */
  readonly alwaysSensitive?: boolean;
  readonly neverExtractable?: boolean;
  /**
   * Private keys: the protection attributes the key lacks (empty when it is sensitive, not extractable, always
   * sensitive and never extractable), e.g. `CKA_EXTRACTABLE true` for a key generated wrappable. docs/hsm.md.
   */
  readonly unprotected?: readonly string[];
}

export interface HsmInfo {
  readonly module: string;
  readonly slotId: string;
  readonly tokenLabel: string;
  readonly tokenSerial: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly loggedIn: boolean;
  readonly keys: readonly HsmKeyInfo[];
}

export interface Hsm {
  info(): Promise<Result<HsmInfo>>;
  /** A signer for the private key with this label (CKA_LABEL). */
  signer(label: string): Promise<Result<Signer>>;
  /** Certificate object (DER) with this label, if the token stores one. */
  certificate(label: string): Promise<Result<Uint8Array | null>>;
  /**
   * Key injection: generate a device key pair inside the token (session object, sensitive,
   * extractable only by wrapping), derive a KEK by ECDH with the board's transport key, wrap the
   * private key with AES-KWP and destroy it. The plaintext private key never exists outside the token.
   */
  generateWrappedDeviceKey(transport: TransportKey): Promise<Result<WrappedDeviceKey>>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- detection

export interface UsbDescriptor {
  readonly vendorId: number;
  readonly productId: number;
  readonly serialNumber?: string;
  readonly manufacturer?: string;
  readonly product?: string;
  readonly busNumber?: number;
  readonly deviceAddress?: number;
}

export interface DetectedPort {
  /** Device path, e.g. /dev/ttyACM0 or a pty link. */
  readonly path: string;
  readonly source: 'serial' | 'configured' | 'usb';
  readonly usb?: UsbDescriptor;
}

export type DiscoveryEvent =
  | { readonly type: 'attached'; readonly port: DetectedPort }
  | { readonly type: 'detached'; readonly port: DetectedPort }
  | {
      readonly type: 'problem';
      readonly path: string;
      readonly code: 'ACCESS_DENIED' | 'ENUMERATION_FAILED';
      readonly message: string;
    };

export interface DeviceDiscovery {
  list(): Promise<readonly DetectedPort[]>;
  /** Watch for attach/detach; returns a stop function. */
  watch(cb: (event: DiscoveryEvent) => void): () => void;
}
