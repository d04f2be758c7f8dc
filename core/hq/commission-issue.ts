/**
 * The issuing side of station commissioning (core/hq/commission.ts is the contract), pure core shared by the registry
 * (`registry commission-station`, `POST /v1/stations/commission`) and by the development HQ of `station init`:
 *  - `buildCommissionRequest`: the station's request (CA CSR, the station certificate signed by the CA key under the
 *    station CA's name before the CA certificate exists, the JWS signed by the station key);
 *  - `checkCommissionRequest`: headquarters' checks of a request, one coded error per failure;
 *  - `issueStationCa`: the station CA certificate (pathLen 0, device-identity name constraints, EKU, bounded validity);
 *  - `signCommissionAnswer` / `verifyCommissionAnswer`: the answer, verified with a PINNED certificate only.
 * Every signature goes through an injected Signer (a PKCS#11 key in production). docs/formats.md "Commissioning".
 */
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  type X509Certificate,
} from '@peculiar/x509';
import { bytesEqual, fromBase64Url, sha256Hex, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail, type ErrorCode } from '../errors.js';
import type { Clock, Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { createRootCertificate, issueCaCertificateInfo, issueStationCertificate } from '../pki/ca.js';
import { parseCertificate, verifyCertificateChain } from '../pki/chain.js';
import { createCsr, verifyCsr } from '../pki/csr.js';
import { buf, spkiCurve } from '../pki/ecdsa.js';
import { signJws } from '../pki/jws.js';
import { buildName, ekuOids, type IssuedCertificateInfo, type Issuer } from '../pki/x509.js';
import { zodMessage } from '../zod-message.js';
import {
  COMMISSION_ANSWER_SCHEMA,
  COMMISSION_ANSWER_TYP,
  COMMISSION_REQUEST_SCHEMA,
  COMMISSION_REQUEST_TYP,
  CommissionRequestSchema,
  CommissionAnswerSchema,
  DEFAULT_STATION_CA_EKU,
  MAX_COMMISSION_JWS_CHARS,
  stationCaSubject,
  type CommissionAnswer,
  type CommissionRequest,
  type CommissionTokenInfo,
} from './commission.js';
import { importJwsKey, parseCompactJws, verifyDocument, verifyParsedJws, x5cDer } from './jws.js';

/** How far a station certificate's notBefore may lie in HQ's future (the station's clock runs ahead). */
const NOT_BEFORE_SKEW_MS = 5 * 60_000;

/** What the station builds and keeps: the request JWS and the pieces it is made of. */
export interface BuiltCommissionRequest {
  /** The compact request JWS (what is sent or carried). */
  readonly jws: string;
  /** SHA-256 (hex) of the JWS's ASCII bytes: printed at both ends so people can compare them. */
  readonly requestSha256: string;
  readonly request: CommissionRequest;
  readonly caCsr: Uint8Array;
  readonly stationCertificate: Uint8Array;
}

/**
 * Build the commissioning request (station side): a PKCS#10 request self-signed by the CA key with subject
 * `stationCaSubject(stationId, organization)`; the station certificate issued by the CA key under that name
 * (through a transient self-signed certificate of the CA key that is never stored or sent: only its name and key
 * matter to the station certificate's issuer and AKI); the JWS signed by the station key, x5c = [station cert].
 */
export async function buildCommissionRequest(params: {
  caSigner: Signer;
  stationSigner: Signer;
  stationId: string;
  organization: string;
  token: CommissionTokenInfo;
  requestId: string;
  stationCertDays: number;
  /** EKU of the station certificate (names or OIDs); none by default. */
  stationCertExtendedKeyUsage?: readonly string[];
  clock: Clock;
}): Promise<Result<BuiltCommissionRequest>> {
  const { caSigner, stationSigner, stationId, organization, clock } = params;
  if (bytesEqual(caSigner.publicKeySpki, stationSigner.publicKeySpki))
    return fail('COMMISSION_STATION_CERT_INVALID', 'the station key must not be the station CA key');
  const subject = stationCaSubject(stationId, organization);
  const csr = await createCsr(caSigner, subject);
  if (!csr.ok) return csr;
  const transient = await createRootCertificate({ signer: caSigner, subject, validityDays: 1, clock });
  if (!transient.ok) return transient;
  const stationCert = await issueStationCertificate({
    issuer: { signer: caSigner, certificate: transient.value },
    subjectPublicKeySpki: stationSigner.publicKeySpki,
    stationId,
    organization,
    validityDays: params.stationCertDays,
    ...(params.stationCertExtendedKeyUsage ? { extendedKeyUsage: params.stationCertExtendedKeyUsage } : {}),
    clock,
  });
  if (!stationCert.ok) return stationCert;
  const request: CommissionRequest = {
    schema: COMMISSION_REQUEST_SCHEMA,
    stationId,
    requestId: params.requestId,
    organization,
    caCsr: toBase64Url(csr.value),
    stationCertificate: toBase64Url(stationCert.value),
    token: params.token,
    requestedAt: clock.now().toISOString(),
  };
  const valid = CommissionRequestSchema.safeParse(request);
  if (!valid.success) return fail('COMMISSION_REQUEST_MALFORMED', `commission request: ${zodMessage(valid.error)}`);
  const jws = await signJws({
    signer: stationSigner,
    payload: utf8(canonicalJson(request)),
    header: { typ: COMMISSION_REQUEST_TYP, x5c: [stationCert.value] },
  });
  if (!jws.ok) return jws;
  return ok({
    jws: jws.value,
    requestSha256: await sha256Hex(jws.value),
    request,
    caCsr: csr.value,
    stationCertificate: stationCert.value,
  });
}

/** A request that passed every check of `checkCommissionRequest`. */
export interface VerifiedCommissionRequest {
  readonly jws: string;
  readonly requestSha256: string;
  readonly request: CommissionRequest;
  readonly caCsr: Uint8Array;
  readonly caPublicKeySpki: Uint8Array;
  readonly stationCertificate: Uint8Array;
  readonly stationCertificateSha256: string;
  readonly stationPublicKeySpki: Uint8Array;
  /** The station certificate's EKU OIDs (empty: none). */
  readonly stationCertificateEku: readonly string[];
}

/** Strict base64url (canonical) to bytes, or null. */
function b64urlStrict(s: string): Uint8Array | null {
  const b = fromBase64Url(s);
  return toBase64Url(b) === s ? b : null;
}

function nameDer(n: { toArrayBuffer(): ArrayBuffer }): Uint8Array {
  return new Uint8Array(n.toArrayBuffer());
}

/**
 * Headquarters' checks of a commissioning request (never trusting a key it does not derive itself): size, strict
 * JWS, typ, ES256/ES384, payload schema (strict), x5c = [stationCertificate], signature by that certificate's key,
 * organisation and (with `expectStationId`) station id; the CA CSR's self-signature (proof of possession of the CA
 * key), its subject exactly `stationCaSubject(stationId, organization)`; the station certificate signed by the CSR's
 * key with issuer = that name, subject CN = stationId (O = organisation), CA:false, keyUsage digitalSignature
 * without keyCertSign/cRLSign, no subjectAltName, valid now; CA key ≠ station key; both keys P-256/P-384.
 * Errors: COMMISSION_REQUEST_MALFORMED, COMMISSION_SIGNATURE_INVALID, COMMISSION_SUBJECT_MISMATCH,
 * COMMISSION_CSR_INVALID, COMMISSION_STATION_CERT_INVALID (each message says which check failed).
 */
export async function checkCommissionRequest(
  jws: unknown,
  opts: { expectStationId?: string; organization: string; now: Date },
): Promise<Result<VerifiedCommissionRequest>> {
  const malformed = (m: string) => fail('COMMISSION_REQUEST_MALFORMED', `commission request: ${m}`);
  const parsed = parseCompactJws(jws, 'commission request', MAX_COMMISSION_JWS_CHARS);
  if (!parsed.ok) return malformed(parsed.error.message);
  const { header } = parsed.value;
  if (header.typ !== COMMISSION_REQUEST_TYP) return malformed(`typ is not ${COMMISSION_REQUEST_TYP}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(parsed.value.payload));
  } catch {
    return malformed('the payload is not UTF-8 JSON');
  }
  const p = CommissionRequestSchema.safeParse(value);
  if (!p.success) return malformed(zodMessage(p.error));
  const request = p.data;
  const caCsr = b64urlStrict(request.caCsr);
  const stationCertificate = b64urlStrict(request.stationCertificate);
  if (!caCsr || !stationCertificate) return malformed('caCsr or stationCertificate is not canonical base64url');

  // The signature: by the key of x5c[0], which must be the station certificate of the payload.
  const sigFail = (m: string) => fail('COMMISSION_SIGNATURE_INVALID', `commission request: ${m}`);
  const x5c = x5cDer(header);
  if (!x5c.ok || x5c.value.length !== 1) return sigFail('x5c must be exactly [the station certificate]');
  if (!bytesEqual(x5c.value[0]!, stationCertificate)) return sigFail('x5c[0] is not the stationCertificate');
  const sc = parseCertificate(stationCertificate, 'the station certificate');
  if (!sc.ok) return fail('COMMISSION_STATION_CERT_INVALID', `commission request: ${sc.error}`);
  const stationCert = sc.value;
  const stationPublicKeySpki = new Uint8Array(stationCert.publicKey.rawData);
  if (!spkiCurve(stationPublicKeySpki))
    return fail('COMMISSION_STATION_CERT_INVALID', 'commission request: the station key is not EC P-256 or P-384');
  const key = await importJwsKey(stationPublicKeySpki);
  if (!key) return fail('COMMISSION_STATION_CERT_INVALID', 'commission request: the station key cannot be imported');
  const v = await verifyParsedJws(parsed.value, key, 'commission request');
  if (!v.ok) return sigFail(v.error.message);

  // Who: the organisation headquarters certifies, the station the code or the admin names.
  if (request.organization !== opts.organization)
    return fail(
      'COMMISSION_SUBJECT_MISMATCH',
      `commission request: organisation ${JSON.stringify(request.organization)} is not ${JSON.stringify(opts.organization)}`,
    );
  if (opts.expectStationId !== undefined && request.stationId !== opts.expectStationId)
    return fail(
      'COMMISSION_SUBJECT_MISMATCH',
      `commission request: station ${request.stationId} is not the expected ${opts.expectStationId}`,
    );

  // The CA key: proof of possession and the exact name.
  const csr = await verifyCsr(caCsr);
  if (!csr.ok)
    return fail('COMMISSION_CSR_INVALID', `commission request: CA CSR: ${csr.error.message}`, {
      check: csr.error.code === 'CSR_POP_FAILED' ? 'proof-of-possession' : 'format',
    });
  const caName = buildName(stationCaSubject(request.stationId, request.organization));
  if (!caName.ok) return fail('COMMISSION_SUBJECT_MISMATCH', `commission request: ${caName.error.message}`);
  const csrSubject = nameDer(new Pkcs10CertificateRequest(buf(caCsr)).subjectName);
  if (!bytesEqual(csrSubject, nameDer(caName.value)))
    return fail(
      'COMMISSION_SUBJECT_MISMATCH',
      `commission request: the CA CSR subject ${csr.value.subject} is not the station CA name`,
    );
  const caPublicKeySpki = csr.value.publicKeySpki;

  // The station certificate: issued by the CA key under the CA name, the station profile.
  const certFail = (m: string) =>
    fail('COMMISSION_STATION_CERT_INVALID', `commission request: station certificate: ${m}`);
  if (bytesEqual(caPublicKeySpki, stationPublicKeySpki)) return certFail('its key is the station CA key');
  if (!bytesEqual(nameDer(stationCert.issuerName), nameDer(caName.value)))
    return certFail(`issuer ${stationCert.issuer} is not the station CA name`);
  const stationName = buildName({ commonName: request.stationId, organization: request.organization });
  if (!stationName.ok || !bytesEqual(nameDer(stationCert.subjectName), nameDer(stationName.value)))
    return certFail(`subject ${stationCert.subject} is not CN=${request.stationId}, O=${request.organization}`);
  let signed = false;
  try {
    signed = await stationCert.verify({ publicKey: buf(caPublicKeySpki), signatureOnly: true }, globalThis.crypto);
  } catch {
    signed = false;
  }
  if (!signed) return certFail('not signed by the station CA key of the CSR');
  const profile = stationProfileProblem(stationCert, opts.now);
  if (profile) return certFail(profile);
  const eku = stationCert.getExtension(ExtendedKeyUsageExtension);
  return ok({
    jws: jws as string,
    requestSha256: await sha256Hex(jws as string),
    request,
    caCsr,
    caPublicKeySpki,
    stationCertificate,
    stationCertificateSha256: await sha256Hex(stationCertificate),
    stationPublicKeySpki,
    stationCertificateEku: eku ? eku.usages.map(String) : [],
  });
}

/** The station certificate profile beyond names and signature; a message or null. */
function stationProfileProblem(c: X509Certificate, now: Date): string | null {
  const bc = c.getExtension(BasicConstraintsExtension);
  if (!bc || bc.ca) return 'must carry basicConstraints CA:false';
  const ku = c.getExtension(KeyUsagesExtension);
  if (!ku || (ku.usages & KeyUsageFlags.digitalSignature) === 0) return 'keyUsage must include digitalSignature';
  if ((ku.usages & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0)
    return 'keyUsage must not include keyCertSign or cRLSign';
  if (c.extensions.some((e) => e.type === '2.5.29.17')) return 'must not carry a subjectAltName';
  if (c.notBefore.getTime() > now.getTime() + NOT_BEFORE_SKEW_MS)
    return `not valid before ${c.notBefore.toISOString()} (check the station clock)`;
  if (c.notAfter <= now) return `expired at ${c.notAfter.toISOString()}`;
  return null;
}

/**
 * Issue the station CA certificate for a verified request with headquarters' CA (`hqIssuer`, its key in the
 * registry token): subject `stationCaSubject(...)`, the CSR's key, basicConstraints CA pathLen 0 (critical),
 * keyUsage keyCertSign + cRLSign (critical), name constraints 'device-identities' (critical; core/pki/ca.ts),
 * extendedKeyUsage `extendedKeyUsage` (must include the station certificate's EKUs), validity
 * min(validityDays, the HQ CA's notAfter). CERT_ISSUE_FAILED (or the signer's error) otherwise.
 */
export async function issueStationCa(params: {
  hqIssuer: Issuer;
  verified: VerifiedCommissionRequest;
  validityDays: number;
  extendedKeyUsage?: readonly string[];
  now: Date;
  serialNumber?: Uint8Array;
}): Promise<Result<IssuedCertificateInfo>> {
  const eku = params.extendedKeyUsage ?? DEFAULT_STATION_CA_EKU;
  const caEku = new Set(ekuOids(eku));
  for (const u of params.verified.stationCertificateEku)
    if (!caEku.has(u))
      return fail(
        'COMMISSION_STATION_CERT_INVALID',
        `the station certificate's extendedKeyUsage ${u} is outside the station CA's (${[...caEku].join(', ')})`,
      );
  const { request } = params.verified;
  return issueCaCertificateInfo({
    issuer: params.hqIssuer,
    subjectPublicKeySpki: params.verified.caPublicKeySpki,
    subject: stationCaSubject(request.stationId, request.organization),
    validityDays: params.validityDays,
    pathLength: 0,
    clock: { now: () => params.now, monotonicMs: () => 0 },
    ...(params.serialNumber ? { serialNumber: params.serialNumber } : {}),
    constraints: { nameConstraints: 'device-identities', extendedKeyUsage: eku },
  });
}

/**
 * Sign the answer for a verified request with headquarters' answer key (the registry receipt key, or the dev HQ's
 * root key), x5c = [its certificate]. `hqChain`: HQ CA first, root last. Returns the JWS and the payload.
 */
export async function signCommissionAnswer(params: {
  signer: Signer;
  signerCertificate: Uint8Array;
  registryId: string;
  verified: VerifiedCommissionRequest;
  caCertificate: Uint8Array;
  hqChain: readonly Uint8Array[];
  workOrders: readonly string[];
  now: Date;
}): Promise<Result<{ jws: string; answer: CommissionAnswer }>> {
  const { verified } = params;
  const answer: CommissionAnswer = {
    schema: COMMISSION_ANSWER_SCHEMA,
    registryId: params.registryId,
    stationId: verified.request.stationId,
    requestId: verified.request.requestId,
    requestSha256: verified.requestSha256,
    caCertificate: toBase64Url(params.caCertificate),
    hqChain: params.hqChain.map((d) => toBase64Url(d)),
    stationCertificateSha256: verified.stationCertificateSha256,
    workOrders: [...params.workOrders],
    issuedAt: params.now.toISOString(),
  };
  const valid = CommissionAnswerSchema.safeParse(answer);
  if (!valid.success) return fail('CERT_ISSUE_FAILED', `commission answer: ${zodMessage(valid.error)}`);
  const jws = await signJws({
    signer: params.signer,
    payload: utf8(canonicalJson(answer)),
    header: { typ: COMMISSION_ANSWER_TYP, x5c: [params.signerCertificate] },
  });
  return jws.ok ? ok({ jws: jws.value, answer }) : jws;
}

/** An answer that passed `verifyCommissionAnswer`: the certificates to install. */
export interface VerifiedCommissionAnswer {
  readonly answer: CommissionAnswer;
  readonly caCertificate: Uint8Array;
  /** HQ CA first, root last. */
  readonly hqChain: readonly Uint8Array[];
  readonly hqRootSha256: string;
}

/**
 * Verify a commissioning answer at the station: signed by the key of `pinnedSignerCert` (never a key from the
 * message), typ and schema; for this station, request id and request hash; `stationCertificateSha256` = the station
 * certificate's; the HQ chain ends at a self-signed root (= `hqRootSha256` when given); the CA certificate is a CA
 * with pathLen 0, for `caPublicKeySpki` when given, and the path station certificate → CA certificate → HQ chain
 * validates at `now` (name constraints included). COMMISSION_ANSWER_INVALID with the failed check otherwise.
 */
export async function verifyCommissionAnswer(
  jws: string,
  opts: {
    pinnedSignerCert: Uint8Array;
    stationId: string;
    requestId: string;
    requestSha256: string;
    stationCertificate: Uint8Array;
    caPublicKeySpki?: Uint8Array;
    hqRootSha256?: string;
    now: Date;
  },
): Promise<Result<VerifiedCommissionAnswer>> {
  const bad = (m: string, code: ErrorCode = 'COMMISSION_ANSWER_INVALID') => fail(code, `commission answer: ${m}`);
  if (typeof jws !== 'string') return bad('expected a string');
  const doc = await verifyDocument(
    'commission answer',
    jws,
    COMMISSION_ANSWER_TYP,
    CommissionAnswerSchema,
    opts.pinnedSignerCert,
    MAX_COMMISSION_JWS_CHARS,
  );
  if (!doc.ok)
    return doc.error.code === 'CONFIG_INVALID' ? doc : bad(doc.error.message.replace(/^commission answer: /, ''));
  const answer = doc.value.payload;
  if (answer.stationId !== opts.stationId) return bad(`for station ${answer.stationId}, not ${opts.stationId}`);
  if (answer.requestId !== opts.requestId) return bad(`answers request ${answer.requestId}, not ${opts.requestId}`);
  if (answer.requestSha256 !== opts.requestSha256) return bad('answers another request (SHA-256 differs)');
  if (answer.stationCertificateSha256 !== (await sha256Hex(opts.stationCertificate)))
    return bad('enrolled another station certificate');
  const caCertificate = b64urlStrict(answer.caCertificate);
  const hqChain = answer.hqChain.map(b64urlStrict);
  if (!caCertificate || hqChain.some((c) => c === null)) return bad('a certificate is not canonical base64url');
  const chain = hqChain as Uint8Array[];
  const root = chain[chain.length - 1]!;
  const rootCert = parseCertificate(root, 'the HQ root');
  if (!rootCert.ok) return bad(rootCert.error);
  if (rootCert.value.subject !== rootCert.value.issuer) return bad('the last certificate of hqChain is not a root');
  const hqRootSha256 = await sha256Hex(root);
  if (opts.hqRootSha256 !== undefined && hqRootSha256 !== opts.hqRootSha256)
    return bad(`the HQ root ${hqRootSha256} is not the pinned root ${opts.hqRootSha256}`);
  const ca = parseCertificate(caCertificate, 'the station CA certificate');
  if (!ca.ok) return bad(ca.error);
  const bc = ca.value.getExtension(BasicConstraintsExtension);
  if (!bc?.ca || bc.pathLength !== 0) return bad('the station CA certificate is not a CA with pathLen 0');
  if (opts.caPublicKeySpki && !bytesEqual(new Uint8Array(ca.value.publicKey.rawData), opts.caPublicKeySpki))
    return bad('the station CA certificate is not for the station CA key');
  const path = await verifyCertificateChain(
    [opts.stationCertificate, caCertificate, ...chain.slice(0, -1)],
    [root],
    opts.now,
  );
  if (!path.ok) return bad(`the station certificate does not chain to the HQ root: ${path.error}`);
  if (!bytesEqual(new Uint8Array(path.value.path[1]!.rawData), caCertificate))
    return bad('the station certificate is not issued by the answered CA certificate');
  return ok({ answer, caCertificate, hqChain: chain, hqRootSha256 });
}
