/**
 * The signed provisioning record: one per provisioned board, canonical JSON signed by the station
 * key as a compact JWS (typ line-station-record+jws, x5c = station chain). See docs/formats.md.
 */
import { z } from 'zod';
import {
  bytesEqual,
  concatBytes,
  fromBase64,
  fromBase64Url,
  sha256Hex,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
} from '../bytes.js';
import { B64, B64Url, Sha256Hex, formatIssues } from './baseline.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import type { Clock, Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { signJws, verifyJws } from '../pki/jws.js';
import { CertificateProfileOverrideSchema } from '../pki/device-cert.js';
import { TPM_EK_TYPES } from './profiles.js';
import { parseAttest } from '../tpm/attest.js';
import { TPMA_OBJECT } from '../tpm/constants.js';
import { parsePublic } from '../tpm/public.js';
import { decodeStatement, type AttestationStatement } from '../pki/attestation.js';
import { toPem } from '../pki/pem.js';
import { embedManifest, RECORD_SCHEMA_V3, type EmbeddedManifest } from './record-manifest.js';

export { RECORD_SCHEMA_V3 };

/**
 * Records with attestation evidence (key-bound protocol 2, or legacy protocol 1 where a profile allows it), the
 * issuing chain as PEM (`chain`) and the manifest as its compact JWS (`manifest.jws`). RECORD_SCHEMA_V3: the same
 * evidence, the station chain once (./record-manifest.ts).
 */
export const RECORD_SCHEMA = 'line-station/provisioning-record/v2';
/** Records made before attestation evidence was kept (still verified and ingested). */
export const RECORD_SCHEMA_V1 = 'line-station/provisioning-record/v1';
export const RECORD_TYP = 'line-station-record+jws';

const Uuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a lower-case UUID');
const Text = z.string().min(1).max(256);
const IsoTime = z.string().datetime({ offset: true });
/** A TPM name with nameAlg SHA-256: 0x000b || SHA-256(TPMT_PUBLIC), lower-case hex. */
const TpmName = z.string().regex(/^000b[0-9a-f]{64}$/, 'expected a SHA-256 TPM name (000b + 64 hex chars)');
/** A TPM object's public area: TPMT_PUBLIC bytes (standard base64) and its name. */
const TpmObject = z.object({ public: B64, name: TpmName }).strict();

/**
 * Attestation evidence of a v2 record (docs/formats.md "Attestation evidence in the record"): everything a third
 * party needs to re-check the board's attestation with openssl.
 */
export const AttestationEvidenceRecordSchema = z.discriminatedUnion('mode', [
  z
    .object({
      mode: z.literal('key-bound-v2'),
      nonce: B64Url,
      leafSha256: Sha256Hex,
      /** Attestation chain as the board sent it, DER, leaf first. */
      chain: z.array(B64).min(1).max(8),
      /** DER ECDSA signature by the attestation key over `statement`. */
      signature: B64,
      /** The exact signed statement bytes. */
      statement: B64,
      /** The key the statement binds: the device key (= key.publicKeySpki) or the injection transport key. */
      boundKey: z.object({ role: z.enum(['device', 'transport']), spki: B64 }).strict(),
      /** SHA-256 of the canonical JSON of the manifest's `measurements`, as bound in the statement. */
      measurementsSha256: Sha256Hex,
    })
    .strict(),
  z
    .object({
      /**
       * A TPM 2.0 board (driver tpm2, docs/tpm.md): the EK certificate chain, the EK, IAK and IDevID public areas,
       * TPM2_Certify of the IDevID by the IAK over the flow's nonce, and the credential activation result.
       */
      mode: z.literal('tpm2'),
      /** The flow's 32-byte nonce: the qualifyingData (extraData) of the certify. */
      nonce: B64Url,
      /** SHA-256 (hex) of the EK certificate (DER). */
      leafSha256: Sha256Hex,
      /** The validated EK certificate path, DER, EK certificate first, the vendor root (trust anchor) last. */
      chain: z.array(B64).min(1).max(8),
      /** The EK as created from the TCG template of the profile's EK type (its key is the EK certificate's). */
      ek: z.object({ type: z.enum(TPM_EK_TYPES), public: B64, name: TpmName }).strict(),
      /** The attestation key (IAK): restricted ECC P-256 signing key, re-derived from the endorsement hierarchy. */
      iak: TpmObject,
      /** The device identity key (IDevID): its public key is the certified key (key.publicKeySpki). */
      idevid: TpmObject.extend({ handle: z.string().regex(/^0x81[0-9a-f]{6}$/, 'expected a persistent handle') }),
      /** TPM2_Certify(IDevID) signed by the IAK: TPMS_ATTEST bytes and the TPMT_SIGNATURE. */
      certify: z.object({ attest: B64, signature: B64 }).strict(),
      /**
       * MakeCredential(EK public, IAK name) at the station, ActivateCredential by the TPM: the secret came back.
       * Not re-checkable offline (it needs the TPM); the record says when and for which names it passed.
       */
      activation: z
        .object({ result: z.literal('secret-matched'), ekName: TpmName, iakName: TpmName, at: IsoTime })
        .strict(),
      /** SHA-256 of the canonical JSON of the manifest's `measurements` (the quote by the same IAK). */
      measurementsSha256: Sha256Hex,
    })
    .strict(),
  z
    .object({
      mode: z.literal('legacy-v1'),
      nonce: B64Url,
      leafSha256: Sha256Hex,
      chain: z.array(B64).min(1).max(8),
      /** DER ECDSA signature over utf8("line-station/attest/v1\0") || nonce || utf8(chipId). */
      signature: B64,
    })
    .strict(),
]);
export type AttestationEvidenceRecord = z.infer<typeof AttestationEvidenceRecordSchema>;

