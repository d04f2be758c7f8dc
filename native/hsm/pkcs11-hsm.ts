/**
 * PKCS#11 adapter (pkcs11js) implementing the `Hsm` port, plus the admin functions `station init` needs.
 * This module is the only place in the code base that imports pkcs11js.
 *
 * Design notes (see docs/hsm.md):
 * - One PKCS11 instance per module path per process, reference counted; C_Finalize only if we initialised.
 * - A main R/W session for object management and key injection (synchronous calls: atomic per JS tick),
 *   and a small pool of extra sessions for signing with C_SignAsync (concurrent signers never share a session).
 * - Session loss (CKR_SESSION_HANDLE_INVALID / _CLOSED / USER_NOT_LOGGED_IN): re-open and re-login once.
 * - The PIN is kept in memory only for that re-login and dropped on close(); it is never logged.
 */
import pkcs11js from 'pkcs11js';
import type { ECDH1 } from 'pkcs11js';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Curve } from '../../core/model.js';
import type { HsmInfo, HsmKeyInfo, Logger, Signer, TransportKey, WrappedDeviceKey, Hsm } from '../../core/ports.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { toHex } from '../../core/bytes.js';
import { CURVES, certificateSubject, curveFromEcParams, decodeEcPoint, parseEcSpki, spkiFromPoint } from './ec.js';
import type { CurveSpec } from './ec.js';
import { HANDLE_STALE_CKR, SESSION_LOST_CKR, ckrOf, mapPkcs11Error } from './errors.js';

type PKCS11 = InstanceType<typeof pkcs11js.PKCS11>;
type Handle = Buffer;
type Template = { type: number; value?: number | boolean | string | Buffer }[];

const P = pkcs11js;
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

export interface HsmConfig {
  /** Path of the PKCS#11 module (.so). */
  readonly module: string;
  /** CKA token label (CK_TOKEN_INFO.label, trailing blanks ignored). */
  readonly tokenLabel: string;
  /** User PIN. Kept in memory for re-login after session loss; never logged. */
  readonly pin: string;
  readonly logger?: Logger;
  /** Number of extra sessions used for concurrent signing (default 4, 1..16). */
  readonly signSessions?: number;
}

/** The Hsm port plus the token administration used by `station init`. */
export interface HsmAdmin extends Hsm {
  /**
   * Generate a token-resident EC signing key pair (private: sensitive, not extractable, sign only).
   * Both halves get the same CKA_LABEL and a random CKA_ID. Refuses (INPUT_INVALID) if a key with the label exists.
   */
  generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>>;
  /** Store an X.509 certificate (DER) as a token object with this label (replaces a certificate with the same label). */
  importCertificate(label: string, der: Uint8Array): Promise<Result<{ id: string }>>;
  /** Attributes (never values) of the private key with this label, or null if there is none. */
  findKey(label: string): Promise<Result<HsmKeyInfo | null>>;
  /**
   * Station key rotation (station/rotate-key.ts): destroy the private and public key objects labelled `label`
   * (certificate objects are kept). Returns how many objects were destroyed (0: none had the label).
   */
  destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>>;
}

// ---------------------------------------------------------------- process-wide module registry

interface LoadedModule {
  readonly path: string;
  readonly lib: PKCS11;
  /** Did we call C_Initialize successfully (so we must C_Finalize)? */
  readonly initialisedByUs: boolean;
  users: number;
  /** Logged-in adapters per slot (decimal slot id): logout only when the last one closes. */
  readonly logins: Map<string, { count: number; pinDigest: Buffer }>;
}

const modules = new Map<string, LoadedModule>();

