/**
 * `Tpm`: the TPM 2.0 commands the station sends, over a `TpmTransmit` (a board's relay or a swtpm socket).
 *
 * Command and response framing: TPM 2.0 Library Part 1 §18 (header, handle area, authorization area, parameter
 * area) and §19 (authorizations: the password session); each command's parameters: Part 3 (the section is named at the method).
 * Authorizations are the password session (TPM_RS_PW, empty auth values: the station's TPM keys and hierarchies have
 * none) and, for an EK without userWithAuth, an unsalted unbound policy session satisfied by
 * TPM2_PolicySecret(TPM_RH_ENDORSEMENT). No HMAC or parameter encryption: the relay is untrusted, so nothing the
 * station relies on comes from the transport; trust comes from the EK certificate, credential activation and
 * signatures over TPMS_ATTEST (docs/tpm.md).
 *
 * Framing is frame.ts; every response is parsed bounds-checked (marshal.ts); a response code becomes TPM_LOCKOUT (TPM_RC_LOCKOUT) or
 * TPM_COMMAND_FAILED naming the code (`details.rc`, `details.rcName`, `details.command`).
 */
import { fail } from '../errors.js';
import type { CallOptions } from '../ports.js';
import { ok, type Result } from '../result.js';
import { TPMA_PERMANENT, TPM_ALG, TPM_CAP, TPM_CC, TPM_PT, TPM_RH, TPM_SE } from './constants.js';
import { encodeCommand, decodeResponse, isRetryResponse, type Authorisation, type RawResponse } from './frame.js';
import { TpmReader, TpmWriter, parseAll } from './marshal.js';
import { readPublic, writePublic, type TpmPublic } from './public.js';
import { readSignature, type TpmSignature } from './attest.js';
import { readPcrSelection, selectionOrder, writePcrSelection, type PcrSelection, type PcrValue } from './pcr.js';
import type { TpmTransmit } from './transport.js';

export type { Authorisation } from './frame.js';

/** TPMS_NV_PUBLIC plus the index's Name. */
export interface NvPublic {
  readonly nvIndex: number;
  readonly nameAlg: number;
  /** TPMA_NV bits (constants.ts `TPMA_NV`). */
  readonly attributes: number;
  readonly authPolicy: Uint8Array;
  readonly dataSize: number;
  readonly name: Uint8Array;
}

/** A loaded object: its handle, public area (parsed and as the TPM marshalled it) and Name. */
export interface LoadedObject {
  readonly handle: number;
  readonly public: TpmPublic;
  /** The TPMT_PUBLIC bytes exactly as the TPM returned them. */
  readonly publicBytes: Uint8Array;
  readonly name: Uint8Array;
}

/** TPM2_Create's output: the wrapped private part and the public area. */
export interface CreatedKey {
  readonly private: Uint8Array;
  readonly public: TpmPublic;
  readonly publicBytes: Uint8Array;
}

/** A signed attestation: the TPMS_ATTEST bytes the TPM signed and its TPMT_SIGNATURE (raw and parsed). */
export interface SignedAttest {
  readonly attest: Uint8Array;
  readonly signatureBytes: Uint8Array;
  readonly signature: TpmSignature;
}

/** What `info()` reads from TPM_PT properties. */
export interface TpmInfo {
  /** TPM_PT_MANUFACTURER as four ASCII characters ("IBM " for swtpm), trailing spaces and NULs trimmed. */
  readonly manufacturer: string;
  readonly manufacturerId: number;
  readonly vendorString: string;
  /** TPM_PT_FIRMWARE_VERSION_1 and _2 as one 64-bit value. */
  readonly firmwareVersion: bigint;
  /** TPM_PT_PERMANENT (TPMA_PERMANENT bits). */
  readonly permanent: number;
  readonly inLockout: boolean;
  readonly lockoutCounter: number;
  readonly maxAuthFail: number;
  readonly nvBufferMax: number;
  /** TPM_PT_NV_INDEX_MAX: the largest NV index (bytes) the TPM can define. */
  readonly nvIndexMax: number;
  readonly maxCommandSize: number;
}

const HANDLE_MAX_LIST = 254;
const PROPERTIES_MAX_LIST = 256;
const DIGESTS_MAX = 8;

const RETRIES = 5;

const PASSWORD: Authorisation = { kind: 'password' };