const RecordFields = z
  .object({
    schema: z.literal(RECORD_SCHEMA),
    recordId: Uuid,
    runId: Text,
    kind: z.enum(['initial', 'rotation']),
    supersedesRecordId: Uuid.nullable(),
    station: z.object({ id: Text, certificateSha256: Sha256Hex }).strict(),
    operator: Text,
    workOrder: Text,
    profileId: Text,
    board: z
      .object({
        chipId: z.string().regex(/^[0-9a-f]{8,64}$/, 'expected 8..64 lower-case hex chars'),
        serialNumber: Text,
        model: Text,
        hardwareRevision: z.string().max(256),
        firmwareVersion: z.string().max(256),
        port: z.string().max(1024),
      })
      .strict(),
    attestation: z.object({ nonce: B64Url, leafSha256: Sha256Hex }).strict(),
    key: z
      .object({ mode: z.enum(['onboard', 'injected']), curve: z.enum(['P-256', 'P-384']), publicKeySpki: B64Url })
      .strict(),
    certificate: z
      .object({
        serialNumber: z.string().regex(/^[0-9a-f]{2,40}$/, 'expected hex'),
        sha256: Sha256Hex,
        pem: z.string().min(1),
      })
      .strict(),
    chain: z.array(z.string().min(1)).max(8),
    manifest: z.object({ jws: z.string().min(1) }).strict(),
    verdict: z
      .object({
        pass: z.boolean(),
        violations: z.array(
          z.object({ rule: z.string(), expected: z.unknown(), actual: z.unknown(), message: z.string() }).strict(),
        ),
      })
      .strict(),
    /**
     * The registry policy the certificate was issued under (station/lifecycle, docs/lifecycle.md "Policy"):
     * version and SHA-256 of the policy payload (null: none in force), the board profile's override it applied,
     * and the SHA-256 of the effective certificate profile (canonical JSON). Absent in records from before.
     */
    policy: z
      .object({
        version: z.number().int().min(0).nullable(),
        sha256: Sha256Hex.nullable(),
        profileOverride: CertificateProfileOverrideSchema.nullable(),
        certificateProfileSha256: Sha256Hex,
      })
      .strict()
      .optional(),
    timings: z.record(z.string(), z.number().nonnegative()),
    startedAt: IsoTime,
    completedAt: IsoTime,
    outcome: z.literal('provisioned'),
  })
  .strict();

/**
 * A v3 record's manifest: the manifest payload (checked against ManifestSchema by the verifiers, as the payload of a
 * v2 `manifest.jws` is) and the manifest JWS's signature; its header is the record's (./record-manifest.ts).
 */
const EmbeddedManifestSchema = z.object({ payload: z.record(z.string(), z.unknown()), signature: B64Url }).strict();

export const ProvisioningRecordSchema = z
  .discriminatedUnion('schema', [
    RecordFields.extend({ attestation: AttestationEvidenceRecordSchema }),
    RecordFields.omit({ chain: true }).extend({
      schema: z.literal(RECORD_SCHEMA_V3),
      attestation: AttestationEvidenceRecordSchema,
      manifest: EmbeddedManifestSchema,
    }),
    RecordFields.extend({
      schema: z.literal(RECORD_SCHEMA_V1),
      attestation: z.object({ nonce: B64Url, leafSha256: Sha256Hex }).strict(),
    }),
  ])
  .superRefine((r, ctx) => {
    if ((r.kind === 'rotation') !== (r.supersedesRecordId !== null))
      ctx.addIssue({
        code: 'custom',
        path: ['supersedesRecordId'],
        message: 'a rotation must name the record it supersedes; an initial record must not',
      });
    const att = r.attestation;
    if ('mode' in att && att.mode === 'key-bound-v2') keyBoundProblems(r, att, ctx);
    if ('mode' in att && att.mode === 'tpm2') tpm2Problems(r, att, ctx);
  });

