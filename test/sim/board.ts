/**
 * The simulated board "firmware": identity, factory attestation, on-board key generation or wrapped key
 * injection, certificate storage, measurements, lock and zeroize. It works on decoded request bodies
 * (CBOR maps) and returns response bodies; framing, replay and transport live in session.ts.
 *
 * Private keys (attestation key, device key, transport key) never leave this object except into the
 * board's own persistent storage (the state file, standing in for the board's flash).
 */
import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign as nodeSign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  simMeasurements,
  tamperedApplicationDigest,
  SIM_FIRMWARE_VERSION,
  SIM_HARDWARE_REVISION,
  type SimModel,
  type SimTpmModel,
} from './baseline.js';
import { makeCsr } from './csr.js';
import { replaceFile } from './fsutil.js';
import type { TpmCommandName } from './tpm-wire.js';
import { fromPem, issueAttestationCert, toPem, type VendorPki } from './pki.js';

export { makeCsr } from './csr.js';

export const SIM_OPS = [
  'hello',
  'identify',
  'attest',
  'keygen',
  'injectBegin',
  'injectKey',
  'installCert',
  'measure',
  'lock',
  'zeroize',
  'tpm',
] as const;
export type SimOp = (typeof SIM_OPS)[number];

export type BoardErrorCode =
  'BAD_REQUEST' | 'BUSY' | 'LOCKED' | 'NO_KEY' | 'CERT_REFUSED' | 'UNSUPPORTED' | 'INTERNAL' | 'VERSION';

/** A response body: the op's result map, or `{ error: { code, message } }`. */
export type SimResponse = Record<string, unknown>;

/** Per-board fault injection switches (all off by default). */
export interface Faults {
  /** Probability (0..1) that each outgoing byte chunk is dropped. */
  dropBytes?: number;
  /** Probability (0..1) that each byte of an outgoing frame (header, payload, CRC) has a bit flipped. */
  corruptBytes?: number;
  /** Unplug in the middle of this op (after executing it, before answering); fires once. */
  disconnectOn?: SimOp;
  /** If set with disconnectOn, plug the board back in after this many ms. */
  replugAfterMs?: number;
  /** Sign attestation challenges with a key that does not match the attestation certificate. */
  badAttestation?: boolean;
  /**
   * Rogue board: answer `keygen` / `injectBegin` with a fresh key it does not hold (its own key stays, and the
   * protocol 2 statement binds that one).
   */
  foreignKey?: 'keygen' | 'injectBegin';
  /** Rogue board: generate the device key on this curve whatever `keygen` asked for (e.g. P-384 for P-256). */
  keygenCurve?: SimCurve;
  /** Rogue board: answer every `attest` with the first answer it ever gave (old nonce). */
  replayAttestation?: boolean;
  /**
   * Rogue board: run the tampered application image but report the release digest in `measure`; the protocol 2
   * statement binds what it really runs.
   */
  hideFirmware?: boolean;
  /** Report an application image digest that differs from the release. */
  badFirmware?: boolean;
  /** Report the debug port as unlocked. */
  debugUnlocked?: boolean;
  /** Refuse every certificate (installCert -> CERT_REFUSED). */
  refuseCert?: boolean;
  /** Refuse to erase (zeroize -> UNSUPPORTED) before changing anything: the board keeps its identity. */
  refuseZeroize?: boolean;
  /**
   * Accept a certificate (installCert answers its hash) but do not keep it: the read-back (identify) shows the
   * previous certificate, so the station fails the run with CERT_INSTALL_MISMATCH after the certificate was issued.
   */
  forgetCert?: boolean;
  /** Send a stale response with a wrong request id before the real one. */
  stale?: boolean;
  /**
   * A rogue board: identify (and hello's board text) answer with these strings instead of the board's own, sent
   * as they are (control characters, ANSI escapes, bidi overrides included).
   */
  identity?: {
    serialNumber?: string;
    model?: string;
    hardwareRevision?: string;
    firmwareVersion?: string;
  };
  // ---- TPM boards only (tpm-board.ts; test/sim/README.md "TPM boards"). The first four act from the next power-on.
  /** tpm-untrusted-ek: the board's TPM was manufactured by a second vendor CA the station does not trust. */
  tpmUntrustedEk?: boolean;
  /** tpm-other-tpm: every TPM command except reads of the EK certificate NV indices goes to a second TPM. */
  tpmOtherTpm?: boolean;
  /** tpm-pcr-mismatch: the boot ROM measures a tampered application image into PCR 4. */
  tpmPcrMismatch?: boolean;
  /** tpm-lockout: the TPM is in dictionary-attack lockout at boot (max tries 1, then one failed authorisation). */
  tpmLockout?: boolean;
  /** tpm-rogue-template: the relay clears fixedTPM and fixedParent in a TPM2_Create / CreateLoaded template. */
  tpmRogueTemplate?: boolean;
  /** tpm-stale-quote: the relay answers every TPM2_Quote with the first successful Quote response it relayed. */
  tpmStaleQuote?: boolean;
  /** tpm-disconnect-on=CC: the TPM runs this command, then the board is unplugged before answering; once. */
  tpmDisconnectOn?: TpmCommandName;
}

