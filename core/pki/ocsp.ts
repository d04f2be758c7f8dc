/**
 * RFC 6960 OCSP: request parsing and basic responses signed through an injected Signer: the key of
 * `issuerCertificate` (the issuing CA itself, or a delegated responder whose certificate the CA issued with
 * id-kp-OCSPSigning; then pass it in `responderCertificates` too, so clients can check the delegation).
 * Statuses good / revoked (time + reason) / unknown, thisUpdate / nextUpdate, nonce echoed, responderID byKey.
 */
import 'reflect-metadata';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  BasicOCSPResponse,
  CertID,
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
} from '@peculiar/asn1-ocsp';
import { AlgorithmIdentifier, CRLReason, Certificate, Extension } from '@peculiar/asn1-x509';
import { bytesEqual, toHex } from '../bytes.js';
import { fail } from '../errors.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { buf, rawToDerSignature } from './ecdsa.js';

const HASH_OIDS: Readonly<Record<string, 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512'>> = {
  '1.3.14.3.2.26': 'SHA-1',
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
};

/** One certificate asked about. */
export interface OcspQuery {
  /** The CertID exactly as requested (echoed in the response). */
  readonly certId: CertID;
  /** Serial (lower-case hex, no leading zeros). */
  readonly serial: string;
}

export interface ParsedOcspRequest {
  readonly queries: readonly OcspQuery[];
  /** The nonce extension's value (the DER OCTET STRING content), if present. */
  readonly nonce: Uint8Array | null;
}

export const MAX_OCSP_REQUESTS = 16;

/** Parse a DER OCSPRequest (unsigned requests; a signature, if any, is ignored). INPUT_INVALID when malformed. */
export function parseOcspRequest(der: Uint8Array): Result<ParsedOcspRequest> {
  let req: OCSPRequest;
  try {
    req = AsnConvert.parse(buf(der), OCSPRequest);
  } catch (e) {
    return fail('INPUT_INVALID', `malformed OCSP request: ${(e as Error).message}`);
  }
  const list = req.tbsRequest.requestList;
  if (list.length === 0 || list.length > MAX_OCSP_REQUESTS)
    return fail('INPUT_INVALID', `an OCSP request must ask about 1..${MAX_OCSP_REQUESTS} certificates`);
  let nonce: Uint8Array | null = null;
  for (const ext of req.tbsRequest.requestExtensions ?? []) {
    if (ext.extnID !== id_pkix_ocsp_nonce) continue;
    const v = new Uint8Array(ext.extnValue.buffer);
    // The nonce value is itself an OCTET STRING (RFC 8954); echo the inner value as given.
    nonce = v;
    if (v.length > 130) return fail('INPUT_INVALID', 'OCSP nonce too long');
  }
  const queries = list.map((r) => ({
    certId: r.reqCert,
    serial: toHex(new Uint8Array(r.reqCert.serialNumber)).replace(/^0+(?=.)/, ''),
  }));
  return ok({ queries, nonce });
}

/** Does this CertID name `issuerCertificate` (issuer name hash and key hash, with the CertID's hash algorithm)? */
export async function certIdMatchesIssuer(certId: CertID, issuerCertificate: Uint8Array): Promise<boolean> {
  const hash = HASH_OIDS[certId.hashAlgorithm.algorithm];
  if (!hash) return false;
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(buf(issuerCertificate), Certificate);
  } catch {
    return false;
  }
  const nameDer = new Uint8Array(AsnConvert.serialize(cert.tbsCertificate.subject));
  const key = new Uint8Array(cert.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey);
  const nameHash = new Uint8Array(await globalThis.crypto.subtle.digest(hash, buf(nameDer)));
  const keyHash = new Uint8Array(await globalThis.crypto.subtle.digest(hash, buf(key)));
  return (
    bytesEqual(nameHash, new Uint8Array(certId.issuerNameHash.buffer)) &&
    bytesEqual(keyHash, new Uint8Array(certId.issuerKeyHash.buffer))
  );
}