export type ProvisioningRecord = z.infer<typeof ProvisioningRecordSchema>;

type KeyBoundEvidence = Extract<AttestationEvidenceRecord, { mode: 'key-bound-v2' }>;

/**
 * A key-bound record says one thing everywhere: the statement decodes to exactly the record's nonce, chip id, bound
 * key and measurements digest; a device-role bound key is the certified key (key.publicKeySpki); a transport-role
 * key only with an injected key.
 */
function keyBoundProblems(
  r: {
    readonly board: { readonly chipId: string };
    readonly key: { readonly mode: string; readonly publicKeySpki: string };
  },
  att: KeyBoundEvidence,
  ctx: z.RefinementCtx,
): void {
  const issue = (path: string[], message: string) =>
    ctx.addIssue({ code: 'custom', path: ['attestation', ...path], message });
  let st: AttestationStatement | null = null;
  let spki: Uint8Array | null = null;
  try {
    st = decodeStatement(fromBase64(att.statement));
    spki = fromBase64(att.boundKey.spki);
  } catch {
    // reported below
  }
  if (!st || !spki) return issue(['statement'], 'not a protocol 2 statement in base64');
  if (
    st.role !== att.boundKey.role ||
    !bytesEqual(st.key, spki) ||
    st.chipId !== r.board.chipId ||
    toBase64Url(st.nonce) !== att.nonce ||
    st.measurementsSha256 !== att.measurementsSha256
  )
    issue(['statement'], 'the statement does not say what the record says (role, key, chip id, nonce, measurements)');
  if (att.boundKey.role === 'device' && toBase64Url(spki) !== r.key.publicKeySpki)
    issue(['boundKey', 'spki'], 'the attested device key is not key.publicKeySpki');
  if (att.boundKey.role === 'transport' && r.key.mode !== 'injected')
    issue(['boundKey', 'role'], 'only an injected key is bound through a transport key');
}

type Tpm2Evidence = Extract<AttestationEvidenceRecord, { mode: 'tpm2' }>;

/**
 * A tpm2 record says one thing everywhere: the certify is a TPM-generated certify over the record's nonce of the
 * IDevID's Name; the IDevID's public key is the certified key (key.publicKeySpki); the activation names the EK and
 * the IAK of the evidence; the IDevID and the IAK are fixedTPM signing keys. (The signatures and Names are hashes:
 * checked by the station before signing and re-checkable as docs/formats.md "Re-checking a tpm2 record" says.)
 */
function tpm2Problems(
  r: { readonly key: { readonly publicKeySpki: string } },
  att: Tpm2Evidence,
  ctx: z.RefinementCtx,
): void {
  const issue = (path: string[], message: string) =>
    ctx.addIssue({ code: 'custom', path: ['attestation', ...path], message });
  let attest: ReturnType<typeof parseAttest> | null = null;
  let idevid: ReturnType<typeof parsePublic> | null = null;
  let spki: Uint8Array | null = null;
  let nonce: Uint8Array | null = null;
  try {
    attest = parseAttest(fromBase64(att.certify.attest));
    idevid = parsePublic(fromBase64(att.idevid.public));
    spki = fromBase64Url(r.key.publicKeySpki);
    nonce = fromBase64Url(att.nonce);
  } catch {
    // reported below
  }
  if (!attest?.ok || attest.value.attested.kind !== 'certify')
    return issue(['certify', 'attest'], 'not a TPM-generated TPMS_ATTEST of a certify');
  if (!nonce || !bytesEqual(attest.value.extraData, nonce)) issue(['nonce'], 'the certify is not over the nonce');
  if (toHex(attest.value.attested.name) !== att.idevid.name)
    issue(['certify', 'attest'], 'the certify certifies another Name than idevid.name');
  if (!idevid?.ok || idevid.value.type !== 'ecc') return issue(['idevid', 'public'], 'not an ECC TPMT_PUBLIC');
  const point = concatBytes(Uint8Array.of(0x04), idevid.value.x, idevid.value.y);
  if (!spki || spki.length < point.length || !bytesEqual(spki.subarray(spki.length - point.length), point))
    issue(['idevid', 'public'], 'the IDevID is not the certified key (key.publicKeySpki)');
  const fixed = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign;
  if ((idevid.value.objectAttributes & fixed) !== fixed)
    issue(['idevid', 'public'], 'the IDevID is not a fixedTPM, fixedParent, TPM-generated signing key');
  if (att.activation.ekName !== att.ek.name || att.activation.iakName !== att.iak.name)
    issue(['activation'], 'the activation names another EK or IAK than the evidence');
}