/** Simulated processing time in ms per op class. */
export interface Latency {
  keygen?: number;
  /** installCert, injectKey, lock ("writing flash"). */
  flash?: number;
  other?: number;
}

export type SimCurve = 'P-256' | 'P-384';

export interface BoardSnapshot {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: SimModel | SimTpmModel;
  readonly hasKey: boolean;
  /** SHA-256 (hex) of the installed leaf certificate, or null. */
  readonly certSha256: string | null;
  readonly locked: boolean;
}

/** The board's persistent storage (its "flash"), one JSON file per board. */
interface StoredBoard {
  format: 'ls-sim-board/v1';
  chipId: string;
  serialNumber: string;
  model: SimModel;
  attestation: { keyPem: string; certPem: string };
  deviceKey: { curve: SimCurve; keyPem: string } | null;
  chain: string[] | null;
  locked: boolean;
}

const NODE_CURVE: Record<SimCurve, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };
const KW_PAD_IV = Buffer.from('a65959a6', 'hex');
const ATTEST_PREFIX = Buffer.from('line-station/attest/v1\0', 'utf8');
const STATEMENT_PREFIX = Buffer.from('line-station/attest/v2\0', 'utf8');
const STATEMENT_ROLE = { device: 0x01, transport: 0x02 } as const;

/** The legacy (protocol 1) message a board signs for an attestation challenge (same formula the station verifies). */
export function attestationMessage(nonce: Uint8Array, chipId: string): Uint8Array {
  return new Uint8Array(Buffer.concat([ATTEST_PREFIX, Buffer.from(nonce), Buffer.from(chipId, 'utf8')]));
}

/**
 * The protocol 2 statement, written from docs/formats.md "Attestation statement" (an implementation independent of
 * core/pki/attestation.ts): prefix || role || nonce || u8 len || chipId || u16be len || key SPKI || measurements SHA-256.
 */
export function attestationStatement(
  role: keyof typeof STATEMENT_ROLE,
  nonce: Uint8Array,
  chipId: string,
  keySpki: Uint8Array,
  measurementsSha256: Uint8Array,
): Uint8Array {
  const chip = Buffer.from(chipId, 'utf8');
  const keyLen = Buffer.alloc(2);
  keyLen.writeUInt16BE(keySpki.length);
  return new Uint8Array(
    Buffer.concat([
      STATEMENT_PREFIX,
      Buffer.of(STATEMENT_ROLE[role]),
      Buffer.from(nonce),
      Buffer.of(chip.length),
      chip,
      keyLen,
      Buffer.from(keySpki),
      Buffer.from(measurementsSha256),
    ]),
  );
}

/** A measure response body as the board sends it (digests as bytes). */
interface MeasureBody {
  firmware: { name: string; version: string; sha256: Uint8Array }[];
  secureBoot: boolean;
  debugLocked: boolean;
  fuseDigest: Uint8Array;
  configDigest: Uint8Array;
}

/**
 * SHA-256 of the measurements as docs/formats.md defines it: the canonical JSON (keys sorted, no whitespace, digests
 * as lower-case hex) of what `measure` reports. Written out by hand, as firmware would.
 */