export type OcspCertStatus =
  | { readonly status: 'good' }
  | { readonly status: 'unknown' }
  | { readonly status: 'revoked'; readonly revokedAt: string; readonly reason: number };

export interface OcspAnswer {
  readonly certId: CertID;
  readonly status: OcspCertStatus;
}

export interface OcspResponseParams {
  readonly signer: Signer;
  /** DER certificate of the signer's key (responderID byKey is its key hash). */
  readonly issuerCertificate: Uint8Array;
  /** Certificates included in the response (`certs`): the delegated responder's certificate. */
  readonly responderCertificates?: readonly Uint8Array[];
  readonly producedAt: Date;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly answers: readonly OcspAnswer[];
  readonly nonce: Uint8Array | null;
}

/** Whole seconds (RFC 5280 4.1.2.5.2: GeneralizedTime without fractional seconds). */
const secs = (d: Date): Date => new Date(Math.floor(d.getTime() / 1000) * 1000);

/** Build and sign a successful OCSPResponse (DER) with a BasicOCSPResponse signed by `signer`. */
export async function createOcspResponse(p: OcspResponseParams): Promise<Result<Uint8Array>> {
  let issuer: Certificate;
  try {
    issuer = AsnConvert.parse(buf(p.issuerCertificate), Certificate);
  } catch (e) {
    return fail('CERT_ISSUE_FAILED', `OCSP issuer certificate cannot be parsed: ${(e as Error).message}`);
  }
  const issuerSpki = new Uint8Array(AsnConvert.serialize(issuer.tbsCertificate.subjectPublicKeyInfo));
  if (!bytesEqual(issuerSpki, p.signer.publicKeySpki))
    return fail('CERT_ISSUE_FAILED', 'the OCSP signer key is not the issuer certificate key');
  const keyHash = new Uint8Array(
    await globalThis.crypto.subtle.digest(
      'SHA-1',
      buf(new Uint8Array(issuer.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)),
    ),
  );
  const responses = p.answers.map((a) => {
    const certStatus =
      a.status.status === 'good'
        ? new CertStatus({ good: null })
        : a.status.status === 'unknown'
          ? new CertStatus({ unknown: null })
          : new CertStatus({
              revoked: new RevokedInfo({
                revocationTime: secs(new Date(a.status.revokedAt)),
                revocationReason: new CRLReason(a.status.reason),
              }),
            });
    return new SingleResponse({
      certID: a.certId,
      certStatus,
      thisUpdate: secs(p.thisUpdate),
      nextUpdate: secs(p.nextUpdate),
    });
  });
  const tbs = new ResponseData({
    responderID: new ResponderID({ byKey: new OctetString(keyHash) }),
    producedAt: secs(p.producedAt),
    responses,
    ...(p.nonce
      ? { responseExtensions: [new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: new OctetString(p.nonce) })] }
      : {}),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const sig = await p.signer.sign(tbsDer);
  if (!sig.ok) return sig;
  const basic = new BasicOCSPResponse({
    tbsResponseData: tbs,
    signatureAlgorithm: new AlgorithmIdentifier({
      algorithm: p.signer.algorithm === 'ES256' ? '1.2.840.10045.4.3.2' : '1.2.840.10045.4.3.3',
    }),
    signature: buf(rawToDerSignature(sig.value)).buffer,
    ...(p.responderCertificates?.length
      ? { certs: p.responderCertificates.map((d) => AsnConvert.parse(buf(d), Certificate)) }
      : {}),
  });
  const resp = new OCSPResponse({
    responseStatus: OCSPResponseStatus.successful,
    responseBytes: new ResponseBytes({
      responseType: id_pkix_ocsp_basic,
      response: new OctetString(AsnConvert.serialize(basic)),
    }),
  });
  return ok(new Uint8Array(AsnConvert.serialize(resp)));
}

/** An unsigned error OCSPResponse (malformedRequest, internalError, tryLater, unauthorized). */
export function ocspErrorResponse(
  status: 'malformedRequest' | 'internalError' | 'tryLater' | 'unauthorized',
): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new OCSPResponse({ responseStatus: OCSPResponseStatus[status] })));
}