/** The TPM 2.0 commands the station uses, over one `TpmTransmit`. Methods never throw; they return coded results. */
export class Tpm {
  private nvBufferMax: number | undefined;

  constructor(private readonly transmit: TpmTransmit) {}

  /** Send one command (resent on TPM_RC_RETRY/YIELDED/TESTING) and check the response frame (frame.ts). */
  private async run(
    command: string,
    cc: number,
    handles: readonly number[],
    auths: readonly Authorisation[],
    params: Uint8Array,
    responseHandles: number,
    opts?: CallOptions,
  ): Promise<Result<RawResponse>> {
    const cmd = encodeCommand({ name: command, cc, handles, auths, params });
    if (!cmd.ok) return cmd;
    let sent = await this.transmit(cmd.value, opts);
    for (let attempt = 1; attempt < RETRIES && sent.ok && isRetryResponse(sent.value); attempt++) {
      sent = await this.transmit(cmd.value, opts);
    }
    if (!sent.ok) return sent;
    return decodeResponse(command, sent.value, responseHandles, auths.length);
  }

  /** TPM2_GetRandom (Part 3 §16.1). */
  async getRandom(bytes: number, opts?: CallOptions): Promise<Result<Uint8Array>> {
    const res = await this.run(
      'TPM2_GetRandom',
      TPM_CC.GetRandom,
      [],
      [],
      new TpmWriter().u16(bytes).toBytes(),
      0,
      opts,
    );
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_GetRandom response', (r) => r.tpm2b(64));
  }