export function measurementsSha256(m: MeasureBody): Uint8Array {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const fw = m.firmware
    .map((f) => `{"name":${JSON.stringify(f.name)},"sha256":"${hex(f.sha256)}","version":${JSON.stringify(f.version)}}`)
    .join(',');
  const json =
    `{"configDigest":"${hex(m.configDigest)}","debugLocked":${m.debugLocked},"firmware":[${fw}],` +
    `"fuseDigest":"${hex(m.fuseDigest)}","secureBoot":${m.secureBoot}}`;
  return sha256(Buffer.from(json, 'utf8'));
}

/** An error response body. */
export function boardError(code: BoardErrorCode, message: string): SimResponse {
  return { error: { code, message } };
}

/** The highest protocol version in a `hello` request's `versions` that the firmware speaks, or an error body. */
export function chooseVersion(body: Record<string, unknown>, versions: readonly number[]): number | SimResponse {
  const v = body['versions'];
  if (!Array.isArray(v) || v.length === 0 || v.length > 16 || !v.every((x) => Number.isInteger(x)))
    return boardError('BAD_REQUEST', 'versions must be a non-empty list of integers');
  const common = (v as number[]).filter((x) => versions.includes(x));
  if (common.length === 0)
    return boardError('VERSION', `no common protocol version (board speaks ${versions.join(',')})`);
  return Math.max(...common);
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && !isBytes(x);
const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ type: 'spki', format: 'der' }));

function curveOfKey(k: KeyObject): SimCurve | null {
  const c = k.asymmetricKeyDetails?.namedCurve;
  if (k.asymmetricKeyType !== 'ec') return null;
  if (c === 'prime256v1') return 'P-256';
  if (c === 'secp384r1') return 'P-384';
  return null;
}

function parseSubject(x: unknown): string | null {
  // eslint-disable-next-line no-control-regex
  return typeof x === 'string' && x.length >= 1 && x.length <= 256 && !/[\u0000-\u001f\u007f]/.test(x) ? x : null;
}

/** Serial number `LS` + 8 upper-case hex chars. */
function newSerial(): string {
  return 'LS' + randomBytes(4).toString('hex').toUpperCase();
}

export interface SimBoardOptions {
  /** The board's storage file; loaded if it exists, created otherwise. */
  readonly stateFile: string;
  /** Model of a new board (an existing state file keeps its model). */
  readonly model: SimModel;
  readonly pki: VendorPki;
  /** Protocol versions this firmware speaks. */
  readonly versions?: readonly number[];
  /** Largest frame the board accepts (reported in hello). */
  readonly maxFrame?: number;
  readonly faults?: Faults;
  readonly latency?: Latency;
  readonly log?: (line: string) => void;
}

export class SimBoard {
  faults: Faults;
  latency: Latency;
  private transportKey: KeyObject | null = null;
  /** Protocol version of the current session (set by hello; 1 until then). */
  private sessionVersion = 1;
  /** The first attest answer this board gave (replayAttestation fault). */
  private firstAttestation: SimResponse | null = null;
  /** Increases at every power loss (unplug): work started in an earlier power cycle never completes. */
  private powerEpoch = 0;
  private readonly versions: readonly number[];
  private readonly maxFrame: number;
  private readonly log: (line: string) => void;
  /** The vendor root, programmed at the factory next to the attestation certificate. */
  private readonly vendorRootDer: Uint8Array;
  /**
   * What the firmware keeps decoded in RAM (parsed once, not per request): the attestation key and certificate, the
   * device key with its public key, the installed leaf's hash. Each is keyed by the stored value it was decoded from.
   */
  private readonly attestationKey: KeyObject;
  private readonly attestationCertDer: Uint8Array;
  private device: { pem: string; key: KeyObject; spki: Uint8Array } | null = null;
  private leaf: { pem: string; sha256: string } | null = null;
  /** The public half of the transport key (injectBegin), while it is held. */
  private transportSpki: Uint8Array | null = null;
  /** Writes of the state file, in order (each starts after the one before). */
  private persisting: Promise<void> = Promise.resolve();

  private constructor(
    private readonly stateFile: string,
    private s: StoredBoard,
    opts: SimBoardOptions,
  ) {
    this.faults = { ...(opts.faults ?? {}) };
    this.latency = { ...(opts.latency ?? {}) };
    this.versions = opts.versions ?? [1, 2];
    this.maxFrame = opts.maxFrame ?? 16384;
    this.log = opts.log ?? (() => {});
    this.vendorRootDer = new Uint8Array(opts.pki.rootCert.rawData);
    this.attestationKey = createPrivateKey(s.attestation.keyPem);
    this.attestationCertDer = fromPem(s.attestation.certPem, 'CERTIFICATE');
  }