function acquireModule(path: string): Result<LoadedModule> {
  const existing = modules.get(path);
  if (existing) {
    existing.users++;
    return ok(existing);
  }
  let lib: PKCS11;
  try {
    lib = new P.PKCS11();
    lib.load(path);
  } catch (e) {
    const first = e instanceof Error ? (e.message.split('\n')[0] ?? '').slice(0, 200) : 'load failed';
    return fail('HSM_MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${path}: ${first}`, { module: path });
  }
  let initialisedByUs = true;
  try {
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (ckrOf(e) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      initialisedByUs = false;
    } else {
      try {
        lib.close();
      } catch {
        /* ignore */
      }
      const se = mapPkcs11Error(e, 'C_Initialize');
      return err({ ...se, details: { ...se.details, module: path } });
    }
  }
  const m: LoadedModule = { path, lib, initialisedByUs, users: 1, logins: new Map() };
  modules.set(path, m);
  return ok(m);
}

function releaseModule(m: LoadedModule): void {
  m.users--;
  if (m.users > 0) return;
  modules.delete(m.path);
  if (m.initialisedByUs) {
    try {
      m.lib.C_Finalize();
    } catch {
      /* ignore */
    }
    try {
      m.lib.close();
    } catch {
      /* ignore */
    }
  }
}

/** Keyed digest of a PIN (random per-process key) so that concurrent logins can be compared without a second copy. */
const PIN_DIGEST_KEY = randomBytes(32);
const pinDigest = (pin: string): Buffer => createHmac('sha256', PIN_DIGEST_KEY).update(pin, 'utf8').digest();

/** Number of modules currently loaded through openHsm (for tests and diagnostics). */
export function loadedModuleCount(): number {
  return modules.size;
}

// ---------------------------------------------------------------- attribute helpers

function ulong(b: Buffer): number {
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  if (b.length === 0) return 0;
  return b.readUIntLE(0, Math.min(b.length, 6));
}

function attr(lib: PKCS11, s: Handle, o: Handle, type: number): Buffer {
  const r = lib.C_GetAttributeValue(s, o, [{ type }]);
  const v = r[0]?.value;
  if (!v) throw new Error('C_GetAttributeValue returned no value');
  return v;
}

function tryAttr(lib: PKCS11, s: Handle, o: Handle, type: number): Buffer | undefined {
  try {
    return attr(lib, s, o, type);
  } catch {
    return undefined;
  }
}

function findAll(lib: PKCS11, s: Handle, template: Template, max = 1000): Handle[] {
  lib.C_FindObjectsInit(s, template);
  try {
    return lib.C_FindObjects(s, max);
  } finally {
    lib.C_FindObjectsFinal(s);
  }
}

const CLASS_NAMES: Record<number, HsmKeyInfo['class']> = {
  [P.CKO_PRIVATE_KEY]: 'private',
  [P.CKO_PUBLIC_KEY]: 'public',
  [P.CKO_SECRET_KEY]: 'secret',
  [P.CKO_CERTIFICATE]: 'certificate',
};

const KEY_TYPE_NAMES: Record<number, string> = {
  [P.CKK_EC]: 'EC',
  [P.CKK_RSA]: 'RSA',
  [P.CKK_AES]: 'AES',
  [P.CKK_GENERIC_SECRET]: 'GENERIC_SECRET',
};

function validLabel(label: string): boolean {
  return typeof label === 'string' && label.length > 0 && label.length <= 64 && /^[\x20-\x7e]+$/.test(label);
}

// ---------------------------------------------------------------- key protection

/**
 * Template of every signing private key (issuing CA, station, registry keys): sensitive and never extractable, so
 * no wrapping key -- one the user PIN holder creates included -- can ever take it out of the token (C_WrapKey:
 * CKR_KEY_UNEXTRACTABLE), CKA_VALUE is never readable, and PKCS#11 forbids turning either attribute back. Not
 * copyable, so C_CopyObject cannot make a twin with other attributes. CKA_WRAP_WITH_TRUSTED is not needed (and
 * would not help on SoftHSM2, where only the SO can mark a wrapping key trusted): a non-extractable key cannot be
 * wrapped by any key. See docs/hsm.md "Key attributes".
 */
const SIGNING_KEY_PROTECTION: Template = [
  { type: P.CKA_SENSITIVE, value: true },
  { type: P.CKA_EXTRACTABLE, value: false },
  { type: P.CKA_COPYABLE, value: false },
];

/**
 * Which protection attributes a private key lacks (empty: sensitive, not extractable, always sensitive, never
 * extractable). An attribute the token does not report counts as missing.
 */
function unprotectedAttributes(lib: PKCS11, s: Handle, h: Handle): string[] {
  const want: [number, string, boolean][] = [
    [P.CKA_SENSITIVE, 'CKA_SENSITIVE', true],
    [P.CKA_EXTRACTABLE, 'CKA_EXTRACTABLE', false],
    [P.CKA_ALWAYS_SENSITIVE, 'CKA_ALWAYS_SENSITIVE', true],
    [P.CKA_NEVER_EXTRACTABLE, 'CKA_NEVER_EXTRACTABLE', true],
  ];
  const weak: string[] = [];
  for (const [type, name, value] of want) {
    const v = tryAttr(lib, s, h, type);
    if (!v || v.length === 0 || (v[0] === 1) !== value) weak.push(`${name} ${v && v.length ? v[0] === 1 : 'unknown'}`);
  }
  return weak;
}

// ---------------------------------------------------------------- the adapter

class Pkcs11Hsm implements HsmAdmin {
  private pin: string | null;
  private session: Handle | null = null;
  private generation = 0;
  private closed = false;
  private readonly keyHandles = new Map<string, Handle>();
  /** Idle signing sessions (of the current generation). */
  private idle: { handle: Handle; generation: number }[] = [];
  private openSignSessions = 0;
  private readonly waiters: (() => void)[] = [];
  /** Signing sessions currently checked out (a worker thread may be inside C_Sign on them). */
  private busy = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly lib: PKCS11;
  private readonly slotKey: string;

  constructor(
    private readonly mod: LoadedModule,
    private readonly slot: Handle,
    pin: string,
    private readonly log: Logger | undefined,
    private readonly maxSignSessions: number,
  ) {
    this.lib = mod.lib;
    this.pin = pin;
    this.slotKey = String(ulong(slot));
  }

  // ------------------------------------------------------------ session management

  /** Open the main session and log in. Used on open and on recovery. */
  openMain(): Result<void> {
    let s: Handle;
    try {
      s = this.lib.C_OpenSession(this.slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
    } catch (e) {
      return err(mapPkcs11Error(e, 'C_OpenSession'));
    }
    const login = this.login(s);
    if (!login.ok) {
      try {
        this.lib.C_CloseSession(s);
      } catch {
        /* ignore */
      }
      return login;
    }
    this.session = s;
    return ok(undefined);
  }

  private login(s: Handle): Result<void> {
    if (this.pin === null) return fail('HSM_SESSION_LOST', 'HSM adapter is closed');
    const digest = pinDigest(this.pin);
    const reg = this.mod.logins.get(this.slotKey);
    try {
      this.lib.C_Login(s, P.CKU_USER, this.pin);
    } catch (e) {
      if (ckrOf(e) !== 'CKR_USER_ALREADY_LOGGED_IN') return err(mapPkcs11Error(e, 'C_Login'));
      // Someone in this process is logged in already: we cannot re-check the PIN with the token without
      // logging them out, so check it against the PIN of the adapter that logged in.
      if (reg && reg.count > 0 && !timingSafeEqual(reg.pinDigest, digest)) {
        return fail('HSM_PIN_INCORRECT', 'C_Login: the HSM rejected the user PIN (differs from the active login)', {
          op: 'C_Login',
        });
      }
    }
    return ok(undefined);
  }

  registerLogin(): void {
    const reg = this.mod.logins.get(this.slotKey);
    if (reg) reg.count++;
    else if (this.pin !== null) this.mod.logins.set(this.slotKey, { count: 1, pinDigest: pinDigest(this.pin) });
  }

  /** Re-open after session loss, unless another caller already did (generation changed). */
  private recover(seenGeneration: number, op: string): Result<void> {
    if (this.closed) return fail('HSM_SESSION_LOST', 'HSM adapter is closed');
    if (this.generation !== seenGeneration) return ok(undefined);
    this.log?.log('warn', 'HSM session lost; re-opening and logging in again', { op, slot: this.slotKey });
    this.generation++;
    this.keyHandles.clear();
    for (const h of [this.session, ...this.idle.map((i) => i.handle)]) {
      if (!h) continue;
      try {
        this.lib.C_CloseSession(h);
      } catch {
        /* already gone */
      }
    }
    // Sessions still checked out belong to the old generation: they are closed on release and not counted.
    this.openSignSessions = 0;
    this.idle = [];
    this.session = null;
    const r = this.openMain();
    if (!r.ok) {
      this.log?.log('error', 'HSM session recovery failed', { op, code: r.error.code });
      return err({ ...r.error, details: { ...r.error.details, recoveryOf: op } });
    }
    return r;
  }

  /**
   * Run a synchronous Cryptoki sequence on the main session, with one transparent recovery
   * (session lost -> re-open + re-login; stale object handle -> drop the handle cache).
   */
  private run<T>(op: string, fn: (s: Handle) => T): Result<T> {
    if (this.closed) return fail('HSM_SESSION_LOST', 'HSM adapter is closed', { op });
    for (let attempt = 0; ; attempt++) {
      const gen = this.generation;
      if (!this.session) {
        const r = this.recover(gen, op);
        if (!r.ok) return r;
      }
      try {
        return ok(fn(this.session!));
      } catch (e) {
        if (e instanceof StationErrorBox) return err(e.error);
        const ckr = ckrOf(e);
        if (attempt === 0 && ckr && SESSION_LOST_CKR.has(ckr)) {
          const r = this.recover(gen, op);
          if (!r.ok) return r;
          continue;
        }
        if (attempt === 0 && ckr && HANDLE_STALE_CKR.has(ckr)) {
          this.keyHandles.clear();
          continue;
        }
        return err(mapPkcs11Error(e, op));
      }
    }
  }

  private async acquireSignSession(): Promise<{ handle: Handle; generation: number }> {
    for (;;) {
      if (this.closed) throw new StationErrorBox(stationError('HSM_SESSION_LOST', 'HSM adapter is closed'));
      const idle = this.idle.pop();
      if (idle) {
        this.busy++;
        return idle;
      }
      if (this.openSignSessions < this.maxSignSessions) {
        this.openSignSessions++;
        try {
          // Sessions of one application share the login state: no C_Login needed here.
          const handle = this.lib.C_OpenSession(this.slot, P.CKF_SERIAL_SESSION);
          this.busy++;
          return { handle, generation: this.generation };
        } catch (e) {
          this.openSignSessions--;
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private releaseSignSession(s: { handle: Handle; generation: number }, broken: boolean): void {
    this.busy--;
    if (broken || s.generation !== this.generation || this.closed) {
      try {
        this.lib.C_CloseSession(s.handle);
      } catch {
        /* ignore */
      }
      if (s.generation === this.generation) this.openSignSessions--;
    } else {
      this.idle.push(s);
    }
    this.waiters.shift()?.();
    if (this.busy === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  // ------------------------------------------------------------ object lookup

  private findOne(s: Handle, cls: number, label: string): Handle | null {
    const found = findAll(this.lib, s, [
      { type: P.CKA_CLASS, value: cls },
      { type: P.CKA_LABEL, value: label },
    ]);
    if (found.length > 1) {
      throw new StationErrorBox(
        stationError('HSM_FAILED', `more than one object with label "${label}" on the token`, {
          label,
          count: found.length,
        }),
      );
    }
    return found[0] ?? null;
  }

  private privateKeyHandle(s: Handle, label: string): Handle {
    const cached = this.keyHandles.get(label);
    if (cached) return cached;
    const h = this.findOne(s, P.CKO_PRIVATE_KEY, label);
    if (!h)
      throw new StationErrorBox(
        stationError('HSM_KEY_NOT_FOUND', `no private key labelled "${label}" on the token`, { label }),
      );
    this.keyHandles.set(label, h);
    return h;
  }

  private keyInfo(s: Handle, h: Handle): HsmKeyInfo | null {
    const cls = CLASS_NAMES[ulong(attr(this.lib, s, h, P.CKA_CLASS))];
    if (!cls) return null;
    const label = tryAttr(this.lib, s, h, P.CKA_LABEL)?.toString('utf8') ?? '';
    const id = toHex(tryAttr(this.lib, s, h, P.CKA_ID) ?? Buffer.alloc(0));
    const info: { -readonly [K in keyof HsmKeyInfo]: HsmKeyInfo[K] } = { label, id, class: cls };
    if (cls !== 'certificate') {
      const kt = tryAttr(this.lib, s, h, P.CKA_KEY_TYPE);
      if (kt) info.keyType = KEY_TYPE_NAMES[ulong(kt)] ?? `0x${ulong(kt).toString(16)}`;
      if (info.keyType === 'EC') {
        const params = tryAttr(this.lib, s, h, P.CKA_EC_PARAMS);
        const spec = params ? curveFromEcParams(params) : null;
        if (spec) info.keyType = `EC ${spec.curve}`;
      }
    }
    if (cls === 'private' || cls === 'secret') {
      const sens = tryAttr(this.lib, s, h, P.CKA_SENSITIVE);
      const ext = tryAttr(this.lib, s, h, P.CKA_EXTRACTABLE);
      if (sens) info.sensitive = sens[0] === 1;
      if (ext) info.extractable = ext[0] === 1;
      if (cls === 'private') info.unprotected = unprotectedAttributes(this.lib, s, h);
    }
    return info;
  }

  /** Curve and SPKI of the key pair labelled `label` (reads the private key's EC params and the public key's point). */
  private keyMaterial(s: Handle, label: string): { spec: CurveSpec; spki: Uint8Array; handle: Handle } {
    const h = this.privateKeyHandle(s, label);
    const keyType = ulong(attr(this.lib, s, h, P.CKA_KEY_TYPE));
    if (keyType !== P.CKK_EC) {
      throw new StationErrorBox(
        stationError(
          'HSM_MECHANISM_UNSUPPORTED',
          `key "${label}" is not an EC key; only ECDSA P-256/P-384 is supported`,
          { label },
        ),
      );
    }
    const spec = curveFromEcParams(attr(this.lib, s, h, P.CKA_EC_PARAMS));
    if (!spec) {
      throw new StationErrorBox(
        stationError('HSM_MECHANISM_UNSUPPORTED', `key "${label}" is on an unsupported curve (P-256 and P-384 only)`, {
          label,
        }),
      );
    }
    const pub = this.findOne(s, P.CKO_PUBLIC_KEY, label);
    if (!pub) {
      throw new StationErrorBox(
        stationError('HSM_KEY_NOT_FOUND', `no public key labelled "${label}" next to the private key`, { label }),
      );
    }
    const point = decodeEcPoint(attr(this.lib, s, pub, P.CKA_EC_POINT), spec);
    if (!point)
      throw new StationErrorBox(
        stationError('HSM_FAILED', `public key "${label}" has a malformed CKA_EC_POINT`, { label }),
      );
    return { spec, spki: spkiFromPoint(point, spec), handle: h };
  }

  // ------------------------------------------------------------ Hsm port

  /** Token, slot and key inventory (attributes only, never key values). */
  async info(): Promise<Result<HsmInfo>> {
    return this.run('info', (s) => {
      const t = this.lib.C_GetTokenInfo(this.slot);
      const state = this.lib.C_GetSessionInfo(s).state;
      const keys: HsmKeyInfo[] = [];
      for (const h of findAll(this.lib, s, [{ type: P.CKA_TOKEN, value: true }])) {
        const k = this.keyInfo(s, h);
        if (k) keys.push(k);
      }
      keys.sort((a, b) => a.label.localeCompare(b.label) || a.class.localeCompare(b.class));
      return {
        module: this.mod.path,
        slotId: this.slotKey,
        tokenLabel: t.label.trim(),
        tokenSerial: t.serialNumber.trim(),
        manufacturer: t.manufacturerID.trim(),
        model: t.model.trim(),
        loggedIn: state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS,
        keys,
      };
    });
  }

  /** A Signer for the private key labelled `label` (ECDSA; data hashed in software, signed with CKM_ECDSA). */
  async signer(label: string): Promise<Result<Signer>> {
    const r = this.run('signer', (s) => this.keyMaterial(s, label));
    if (!r.ok) return r;
    const { spec, spki } = r.value;
    const sign = async (data: Uint8Array): Promise<Result<Uint8Array>> => {
      if (!(data instanceof Uint8Array)) return fail('INPUT_INVALID', 'sign: data must be bytes', { label });
      const digest = new Uint8Array(await globalThis.crypto.subtle.digest(spec.hash, data as Uint8Array<ArrayBuffer>));
      return this.signDigest(label, digest, spec);
    };
    return ok({ algorithm: spec.algorithm, curve: spec.curve, publicKeySpki: spki, sign });
  }

  /** CKM_ECDSA over a precomputed digest on a pooled session; one transparent recovery. */
  private async signDigest(label: string, digest: Uint8Array, spec: CurveSpec): Promise<Result<Uint8Array>> {
    for (let attempt = 0; ; attempt++) {
      const gen = this.generation;
      let sess: { handle: Handle; generation: number } | null = null;
      let broken = false;
      try {
        const key = this.run('C_FindObjects', (s) => this.privateKeyHandle(s, label));
        if (!key.ok) return key;
        sess = await this.acquireSignSession();
        this.lib.C_SignInit(sess.handle, { mechanism: P.CKM_ECDSA }, key.value);
        const sig = await this.lib.C_SignAsync(sess.handle, Buffer.from(digest), Buffer.alloc(2 * spec.size + 16));
        if (sig.length !== 2 * spec.size) {
          return fail('HSM_FAILED', `C_Sign returned ${sig.length} bytes, expected ${2 * spec.size}`, { label });
        }
        return ok(new Uint8Array(sig));
      } catch (e) {
        broken = true;
        if (e instanceof StationErrorBox) return err(e.error);
        const ckr = ckrOf(e);
        if (attempt === 0 && ckr && SESSION_LOST_CKR.has(ckr)) {
          const r = this.recover(gen, 'C_Sign');
          if (!r.ok) return r;
          continue;
        }
        if (attempt === 0 && ckr && HANDLE_STALE_CKR.has(ckr)) {
          this.keyHandles.delete(label);
          continue;
        }
        return err(mapPkcs11Error(e, 'C_Sign'));
      } finally {
        if (sess) this.releaseSignSession(sess, broken);
      }
    }
  }

  /** DER of the certificate object labelled `label`, or null. */
  async certificate(label: string): Promise<Result<Uint8Array | null>> {
    return this.run('certificate', (s) => {
      const h = this.findOne(s, P.CKO_CERTIFICATE, label);
      return h ? new Uint8Array(attr(this.lib, s, h, P.CKA_VALUE)) : null;
    });
  }

  /** Key injection (P-256): device key generated in the token, wrapped under an ECDH-derived KEK, then destroyed. */
  async generateWrappedDeviceKey(transport: TransportKey): Promise<Result<WrappedDeviceKey>> {
    if (transport?.curve !== 'P-256' && transport?.curve !== 'P-384') {
      return fail('INPUT_INVALID', 'transport key: unknown curve', { curve: String(transport?.curve) });
    }
    if (transport.curve !== 'P-256') {
      return fail(
        'HSM_MECHANISM_UNSUPPORTED',
        `key injection supports P-256 only (requested ${transport.curve}); use on-board key generation for P-384`,
        { curve: transport.curve },
      );
    }
    const spec = CURVES[transport.curve];
    const boardPoint = parseEcSpki(transport.publicKeySpki, transport.curve);
    if (!boardPoint.ok) return boardPoint;

    return this.run('generateWrappedDeviceKey', (s) => {
      const lib = this.lib;
      const created: Handle[] = [];
      try {
        const ecParams = Buffer.from(spec.ecParams);
        // (1) device key pair: session objects; private key sensitive, extractable only by wrapping.
        const dev = lib.C_GenerateKeyPair(
          s,
          { mechanism: P.CKM_EC_KEY_PAIR_GEN },
          [
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_EC_PARAMS, value: ecParams },
            { type: P.CKA_VERIFY, value: true },
            { type: P.CKA_LABEL, value: 'line-station-device-key' },
          ],
          [
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_PRIVATE, value: true },
            { type: P.CKA_SENSITIVE, value: true },
            { type: P.CKA_EXTRACTABLE, value: true },
            { type: P.CKA_SIGN, value: false },
            { type: P.CKA_DERIVE, value: false },
            { type: P.CKA_LABEL, value: 'line-station-device-key' },
          ],
        );
        created.push(dev.privateKey, dev.publicKey);
        // (2) station ephemeral ECDH key pair.
        const eph = lib.C_GenerateKeyPair(
          s,
          { mechanism: P.CKM_EC_KEY_PAIR_GEN },
          [
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_EC_PARAMS, value: ecParams },
          ],
          [
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_PRIVATE, value: true },
            { type: P.CKA_SENSITIVE, value: true },
            { type: P.CKA_EXTRACTABLE, value: false },
            { type: P.CKA_DERIVE, value: true },
            { type: P.CKA_SIGN, value: false },
          ],
        );
        created.push(eph.privateKey, eph.publicKey);
        // (3) KEK = ECDH(ephemeral private, board transport public), CKD_NULL, 32 bytes as AES-256.
        const kek = lib.C_DeriveKey(
          s,
          {
            mechanism: P.CKM_ECDH1_DERIVE,
            parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: Buffer.from(boardPoint.value) } as ECDH1,
          },
          eph.privateKey,
          [
            { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
            { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_VALUE_LEN, value: 32 },
            { type: P.CKA_WRAP, value: true },
            { type: P.CKA_ENCRYPT, value: false },
            { type: P.CKA_DECRYPT, value: false },
            { type: P.CKA_EXTRACTABLE, value: false },
            { type: P.CKA_SENSITIVE, value: true },
          ],
        );
        created.push(kek);
        // (4) wrap the device private key (PKCS#8) with AES key wrap with padding (RFC 5649).
        const wrapped = lib.C_WrapKey(
          s,
          { mechanism: P.CKM_AES_KEY_WRAP_PAD },
          kek,
          dev.privateKey,
          Buffer.alloc(4096),
        );
        const devPoint = decodeEcPoint(attr(lib, s, dev.publicKey, P.CKA_EC_POINT), spec);
        const ephPoint = decodeEcPoint(attr(lib, s, eph.publicKey, P.CKA_EC_POINT), spec);
        if (!devPoint || !ephPoint) {
          throw new StationErrorBox(stationError('HSM_FAILED', 'generated key has a malformed CKA_EC_POINT'));
        }
        this.log?.log('debug', 'device key generated and wrapped for injection', {
          curve: spec.curve,
          wrappedBytes: wrapped.length,
        });
        return {
          curve: spec.curve,
          ephemeralPublicKeySpki: spkiFromPoint(ephPoint, spec),
          wrappedKey: new Uint8Array(wrapped),
          publicKeySpki: spkiFromPoint(devPoint, spec),
        };
      } finally {
        // (5) always destroy what we created (private keys and KEK first).
        for (const h of created) {
          try {
            lib.C_DestroyObject(s, h);
          } catch (e) {
            this.log?.log('warn', 'could not destroy a session object after key injection', {
              ckr: ckrOf(e) ?? 'unknown',
            });
          }
        }
      }
    });
  }

  // ------------------------------------------------------------ admin

  /** Generate a token-resident signing key pair (see HsmAdmin). */
  async generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>> {
    if (!validLabel(label)) return fail('INPUT_INVALID', 'key label must be 1..64 printable ASCII characters', {});
    const spec = (CURVES as Partial<Record<string, CurveSpec>>)[curve];
    if (!spec)
      return fail('INPUT_INVALID', `unsupported curve ${String(curve)} (P-256, P-384)`, { curve: String(curve) });
    return this.run('generateSigningKey', (s) => {
      for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
        if (
          findAll(this.lib, s, [
            { type: P.CKA_CLASS, value: cls },
            { type: P.CKA_LABEL, value: label },
          ]).length > 0
        ) {
          throw new StationErrorBox(
            stationError(
              'INPUT_INVALID',
              `a key labelled "${label}" already exists on the token; refusing to overwrite`,
              { label },
            ),
          );
        }
      }
      const id = randomBytes(16);
      const common = [
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_LABEL, value: label },
        { type: P.CKA_ID, value: id },
      ];
      const kp = this.lib.C_GenerateKeyPair(
        s,
        { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [
          ...common,
          { type: P.CKA_EC_PARAMS, value: Buffer.from(spec.ecParams) },
          { type: P.CKA_PRIVATE, value: false },
          { type: P.CKA_VERIFY, value: true },
        ],
        [
          ...common,
          { type: P.CKA_PRIVATE, value: true },
          ...SIGNING_KEY_PROTECTION,
          { type: P.CKA_SIGN, value: true },
          { type: P.CKA_DERIVE, value: false },
          { type: P.CKA_DECRYPT, value: false },
          { type: P.CKA_UNWRAP, value: false },
        ],
      );
      // A token may ignore template attributes: read them back and refuse (destroying the pair) a key that could
      // leave the token.
      const weak = unprotectedAttributes(this.lib, s, kp.privateKey);
      if (weak.length > 0) {
        for (const h of [kp.privateKey, kp.publicKey]) this.lib.C_DestroyObject(s, h);
        throw new StationErrorBox(
          stationError('HSM_KEY_EXPORTABLE', `the token did not generate "${label}" as required: ${weak.join(', ')}`, {
            label,
            attributes: weak,
          }),
        );
      }
      const point = decodeEcPoint(attr(this.lib, s, kp.publicKey, P.CKA_EC_POINT), spec);
      if (!point) throw new StationErrorBox(stationError('HSM_FAILED', 'generated key has a malformed CKA_EC_POINT'));
      this.keyHandles.set(label, kp.privateKey);
      this.log?.log('info', 'signing key generated', { label, curve, id: id.toString('hex') });
      return { publicKeySpki: spkiFromPoint(point, spec), id: id.toString('hex') };
    });
  }

  /** Store a certificate (see HsmAdmin). */
  async importCertificate(label: string, der: Uint8Array): Promise<Result<{ id: string }>> {
    if (!validLabel(label))
      return fail('INPUT_INVALID', 'certificate label must be 1..64 printable ASCII characters', {});
    const subject = der instanceof Uint8Array ? certificateSubject(der) : null;
    if (!subject) return fail('INPUT_INVALID', 'not a DER X.509 certificate', { label });
    return this.run('importCertificate', (s) => {
      const key = this.findOne(s, P.CKO_PRIVATE_KEY, label) ?? this.findOne(s, P.CKO_PUBLIC_KEY, label);
      const id = key ? attr(this.lib, s, key, P.CKA_ID) : randomBytes(16);
      const old = findAll(this.lib, s, [
        { type: P.CKA_CLASS, value: P.CKO_CERTIFICATE },
        { type: P.CKA_LABEL, value: label },
      ]);
      for (const h of old) this.lib.C_DestroyObject(s, h);
      this.lib.C_CreateObject(s, [
        { type: P.CKA_CLASS, value: P.CKO_CERTIFICATE },
        { type: P.CKA_CERTIFICATE_TYPE, value: P.CKC_X_509 },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_PRIVATE, value: false },
        { type: P.CKA_LABEL, value: label },
        { type: P.CKA_ID, value: id },
        { type: P.CKA_SUBJECT, value: Buffer.from(subject) },
        { type: P.CKA_VALUE, value: Buffer.from(der) },
      ]);
      this.log?.log('info', old.length ? 'certificate replaced' : 'certificate imported', { label });
      return { id: id.toString('hex') };
    });
  }

  /** Private key attributes for `label`, or null. */
  async findKey(label: string): Promise<Result<HsmKeyInfo | null>> {
    return this.run('findKey', (s) => {
      const h = this.findOne(s, P.CKO_PRIVATE_KEY, label);
      return h ? this.keyInfo(s, h) : null;
    });
  }

  /** Destroy the key pair objects labelled `label` (see HsmAdmin.destroyKeyPair; station key rotation). */
  async destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>> {
    if (!validLabel(label)) return fail('INPUT_INVALID', 'key label must be 1..64 printable ASCII characters', {});
    return this.run('destroyKeyPair', (s) => {
      let destroyed = 0;
      for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY])
        for (const h of findAll(this.lib, s, [
          { type: P.CKA_CLASS, value: cls },
          { type: P.CKA_LABEL, value: label },
        ])) {
          this.lib.C_DestroyObject(s, h);
          destroyed++;
        }
      this.keyHandles.delete(label);
      this.log?.log('info', 'key pair destroyed', { label, destroyed });
      return { destroyed };
    });
  }

  /** Log out (if last user of the login), close sessions, finalize the module if last user. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    // Never close sessions or finalize while a worker thread is inside C_Sign.
    while (this.busy > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const reg = this.mod.logins.get(this.slotKey);
    if (reg) reg.count--;
    const last = !reg || reg.count <= 0;
    if (last) this.mod.logins.delete(this.slotKey);
    if (this.session && last) {
      try {
        this.lib.C_Logout(this.session);
      } catch {
        /* not logged in any more */
      }
    }
    for (const h of [this.session, ...this.idle.map((i) => i.handle)]) {
      if (!h) continue;
      try {
        this.lib.C_CloseSession(h);
      } catch {
        /* ignore */
      }
    }
    this.idle = [];
    this.session = null;
    this.keyHandles.clear();
    this.pin = null;
    releaseModule(this.mod);
    this.log?.log('info', 'HSM closed', { slot: this.slotKey });
  }
}