  /** TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES) (Part 3 §30.2): property → value, from `first`, up to `count`. */
  async getProperties(first: number, count: number, opts?: CallOptions): Promise<Result<Map<number, number>>> {
    const p = new TpmWriter().u32(TPM_CAP.TPM_PROPERTIES).u32(first).u32(count).toBytes();
    const res = await this.run('TPM2_GetCapability', TPM_CC.GetCapability, [], [], p, 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_GetCapability response', (r) => {
      r.u8(); // moreData
      if (r.u32() !== TPM_CAP.TPM_PROPERTIES) r.fail('capability is not TPM_CAP_TPM_PROPERTIES');
      const n = r.count(PROPERTIES_MAX_LIST);
      const m = new Map<number, number>();
      for (let i = 0; i < n && !r.failed; i++) m.set(r.u32(), r.u32());
      return m;
    });
  }

  /** TPM2_GetCapability(TPM_CAP_HANDLES) (Part 3 §30.2): handles from `first` (e.g. 0x81000000 persistent). */
  async getHandles(first: number, count = HANDLE_MAX_LIST, opts?: CallOptions): Promise<Result<number[]>> {
    const p = new TpmWriter().u32(TPM_CAP.HANDLES).u32(first).u32(count).toBytes();
    const res = await this.run('TPM2_GetCapability', TPM_CC.GetCapability, [], [], p, 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_GetCapability response', (r) => {
      r.u8();
      if (r.u32() !== TPM_CAP.HANDLES) r.fail('capability is not TPM_CAP_HANDLES');
      const n = r.count(HANDLE_MAX_LIST);
      const out: number[] = [];
      for (let i = 0; i < n && !r.failed; i++) out.push(r.u32());
      return out;
    });
  }

  /** Manufacturer, firmware, lockout state and buffer sizes (TPM_PT_* fixed and variable properties). */
  async info(opts?: CallOptions): Promise<Result<TpmInfo>> {
    const fixed = await this.getProperties(TPM_PT.FAMILY_INDICATOR, 64, opts);
    if (!fixed.ok) return fixed;
    const variable = await this.getProperties(TPM_PT.PERMANENT, 32, opts);
    if (!variable.ok) return variable;
    const get = (p: number): number => fixed.value.get(p) ?? variable.value.get(p) ?? 0;
    const ascii = (v: number): string =>
      String.fromCharCode((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff).replace(/[\0 ]+$/, '');
    const printable = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?');
    const permanent = get(TPM_PT.PERMANENT);
    const nvBufferMax = get(TPM_PT.NV_BUFFER_MAX);
    if (nvBufferMax > 0) this.nvBufferMax = nvBufferMax;
    return ok({
      manufacturer: printable(ascii(get(TPM_PT.MANUFACTURER))),
      manufacturerId: get(TPM_PT.MANUFACTURER),
      vendorString: printable(
        [TPM_PT.VENDOR_STRING_1, TPM_PT.VENDOR_STRING_2, TPM_PT.VENDOR_STRING_3, TPM_PT.VENDOR_STRING_4]
          .map((p) => ascii(get(p)))
          .join(''),
      ),
      firmwareVersion: (BigInt(get(TPM_PT.FIRMWARE_VERSION_1)) << 32n) | BigInt(get(TPM_PT.FIRMWARE_VERSION_2)),
      permanent,
      inLockout: (permanent & TPMA_PERMANENT.inLockout) !== 0,
      lockoutCounter: get(TPM_PT.LOCKOUT_COUNTER),
      maxAuthFail: get(TPM_PT.MAX_AUTH_FAIL),
      nvBufferMax,
      nvIndexMax: get(TPM_PT.NV_INDEX_MAX),
      maxCommandSize: get(TPM_PT.MAX_COMMAND_SIZE),
    });
  }

  /** TPM2_NV_ReadPublic (Part 3 §31.6). */
  async nvReadPublic(nvIndex: number, opts?: CallOptions): Promise<Result<NvPublic>> {
    const res = await this.run('TPM2_NV_ReadPublic', TPM_CC.NV_ReadPublic, [nvIndex], [], new Uint8Array(0), 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_NV_ReadPublic response', (r) => {
      const pub = r.sized((s) => ({
        nvIndex: s.u32(),
        nameAlg: s.u16(),
        attributes: s.u32(),
        authPolicy: s.tpm2b(64),
        dataSize: s.u16(),
      }));
      const name = r.tpm2b(66);
      if (pub.nvIndex !== nvIndex)
        r.fail(`NV public area of 0x${pub.nvIndex.toString(16)}, asked 0x${nvIndex.toString(16)}`);
      return { ...pub, name };
    });
  }

  private async bufferMax(opts?: CallOptions): Promise<Result<number>> {
    if (this.nvBufferMax === undefined) {
      const p = await this.getProperties(TPM_PT.NV_BUFFER_MAX, 1, opts);
      if (!p.ok) return p;
      const v = p.value.get(TPM_PT.NV_BUFFER_MAX);
      // Fall back to 512 (every TPM 2.0 we know allows at least that) when the property is absent.
      this.nvBufferMax = v && v > 0 ? Math.min(v, 1024) : 512;
    }
    return ok(this.nvBufferMax);
  }

  /**
   * TPM2_NV_Read (Part 3 §31.13) of the whole index (its dataSize from NV_ReadPublic), in chunks of
   * TPM_PT_NV_BUFFER_MAX. `authHandle` defaults to the index itself (TPMA_NV_AUTHREAD with an empty auth value).
   */
  async nvRead(nvIndex: number, opts?: CallOptions & { authHandle?: number }): Promise<Result<Uint8Array>> {
    const pub = await this.nvReadPublic(nvIndex, opts);
    if (!pub.ok) return pub;
    const max = await this.bufferMax(opts);
    if (!max.ok) return max;
    const out = new Uint8Array(pub.value.dataSize);
    for (let off = 0; off < out.length;) {
      const n = Math.min(max.value, out.length - off);
      const p = new TpmWriter().u16(n).u16(off).toBytes();
      const auth = opts?.authHandle ?? nvIndex;
      const res = await this.run('TPM2_NV_Read', TPM_CC.NV_Read, [auth, nvIndex], [PASSWORD], p, 0, opts);
      if (!res.ok) return res;
      const data = parseAll(res.value.params, 'TPM2_NV_Read response', (r) => r.tpm2b(n));
      if (!data.ok) return data;
      if (data.value.length !== n)
        return fail('TPM_RESPONSE_MALFORMED', `TPM2_NV_Read returned ${data.value.length} of ${n} bytes`);
      out.set(data.value, off);
      off += n;
    }
    return ok(out);
  }

  /** TPM2_NV_DefineSpace (Part 3 §31.3): an ordinary index with an empty auth value. */
  async nvDefineSpace(
    def: {
      readonly nvIndex: number;
      readonly size: number;
      readonly attributes: number;
      readonly nameAlg?: number;
      readonly authPolicy?: Uint8Array;
      readonly authHandle?: number;
    },
    opts?: CallOptions,
  ): Promise<Result<void>> {
    const p = new TpmWriter()
      .tpm2b(new Uint8Array(0))
      .sized((w) =>
        w
          .u32(def.nvIndex)
          .u16(def.nameAlg ?? TPM_ALG.SHA256)
          .u32(def.attributes)
          .tpm2b(def.authPolicy ?? new Uint8Array(0))
          .u16(def.size),
      )
      .toBytes();
    const res = await this.run(
      'TPM2_NV_DefineSpace',
      TPM_CC.NV_DefineSpace,
      [def.authHandle ?? TPM_RH.OWNER],
      [PASSWORD],
      p,
      0,
      opts,
    );
    return res.ok ? ok(undefined) : res;
  }

  /** TPM2_NV_Write (Part 3 §31.7) of `data` at `offset`, in chunks of TPM_PT_NV_BUFFER_MAX. */
  async nvWrite(
    nvIndex: number,
    data: Uint8Array,
    opts?: CallOptions & { authHandle?: number; offset?: number },
  ): Promise<Result<void>> {
    const max = await this.bufferMax(opts);
    if (!max.ok) return max;
    const base = opts?.offset ?? 0;
    for (let off = 0; off < data.length || (data.length === 0 && off === 0);) {
      const chunk = data.subarray(off, off + max.value);
      const p = new TpmWriter()
        .tpm2b(chunk)
        .u16(base + off)
        .toBytes();
      const auth = opts?.authHandle ?? TPM_RH.OWNER;
      const res = await this.run('TPM2_NV_Write', TPM_CC.NV_Write, [auth, nvIndex], [PASSWORD], p, 0, opts);
      if (!res.ok) return res;
      off += chunk.length;
      if (chunk.length === 0) break;
    }
    return ok(undefined);
  }

  /** TPM2_NV_WriteLock (Part 3 §31.11). */
  async nvWriteLock(nvIndex: number, opts?: CallOptions & { authHandle?: number }): Promise<Result<void>> {
    const auth = opts?.authHandle ?? TPM_RH.OWNER;
    const res = await this.run(
      'TPM2_NV_WriteLock',
      TPM_CC.NV_WriteLock,
      [auth, nvIndex],
      [PASSWORD],
      new Uint8Array(0),
      0,
      opts,
    );
    return res.ok ? ok(undefined) : res;
  }

  /** TPM2_NV_UndefineSpace (Part 3 §31.4). */
  async nvUndefineSpace(nvIndex: number, opts?: CallOptions & { authHandle?: number }): Promise<Result<void>> {
    const auth = opts?.authHandle ?? TPM_RH.OWNER;
    const res = await this.run(
      'TPM2_NV_UndefineSpace',
      TPM_CC.NV_UndefineSpace,
      [auth, nvIndex],
      [PASSWORD],
      new Uint8Array(0),
      0,
      opts,
    );
    return res.ok ? ok(undefined) : res;
  }

  /** TPM2_CreatePrimary (Part 3 §24.1) in `hierarchy` (TPM_RH_ENDORSEMENT for an EK, TPM_RH_OWNER for the SRK). */
  async createPrimary(hierarchy: number, template: TpmPublic, opts?: CallOptions): Promise<Result<LoadedObject>> {
    const p = new TpmWriter()
      .sized((w) => w.tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0))) // TPM2B_SENSITIVE_CREATE: empty auth, no data
      .sized((w) => writePublic(w, template))
      .tpm2b(new Uint8Array(0)) // outsideInfo
      .u32(0) // creationPCR: none
      .toBytes();
    const res = await this.run('TPM2_CreatePrimary', TPM_CC.CreatePrimary, [hierarchy], [PASSWORD], p, 1, opts);
    if (!res.ok) return res;
    const handle = res.value.handles[0]!;
    return parseAll(res.value.params, 'TPM2_CreatePrimary response', (r) => {
      const { pub, bytes } = readPublic2b(r);
      skipCreationData(r);
      const name = r.tpm2b(66);
      return { handle, public: pub, publicBytes: bytes, name };
    });
  }

  /** TPM2_Create (Part 3 §12.1): an ordinary key under `parent`, empty auth value. */
  async create(parent: number, template: TpmPublic, opts?: CallOptions): Promise<Result<CreatedKey>> {
    const p = new TpmWriter()
      .sized((w) => w.tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0)))
      .sized((w) => writePublic(w, template))
      .tpm2b(new Uint8Array(0))
      .u32(0)
      .toBytes();
    const res = await this.run('TPM2_Create', TPM_CC.Create, [parent], [PASSWORD], p, 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_Create response', (r) => {
      const priv = r.tpm2b(1024);
      const { pub, bytes } = readPublic2b(r);
      skipCreationData(r);
      return { private: priv, public: pub, publicBytes: bytes };
    });
  }

  /** TPM2_Load (Part 3 §12.2): load a key created under `parent`; returns its handle and Name. */
  async load(
    parent: number,
    key: { readonly private: Uint8Array; readonly publicBytes: Uint8Array },
    opts?: CallOptions,
  ): Promise<Result<{ handle: number; name: Uint8Array }>> {
    const p = new TpmWriter().tpm2b(key.private).tpm2b(key.publicBytes).toBytes();
    const res = await this.run('TPM2_Load', TPM_CC.Load, [parent], [PASSWORD], p, 1, opts);
    if (!res.ok) return res;
    const handle = res.value.handles[0]!;
    return parseAll(res.value.params, 'TPM2_Load response', (r) => ({ handle, name: r.tpm2b(66) }));
  }

  /** TPM2_ReadPublic (Part 3 §12.4): the public area, Name and qualified Name of a loaded or persistent object. */
  async readPublic(handle: number, opts?: CallOptions): Promise<Result<LoadedObject & { qualifiedName: Uint8Array }>> {
    const res = await this.run('TPM2_ReadPublic', TPM_CC.ReadPublic, [handle], [], new Uint8Array(0), 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_ReadPublic response', (r) => {
      const { pub, bytes } = readPublic2b(r);
      const name = r.tpm2b(66);
      const qualifiedName = r.tpm2b(66);
      return { handle, public: pub, publicBytes: bytes, name, qualifiedName };
    });
  }

  /**
   * TPM2_EvictControl (Part 3 §28.5): make the transient `objectHandle` persistent at `persistentHandle`, or
   * remove a persistent object (pass its persistent handle as both).
   */
  async evictControl(objectHandle: number, persistentHandle: number, opts?: CallOptions): Promise<Result<void>> {
    const p = new TpmWriter().u32(persistentHandle).toBytes();
    const res = await this.run(
      'TPM2_EvictControl',
      TPM_CC.EvictControl,
      [TPM_RH.OWNER, objectHandle],
      [PASSWORD],
      p,
      0,
      opts,
    );
    return res.ok ? ok(undefined) : res;
  }

  /** TPM2_FlushContext (Part 3 §28.4): unload a transient object or session. */
  async flushContext(handle: number, opts?: CallOptions): Promise<Result<void>> {
    const res = await this.run(
      'TPM2_FlushContext',
      TPM_CC.FlushContext,
      [],
      [],
      new TpmWriter().u32(handle).toBytes(),
      0,
      opts,
    );
    return res.ok ? ok(undefined) : res;
  }

  /** TPM2_StartAuthSession (Part 3 §11.1): an unsalted, unbound policy session with SHA-256. */
  async startPolicySession(opts?: CallOptions): Promise<Result<{ handle: number; nonceTpm: Uint8Array }>> {
    const p = new TpmWriter()
      .tpm2b(globalThis.crypto.getRandomValues(new Uint8Array(32))) // nonceCaller
      .tpm2b(new Uint8Array(0)) // encryptedSalt
      .u8(TPM_SE.POLICY)
      .u16(TPM_ALG.NULL) // symmetric
      .u16(TPM_ALG.SHA256)
      .toBytes();
    const res = await this.run(
      'TPM2_StartAuthSession',
      TPM_CC.StartAuthSession,
      [TPM_RH.NULL, TPM_RH.NULL],
      [],
      p,
      1,
      opts,
    );
    if (!res.ok) return res;
    const handle = res.value.handles[0]!;
    return parseAll(res.value.params, 'TPM2_StartAuthSession response', (r) => ({ handle, nonceTpm: r.tpm2b(64) }));
  }

  /** TPM2_PolicySecret (Part 3 §23.4) with `authHandle` (default TPM_RH_ENDORSEMENT, empty auth) on `session`. */
  async policySecret(
    session: number,
    authHandle: number = TPM_RH.ENDORSEMENT,
    opts?: CallOptions,
  ): Promise<Result<void>> {
    const p = new TpmWriter()
      .tpm2b(new Uint8Array(0)) // nonceTPM
      .tpm2b(new Uint8Array(0)) // cpHashA
      .tpm2b(new Uint8Array(0)) // policyRef
      .u32(0) // expiration
      .toBytes();
    const res = await this.run('TPM2_PolicySecret', TPM_CC.PolicySecret, [authHandle, session], [PASSWORD], p, 0, opts);
    if (!res.ok) return res;
    const parsed = parseAll(res.value.params, 'TPM2_PolicySecret response', (r) => {
      r.tpm2b(64); // timeout
      r.u16(); // TPMT_TK_AUTH tag
      r.u32(); // hierarchy
      r.tpm2b(64); // digest
    });
    return parsed.ok ? ok(undefined) : parsed;
  }

  /**
   * TPM2_ActivateCredential (Part 3 §12.5): the TPM decrypts `secret` with the EK (`keyHandle`), checks the
   * credential's integrity against the Name of `activateHandle`, and returns the credential. `ekAuth` says how
   * the EK is authorised: 'policy-secret-endorsement' (templates L-1/L-2: a policy session with
   * PolicySecret(TPM_RH_ENDORSEMENT), flushed afterwards) or 'password' (EKs with userWithAuth, e.g. H-3).
   */
  async activateCredential(
    args: {
      readonly activateHandle: number;
      readonly keyHandle: number;
      readonly ekAuth: 'policy-secret-endorsement' | 'password';
      readonly credentialBlob: Uint8Array;
      readonly secret: Uint8Array;
    },
    opts?: CallOptions,
  ): Promise<Result<Uint8Array>> {
    let ekAuth: Authorisation = PASSWORD;
    let session: number | undefined;
    if (args.ekAuth === 'policy-secret-endorsement') {
      const s = await this.startPolicySession(opts);
      if (!s.ok) return s;
      session = s.value.handle;
      const ps = await this.policySecret(session, TPM_RH.ENDORSEMENT, opts);
      if (!ps.ok) {
        await this.flushContext(session, opts);
        return ps;
      }
      ekAuth = { kind: 'policy', session };
    }
    const p = new TpmWriter().tpm2b(args.credentialBlob).tpm2b(args.secret).toBytes();
    const res = await this.run(
      'TPM2_ActivateCredential',
      TPM_CC.ActivateCredential,
      [args.activateHandle, args.keyHandle],
      [PASSWORD, ekAuth],
      p,
      0,
      opts,
    );
    if (!res.ok) {
      // A failed command leaves the session loaded (continueSession only takes effect on success).
      if (session !== undefined) await this.flushContext(session, opts);
      return res;
    }
    return parseAll(res.value.params, 'TPM2_ActivateCredential response', (r) => r.tpm2b(64));
  }

  /** TPM2_Certify (Part 3 §18.2): `signHandle` signs a TPMS_ATTEST over `objectHandle`'s Name with `qualifyingData`. */
  async certify(
    args: { readonly objectHandle: number; readonly signHandle: number; readonly qualifyingData: Uint8Array },
    opts?: CallOptions,
  ): Promise<Result<SignedAttest>> {
    // inScheme TPM_ALG_NULL: the signing key's own scheme (ECDSA SHA-256 in our templates).
    const p = new TpmWriter().tpm2b(args.qualifyingData).u16(TPM_ALG.NULL).toBytes();
    const res = await this.run(
      'TPM2_Certify',
      TPM_CC.Certify,
      [args.objectHandle, args.signHandle],
      [PASSWORD, PASSWORD],
      p,
      0,
      opts,
    );
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_Certify response', readSignedAttest);
  }

  /** TPM2_Quote (Part 3 §18.4): `signHandle` signs the digest of the selected PCRs with `qualifyingData`. */
  async quote(
    args: {
      readonly signHandle: number;
      readonly qualifyingData: Uint8Array;
      readonly selection: readonly PcrSelection[];
    },
    opts?: CallOptions,
  ): Promise<Result<SignedAttest>> {
    const w = new TpmWriter().tpm2b(args.qualifyingData).u16(TPM_ALG.NULL);
    writePcrSelection(w, args.selection);
    const res = await this.run('TPM2_Quote', TPM_CC.Quote, [args.signHandle], [PASSWORD], w.toBytes(), 0, opts);
    if (!res.ok) return res;
    return parseAll(res.value.params, 'TPM2_Quote response', readSignedAttest);
  }

  /**
   * TPM2_PCR_Read (Part 3 §22.4) of every selected PCR (the TPM returns at most 8 digests per call: repeated until
   * all are read). Values are in selection order: bank by bank, PCR index ascending.
   */
  async pcrRead(selection: readonly PcrSelection[], opts?: CallOptions): Promise<Result<PcrValue[]>> {
    const wanted = selectionOrder(selection);
    const out: PcrValue[] = [];
    while (out.length < wanted.length) {
      const rest = wanted.slice(out.length);
      const banks: PcrSelection[] = [];
      for (const x of rest) {
        const last = banks[banks.length - 1];
        if (last && last.hashAlg === x.hashAlg) (last.pcrs as number[]).push(x.pcr);
        else banks.push({ hashAlg: x.hashAlg, pcrs: [x.pcr] });
      }
      const w = new TpmWriter();
      writePcrSelection(w, banks);
      const res = await this.run('TPM2_PCR_Read', TPM_CC.PCR_Read, [], [], w.toBytes(), 0, opts);
      if (!res.ok) return res;
      const parsed = parseAll(res.value.params, 'TPM2_PCR_Read response', (r) => {
        r.u32(); // pcrUpdateCounter
        const sel = readPcrSelection(r);
        const n = r.count(DIGESTS_MAX);
        const digests: Uint8Array[] = [];
        for (let i = 0; i < n && !r.failed; i++) digests.push(r.tpm2b(64));
        return { sel, digests };
      });
      if (!parsed.ok) return parsed;
      const got = parsed.value.sel.flatMap((s) => s.pcrs.map((pcr) => ({ hashAlg: s.hashAlg, pcr })));
      if (got.length !== parsed.value.digests.length || got.length === 0) {
        return fail(
          'TPM_RESPONSE_MALFORMED',
          `TPM2_PCR_Read returned ${parsed.value.digests.length} digests for ${got.length} PCRs`,
        );
      }
      for (let i = 0; i < got.length; i++) {
        const want = rest[i];
        if (!want || want.hashAlg !== got[i]!.hashAlg || want.pcr !== got[i]!.pcr) {
          return fail('TPM_RESPONSE_MALFORMED', 'TPM2_PCR_Read returned PCRs that were not asked for');
        }
        out.push({ ...want, digest: parsed.value.digests[i]! });
      }
    }
    return ok(out);
  }

  /** TPM2_PCR_Extend (Part 3 §22.2) of one PCR with one digest per bank. */
  async pcrExtend(
    pcr: number,
    digests: readonly { readonly hashAlg: number; readonly digest: Uint8Array }[],
    opts?: CallOptions,
  ): Promise<Result<void>> {
    const w = new TpmWriter().u32(digests.length);
    for (const d of digests) w.u16(d.hashAlg).bytes(d.digest);
    const res = await this.run('TPM2_PCR_Extend', TPM_CC.PCR_Extend, [pcr], [PASSWORD], w.toBytes(), 0, opts);
    return res.ok ? ok(undefined) : res;
  }
}

/** TPM2B_PUBLIC: the parsed TPMT_PUBLIC and its exact bytes. */
function readPublic2b(r: TpmReader): { pub: TpmPublic; bytes: Uint8Array } {
  let bytes: Uint8Array = new Uint8Array(0);
  const pub = r.sized((s) => {
    const start = s.offset;
    const p = readPublic(s);
    bytes = s.failed ? new Uint8Array(0) : s.consumedSince(start);
    return p;
  });
  return { pub, bytes };
}

/** creationData (TPM2B_CREATION_DATA), creationHash (TPM2B_DIGEST), creationTicket (TPMT_TK_CREATION). */
function skipCreationData(r: TpmReader): void {
  r.tpm2b();
  r.tpm2b(64);
  r.u16();
  r.u32();
  r.tpm2b(64);
}

/** TPM2B_ATTEST then TPMT_SIGNATURE (Certify and Quote responses). */
function readSignedAttest(r: TpmReader): SignedAttest {
  const attest = r.tpm2b(2048);
  const start = r.offset;
  const signature = readSignature(r);
  return { attest, signatureBytes: r.failed ? new Uint8Array(0) : r.consumedSince(start), signature };
}