  /** Load the board from its state file, or manufacture a new one (new chip id, attestation key and certificate). */
  static async open(opts: SimBoardOptions): Promise<SimBoard> {
    if (existsSync(opts.stateFile)) {
      let s: StoredBoard;
      try {
        s = JSON.parse(readFileSync(opts.stateFile, 'utf8')) as StoredBoard;
      } catch (e) {
        throw new Error(`${opts.stateFile}: unreadable board state (${(e as Error).message})`);
      }
      if (s?.format !== 'ls-sim-board/v1') throw new Error(`${opts.stateFile}: unknown board state format`);
      return new SimBoard(opts.stateFile, s, opts);
    }
    const chipId = randomBytes(16).toString('hex');
    const att = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const certDer = await issueAttestationCert(opts.pki, chipId, spkiOf(att.publicKey));
    const s: StoredBoard = {
      format: 'ls-sim-board/v1',
      chipId,
      serialNumber: newSerial(),
      model: opts.model,
      attestation: {
        keyPem: att.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        certPem: toPem(certDer, 'CERTIFICATE'),
      },
      deviceKey: null,
      chain: null,
      locked: false,
    };
    const b = new SimBoard(opts.stateFile, s, opts);
    await b.persist();
    return b;
  }

  get chipId(): string {
    return this.s.chipId;
  }
  get serialNumber(): string {
    return this.s.serialNumber;
  }
  get model(): SimModel {
    return this.s.model;
  }
  get onboardKeygen(): boolean {
    return this.s.model === 'LS-SIM-SE';
  }
  get keyInjection(): boolean {
    return this.s.model === 'LS-SIM-BASIC';
  }
  get curves(): SimCurve[] {
    return this.s.model === 'LS-SIM-SE' ? ['P-256', 'P-384'] : ['P-256'];
  }

  /** Read-only view of the identity state. */
  snapshot(): BoardSnapshot {
    return {
      chipId: this.s.chipId,
      serialNumber: this.s.serialNumber,
      model: this.s.model,
      hasKey: this.s.deviceKey !== null,
      certSha256: this.leafSha256(),
      locked: this.s.locked,
    };
  }

  /** SHA-256 (hex) of the stored leaf certificate, or null. */
  private leafSha256(): string | null {
    const pem = this.s.chain?.[0];
    if (!pem) return null;
    if (this.leaf?.pem !== pem)
      this.leaf = { pem, sha256: Buffer.from(sha256(fromPem(pem, 'CERTIFICATE'))).toString('hex') };
    return this.leaf.sha256;
  }

  /** The stored device key, decoded (null without one). */
  private deviceKey(): { key: KeyObject; spki: Uint8Array } | null {
    const pem = this.s.deviceKey?.keyPem;
    if (pem === undefined) return null;
    if (this.device?.pem !== pem) {
      const key = createPrivateKey(pem);
      this.device = { pem, key, spki: spkiOf(createPublicKey(key)) };
    }
    return this.device;
  }

  /** Store a new device key (its PEM is what the state file keeps); an installed certificate no longer matches it. */
  private setDeviceKey(curve: SimCurve, key: KeyObject, spki: Uint8Array): void {
    const pem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.s.deviceKey = { curve, keyPem: pem };
    this.device = { pem, key, spki };
    this.s.chain = null;
  }

  /** The current power cycle (see powerOff). */
  get epoch(): number {
    return this.powerEpoch;
  }

  /**
   * Power loss (the cable is pulled): volatile state is gone (a key injection in progress) and a request still
   * in its processing time is abandoned, as on a real board. Persistent state (keys, certificates) stays.
   */
  powerOff(): void {
    this.powerEpoch++;
    this.transportKey = null;
    this.transportSpki = null;
    this.sessionVersion = 1;
  }

  /** After executing `op`: unplug now instead of answering (the disconnectOn fault; fires once). */
  takeDisconnect(op: SimOp): boolean {
    if (this.faults.disconnectOn !== op) return false;
    this.faults = { ...this.faults, disconnectOn: undefined };
    return true;
  }