/** The members of a record that depend on its format: v3 (`schema`, `manifest`) or v2 (`schema`, `chain`, `manifest`). */
export type RecordFormatMembers =
  | {
      readonly schema: typeof RECORD_SCHEMA_V3;
      readonly manifest: EmbeddedManifest & { payload: Record<string, unknown> };
    }
  | { readonly schema: typeof RECORD_SCHEMA; readonly chain: string[]; readonly manifest: { readonly jws: string } };

/**
 * The format members of a record the station signs with `alg` and `stationChain` (its x5c): v3 when the device
 * certificate's issuing chain `caChain` is the station chain after the station certificate and the manifest JWS
 * rebuilds byte for byte from its payload and signature with the record's alg and x5c (docs/formats.md "Provisioning
 * record"); v2 otherwise (a manifest signed before a station key rotation, another issuing chain).
 */
export function recordFormatMembers(p: {
  readonly alg: string;
  readonly stationChain: readonly Uint8Array[];
  readonly caChain: readonly Uint8Array[];
  readonly manifestJws: string;
}): RecordFormatMembers {
  const x5c = p.stationChain.map((d) => toBase64(d));
  const sameChain =
    p.caChain.length > 0 &&
    p.caChain.length === x5c.length - 1 &&
    p.caChain.every((d, i) => toBase64(d) === x5c[i + 1]);
  const embedded = sameChain ? embedManifest(p.manifestJws, { alg: p.alg, x5c }) : null;
  if (embedded && embedded.payload && typeof embedded.payload === 'object' && !Array.isArray(embedded.payload))
    return {
      schema: RECORD_SCHEMA_V3,
      manifest: { payload: embedded.payload as Record<string, unknown>, signature: embedded.signature },
    };
  return {
    schema: RECORD_SCHEMA,
    chain: p.caChain.map((d) => toPem(d, 'CERTIFICATE')),
    manifest: { jws: p.manifestJws },
  };
}

/** The record's canonical JSON (sorted keys, no whitespace) as UTF-8: the exact signed payload. */
export function encodeRecord(record: ProvisioningRecord): Uint8Array {
  return utf8(canonicalJson(record));
}

export interface SignedRecord {
  /** Canonical JSON of the record (the JWS payload). */
  readonly json: string;
  readonly jws: string;
  /** SHA-256 (hex) of `json` as UTF-8. */
  readonly sha256: string;
}

/**
 * Validate (a record that fails the schema is a bug: INTERNAL) and sign a record with the station key.
 * Signer errors are returned as is.
 */
export async function signRecord(
  signer: Signer,
  stationChain: readonly Uint8Array[],
  record: ProvisioningRecord,
): Promise<Result<SignedRecord>> {
  const v = ProvisioningRecordSchema.safeParse(record);
  if (!v.success)
    return fail('INTERNAL', `provisioning record does not match its schema: ${formatIssues(v.error.issues)}`);
  let json: string;
  try {
    json = canonicalJson(record);
  } catch (e) {
    return fail('INTERNAL', `provisioning record is not plain JSON: ${(e as Error).message}`);
  }
  const payload = utf8(json);
  const jws = await signJws({ signer, payload, header: { typ: RECORD_TYP, x5c: stationChain } });
  if (!jws.ok) return jws;
  return ok({ json, jws: jws.value, sha256: await sha256Hex(payload) });
}

/**
 * Verify a signed record: JWS signature with the x5c station chain validated to `trustAnchors` at
 * clock.now(), typ, and the record schema. INPUT_INVALID on any failure.
 */
export async function verifyRecord(
  jws: string,
  trustAnchors: readonly Uint8Array[],
  clock: Clock,
): Promise<Result<ProvisioningRecord>> {
  const v = await verifyJws(jws, { trustAnchors, clock, typ: RECORD_TYP });
  if (!v.ok) return v;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(v.value.payload));
  } catch {
    return fail('INPUT_INVALID', 'record payload is not JSON');
  }
  const r = ProvisioningRecordSchema.safeParse(json);
  if (!r.success) return fail('INPUT_INVALID', `record: ${formatIssues(r.error.issues)}`);
  return ok(r.data);
}