/** Carries a StationError out of a synchronous Cryptoki sequence run under `run()`. */
class StationErrorBox {
  constructor(readonly error: StationError) {}
}

/**
 * Open a PKCS#11 token: load the module, initialise Cryptoki, find the token by label, open a R/W session
 * and log in as user.
 */
export async function openHsm(cfg: HsmConfig): Promise<Result<HsmAdmin>> {
  const log = cfg.logger?.child('hsm');
  if (typeof cfg.pin !== 'string' || cfg.pin.length === 0) return fail('CONFIG_INVALID', 'HSM PIN is empty');
  const maxSign = Math.min(16, Math.max(1, Math.floor(cfg.signSessions ?? 4)));
  const m = acquireModule(cfg.module);
  if (!m.ok) {
    log?.log('error', 'PKCS#11 module load failed', { module: cfg.module, code: m.error.code });
    return m;
  }
  const mod = m.value;
  let slot: Handle | undefined;
  const seen: string[] = [];
  try {
    for (const s of mod.lib.C_GetSlotList(true)) {
      let label: string;
      try {
        label = mod.lib.C_GetTokenInfo(s).label.trim();
      } catch {
        continue; // token vanished between the two calls
      }
      seen.push(label);
      if (label === cfg.tokenLabel) {
        slot = s;
        break;
      }
    }
  } catch (e) {
    releaseModule(mod);
    return err(mapPkcs11Error(e, 'C_GetSlotList'));
  }
  if (!slot) {
    releaseModule(mod);
    log?.log('error', 'HSM token not found', { tokenLabel: cfg.tokenLabel, tokensPresent: seen });
    return fail('HSM_TOKEN_ABSENT', `no token labelled "${cfg.tokenLabel}" in ${cfg.module}`, {
      tokenLabel: cfg.tokenLabel,
      tokensPresent: seen,
    });
  }
  const hsm = new Pkcs11Hsm(mod, slot, cfg.pin, log, maxSign);
  const opened = hsm.openMain();
  if (!opened.ok) {
    releaseModule(mod);
    log?.log('error', 'HSM login failed', { tokenLabel: cfg.tokenLabel, code: opened.error.code });
    return opened;
  }
  hsm.registerLogin();
  log?.log('info', 'HSM token opened', { module: cfg.module, tokenLabel: cfg.tokenLabel, slot: String(ulong(slot)) });
  return ok(hsm);
}