  /** Simulated processing time of `op`. */
  latencyOf(op: SimOp): number {
    if (op === 'keygen') return this.latency.keygen ?? 0;
    if (op === 'installCert' || op === 'injectKey' || op === 'lock') return this.latency.flash ?? 0;
    return this.latency.other ?? 0;
  }

  /** Execute one request; never throws (an unexpected failure becomes an INTERNAL error response). */
  async handle(op: string, body: unknown): Promise<SimResponse> {
    if (!isRecord(body)) return boardError('BAD_REQUEST', 'request body must be a map');
    try {
      switch (op) {
        case 'hello':
          return this.hello(body);
        case 'identify':
          return this.identify();
        case 'attest':
          return this.attest(body);
        case 'keygen':
          return await this.keygen(body);
        case 'injectBegin':
          return this.injectBegin(body);
        case 'injectKey':
          return await this.injectKey(body);
        case 'installCert':
          return await this.installCert(body);
        case 'measure':
          return this.measure();
        case 'lock':
          return await this.lock();
        case 'zeroize':
          return await this.zeroize(body);
        case 'tpm':
          return boardError('UNSUPPORTED', 'this board has no TPM');
        default:
          return boardError('UNSUPPORTED', `unknown operation ${JSON.stringify(op)}`);
      }
    } catch (e) {
      this.log(`board ${this.s.serialNumber}: internal error in ${op}: ${(e as Error).message}`);
      return boardError('INTERNAL', `${op} failed inside the board`);
    }
  }

  /**
   * Write the state file (the board's flash) as it is now, atomically (a crash or kill of the simulator leaves the old
   * or the new state); the request that changed the state answers once it is written. Off the event loop, and not
   * fsynced (fsutil.ts `replaceFile`): the simulated flash need not survive a power cut of the machine, and a
   * simulator playing many boards would otherwise hold every board up behind each other's writes, and load the disk
   * the station commits to (docs/benchmarks.md "Scaling and station CPU").
   */
  private persist(): Promise<void> {
    const data = JSON.stringify(this.s, null, 2) + '\n';
    const write = this.persisting.catch(() => undefined).then(() => replaceFile(this.stateFile, data, 0o600));
    this.persisting = write;
    return write;
  }

  private hello(body: Record<string, unknown>): SimResponse {
    const v = chooseVersion(body, this.versions);
    if (typeof v !== 'number') return v;
    this.sessionVersion = v;
    return {
      version: this.sessionVersion,
      maxFrame: this.maxFrame,
      board: `${this.faults.identity?.model ?? this.s.model} fw ${SIM_FIRMWARE_VERSION}`,
    };
  }

  private identify(): SimResponse {
    const snap = this.snapshot();
    const rogue = this.faults.identity ?? {};
    return {
      chipId: this.s.chipId,
      serialNumber: rogue.serialNumber ?? this.s.serialNumber,
      model: rogue.model ?? this.s.model,
      hardwareRevision: rogue.hardwareRevision ?? SIM_HARDWARE_REVISION,
      firmwareVersion: rogue.firmwareVersion ?? SIM_FIRMWARE_VERSION,
      capabilities: { onboardKeygen: this.onboardKeygen, keyInjection: this.keyInjection, curves: this.curves },
      state: {
        hasKey: snap.hasKey,
        certSha256: snap.certSha256 ? new Uint8Array(Buffer.from(snap.certSha256, 'hex')) : null,
        locked: snap.locked,
      },
    };
  }

  private attest(body: Record<string, unknown>): SimResponse {
    const nonce = body['nonce'];
    if (!isBytes(nonce) || nonce.length !== 32) return boardError('BAD_REQUEST', 'nonce must be 32 bytes');
    if (this.faults.replayAttestation && this.firstAttestation) return this.firstAttestation;
    const key = this.faults.badAttestation
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
      : this.attestationKey;
    const chain = [this.attestationCertDer, this.vendorRootDer];
    let answer: SimResponse;
    if (this.sessionVersion < 2) {
      const signature = nodeSign('sha256', attestationMessage(nonce, this.s.chipId), key); // DER by default
      answer = { signature: new Uint8Array(signature), chain };
    } else {
      // Protocol 2: bind the key the board itself holds in the role asked for, and what it really runs.
      const role = body['key'];
      if (role !== 'device' && role !== 'transport')
        return boardError('BAD_REQUEST', 'key must be "device" or "transport"');
      let bound: Uint8Array;
      if (role === 'device') {
        const device = this.deviceKey();
        if (!device) return boardError('NO_KEY', 'no device key to attest');
        bound = device.spki;
      } else {
        if (!this.transportKey || !this.transportSpki) return boardError('NO_KEY', 'no key injection in progress');
        bound = this.transportSpki;
      }
      const statement = attestationStatement(
        role,
        nonce,
        this.s.chipId,
        bound,
        measurementsSha256(this.actualMeasurements()),
      );
      answer = { statement, signature: new Uint8Array(nodeSign('sha256', statement, key)), chain };
    }
    this.firstAttestation ??= answer;
    return answer;
  }

  private checkCurve(x: unknown): SimCurve | SimResponse {
    if (x !== 'P-256' && x !== 'P-384') return boardError('BAD_REQUEST', 'curve must be "P-256" or "P-384"');
    if (!this.curves.includes(x)) return boardError('UNSUPPORTED', `this board does not support ${x}`);
    return x;
  }

  private async keygen(body: Record<string, unknown>): Promise<SimResponse> {
    const subject = parseSubject(body['subject']);
    if (subject === null) return boardError('BAD_REQUEST', 'subject must be 1..256 printable characters');
    if (!this.onboardKeygen) return boardError('UNSUPPORTED', 'this board has no on-board key generation');
    const curve = this.checkCurve(body['curve']);
    if (typeof curve !== 'string') return curve;
    if (this.s.locked) return boardError('LOCKED', 'identity is locked');
    const actual = this.faults.keygenCurve ?? curve;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: NODE_CURVE[actual] });
    const spki = spkiOf(publicKey);
    const csr = await makeCsr(privateKey, actual, subject);
    // A new key replaces any pending key; an installed certificate no longer matches it.
    this.setDeviceKey(actual, privateKey, spki);
    await this.persist();
    if (this.faults.foreignKey === 'keygen') {
      const other = generateKeyPairSync('ec', { namedCurve: NODE_CURVE[actual] });
      return { publicKey: spkiOf(other.publicKey), csr: await makeCsr(other.privateKey, actual, subject) };
    }
    return { publicKey: spki, csr };
  }

  private injectBegin(body: Record<string, unknown>): SimResponse {
    if (!this.keyInjection) return boardError('UNSUPPORTED', 'this board does not accept injected keys');
    const curve = this.checkCurve(body['curve']);
    if (typeof curve !== 'string') return curve;
    if (this.s.locked) return boardError('LOCKED', 'identity is locked');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.transportKey = privateKey;
    this.transportSpki = spkiOf(publicKey);
    if (this.faults.foreignKey === 'injectBegin')
      return { transportKey: spkiOf(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey) };
    return { transportKey: this.transportSpki };
  }

  private async injectKey(body: Record<string, unknown>): Promise<SimResponse> {
    const { ephemeralKey, wrappedKey, publicKey } = body;
    const subject = parseSubject(body['subject']);
    if (!isBytes(ephemeralKey) || !isBytes(wrappedKey) || !isBytes(publicKey) || subject === null)
      return boardError('BAD_REQUEST', 'injectKey needs ephemeralKey, wrappedKey, publicKey (bytes) and subject');
    if (!this.keyInjection) return boardError('UNSUPPORTED', 'this board does not accept injected keys');
    const curve = this.checkCurve(body['curve']);
    if (typeof curve !== 'string') return curve;
    if (this.s.locked) return boardError('LOCKED', 'identity is locked');
    const transport = this.transportKey;
    this.transportKey = null; // one use only, whatever the outcome
    this.transportSpki = null;
    if (!transport) return boardError('BAD_REQUEST', 'no key injection in progress (send injectBegin first)');
    let device: KeyObject;
    try {
      const peer = createPublicKey({ key: Buffer.from(ephemeralKey), format: 'der', type: 'spki' });
      if (curveOfKey(peer) !== 'P-256') return boardError('BAD_REQUEST', 'ephemeralKey must be a P-256 public key');
      const kek = diffieHellman({ privateKey: transport, publicKey: peer }); // x-coordinate, 32 bytes (CKD_NULL)
      const d = createDecipheriv('id-aes256-wrap-pad', kek, KW_PAD_IV);
      const pkcs8 = Buffer.concat([d.update(wrappedKey), d.final()]);
      device = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    } catch {
      return boardError('BAD_REQUEST', 'could not unwrap the device key');
    }
    if (curveOfKey(device) !== curve) return boardError('BAD_REQUEST', `unwrapped key is not a ${curve} key`);
    const derivedPub = spkiOf(createPublicKey(device));
    if (!Buffer.from(derivedPub).equals(Buffer.from(publicKey)))
      return boardError('BAD_REQUEST', 'unwrapped key does not match publicKey');
    const csr = await makeCsr(device, curve, subject);
    this.setDeviceKey(curve, device, derivedPub);
    await this.persist();
    return { publicKey: derivedPub, csr };
  }

  private async installCert(body: Record<string, unknown>): Promise<SimResponse> {
    const chain = body['chain'];
    if (!Array.isArray(chain) || chain.length < 1 || chain.length > 8 || !chain.every(isBytes))
      return boardError('BAD_REQUEST', 'chain must be a list of 1..8 DER certificates');
    if (this.s.locked) return boardError('LOCKED', 'identity is locked');
    const device = this.deviceKey();
    if (!device) return boardError('NO_KEY', 'no device key to certify');
    if (this.faults.refuseCert) return boardError('CERT_REFUSED', 'certificate refused by board policy');
    const leafDer = chain[0] as Uint8Array;
    let leafSpki: Uint8Array;
    try {
      // node:crypto (OpenSSL) parses each certificate; the leaf's key must be the device key.
      leafSpki = spkiOf(new X509Certificate(leafDer).publicKey);
      for (const c of chain.slice(1)) new X509Certificate(c as Uint8Array);
    } catch {
      return boardError('CERT_REFUSED', 'certificate chain does not parse');
    }
    if (!Buffer.from(device.spki).equals(Buffer.from(leafSpki)))
      return boardError('CERT_REFUSED', "the certificate's public key is not this board's device key");
    if (this.faults.forgetCert) return { certSha256: sha256(leafDer) };
    this.s.chain = (chain as Uint8Array[]).map((c) => toPem(c, 'CERTIFICATE'));
    await this.persist();
    return { certSha256: sha256(leafDer) };
  }

  /** What the board really runs (the badFirmware and hideFirmware faults run the tampered application). */
  private actualMeasurements(): MeasureBody {
    const m = simMeasurements(this.s.model);
    const tampered = this.faults.badFirmware === true || this.faults.hideFirmware === true;
    return {
      firmware: m.firmware.map((f) => ({
        name: f.name,
        version: f.version,
        sha256: f.name === 'application' && tampered ? tamperedApplicationDigest(this.s.model) : f.sha256,
      })),
      secureBoot: true,
      debugLocked: !this.faults.debugUnlocked,
      fuseDigest: m.fuseDigest,
      configDigest: m.configDigest,
    };
  }

  private measure(): SimResponse {
    const m = this.actualMeasurements();
    if (!this.faults.hideFirmware) return { ...m };
    // The lie: the release digest of the application image.
    const release = simMeasurements(this.s.model).firmware;
    return { ...m, firmware: m.firmware.map((f, i) => ({ ...f, sha256: release[i]!.sha256 })) };
  }

  private async lock(): Promise<SimResponse> {
    if (!this.s.locked) {
      this.s.locked = true;
      await this.persist();
    }
    return { locked: true };
  }

  private async zeroize(body: Record<string, unknown>): Promise<SimResponse> {
    const chipId = body['chipId'];
    if (typeof chipId !== 'string') return boardError('BAD_REQUEST', 'chipId must be text');
    if (chipId.toLowerCase() !== this.s.chipId) return boardError('BAD_REQUEST', 'chipId does not match this board');
    if (this.faults.refuseZeroize) return boardError('UNSUPPORTED', 'zeroize refused by board policy');
    this.s.deviceKey = null;
    this.s.chain = null;
    this.s.locked = false;
    this.transportKey = null;
    this.transportSpki = null;
    await this.persist();
    return { zeroized: true };
  }
}
