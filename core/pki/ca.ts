/**
 * Station PKI certificates: the self-signed root, the issuing (station) CA and the station's own
 * signing certificate. All signatures go through a Signer (an HSM key in production).
 * Profiles are documented in docs/formats.md.
 */
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509Certificate,
} from '@peculiar/x509';
import { bytesEqual } from '../bytes.js';
import { fail } from '../errors.js';
import type { Clock, Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import {
  DAY_MS,
  OID_RE,
  SKEW_MS,
  buildName,
  checkSerial,
  checkSubjectKey,
  checkValidityDays,
  ekuOids,
  issue,
  keyIdExtensions,
  loadIssuer,
  randomSerial,
  type IssuedCertificateInfo,
  type Issuer,
  type SimpleSubject,
} from './x509.js';
import { buf } from './ecdsa.js';

export type { Issuer, SimpleSubject } from './x509.js';

async function derOnly(r: Promise<Result<IssuedCertificateInfo>>): Promise<Result<Uint8Array>> {
  const v = await r;
  return v.ok ? ok(v.value.der) : v;
}

/** Create a self-signed root CA certificate for the signer's key. */
export async function createRootCertificate(params: {
  signer: Signer;
  subject: SimpleSubject;
  validityDays: number;
  clock: Clock;
  serialNumber?: Uint8Array;
}): Promise<Result<Uint8Array>> {
  const days = checkValidityDays(params.validityDays);
  if (!days.ok) return days;
  const name = buildName(params.subject);
  if (!name.ok) return name;
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const now = params.clock.now().getTime();
  const spki = params.signer.publicKeySpki;
  return derOnly(
    issue({
      signer: params.signer,
      subject: name.value,
      subjectSpki: spki,
      notBefore: new Date(now - SKEW_MS),
      notAfter: new Date(now + days.value * DAY_MS),
      serial: serial.value,
      extensions: async (crypto) => [
        new BasicConstraintsExtension(true, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        ...(await keyIdExtensions(crypto, spki, undefined, spki)),
      ],
    }),
  );
}

/** id-ce-nameConstraints (RFC 5280 4.2.1.10). */
export const OID_NAME_CONSTRAINTS = '2.5.29.30';

/**
 * The name constraints of a station CA certified by headquarters ("device identities"): excludedSubtrees of every
 * dNSName (the empty name, which matches all, RFC 5280 4.2.1.10) and every iPAddress (0.0.0.0/0 and ::/0), no
 * permittedSubtrees. Device identities are subject names and URN SANs (resources/boards), which these leave
 * untouched; a stolen station CA cannot mint a certificate for any host name or address. (RFC 5280 has no
 * "every mailbox" rfc822Name subtree; e-mail certificates are stopped by the CA's EKU, which has no emailProtection.)
 * DER, hand-encoded (the ASN.1 library cannot encode an address/mask iPAddress subtree).
 */
export function deviceIdentityNameConstraintsDer(): Uint8Array {
  const subtree = (generalName: number[]): number[] => [0x30, generalName.length, ...generalName];
  const subtrees = [
    ...subtree([0x82, 0x00]), // dNSName ""
    ...subtree([0x87, 0x08, ...new Array<number>(8).fill(0)]), // iPAddress 0.0.0.0/0
    ...subtree([0x87, 0x20, ...new Array<number>(32).fill(0)]), // iPAddress ::/0
  ];
  const excluded = [0xa1, subtrees.length, ...subtrees];
  return new Uint8Array([0x30, excluded.length, ...excluded]);
}

/** What an issuing CA certificate may be constrained to (headquarters' station CA profile, docs/formats.md). */
export interface CaConstraints {
  /** 'device-identities': `deviceIdentityNameConstraintsDer()` as a critical nameConstraints extension. */
  readonly nameConstraints?: 'device-identities';
  /** extendedKeyUsage of the CA certificate (names clientAuth/serverAuth/OCSPSigning or OIDs), non-critical. */
  readonly extendedKeyUsage?: readonly string[];
}

/** What an intermediate (issuing) CA certificate is issued from. */
export interface CaCertificateParams {
  readonly issuer: Issuer;
  readonly subjectPublicKeySpki: Uint8Array;
  readonly subject: SimpleSubject;
  readonly validityDays: number;
  /** Default 0. */
  readonly pathLength?: number;
  readonly clock: Clock;
  readonly serialNumber?: Uint8Array;
  readonly constraints?: CaConstraints;
}

/**
 * Issue an intermediate (issuing) CA certificate, e.g. the station CA under the factory root or headquarters' CA:
 * basicConstraints CA pathLen (critical), keyUsage keyCertSign|cRLSign (critical), SKI, AKI, and the optional
 * `constraints`. notAfter is never beyond the issuer's notAfter. The DER with its serial, hash and validity.
 */
export async function issueCaCertificateInfo(params: CaCertificateParams): Promise<Result<IssuedCertificateInfo>> {
  const days = checkValidityDays(params.validityDays);
  if (!days.ok) return days;
  const pathLength = params.pathLength ?? 0;
  if (!Number.isInteger(pathLength) || pathLength < 0 || pathLength > 8)
    return fail('CERT_ISSUE_FAILED', 'pathLength must be an integer in 0..8');
  const key = checkSubjectKey(params.subjectPublicKeySpki);
  if (!key.ok) return key;
  const name = buildName(params.subject);
  if (!name.ok) return name;
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const eku = params.constraints?.extendedKeyUsage;
  if (eku !== undefined) {
    if (eku.length === 0) return fail('CERT_ISSUE_FAILED', 'extendedKeyUsage of a CA must not be empty when given');
    for (const u of eku)
      if (!['clientAuth', 'serverAuth', 'OCSPSigning'].includes(u) && !OID_RE.test(u))
        return fail(
          'CERT_ISSUE_FAILED',
          `extendedKeyUsage: ${u} is neither clientAuth, serverAuth, OCSPSigning nor an OID`,
        );
  }
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.issuer, nowDate, true);
  if (!issuerCert.ok) return issuerCert;
  const now = nowDate.getTime();
  return issue({
    signer: params.issuer.signer,
    issuerCert: issuerCert.value,
    subject: name.value,
    subjectSpki: params.subjectPublicKeySpki,
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(Math.min(now + days.value * DAY_MS, issuerCert.value.notAfter.getTime())),
    serial: serial.value,
    extensions: async (crypto) => [
      new BasicConstraintsExtension(true, pathLength, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      ...(params.constraints?.nameConstraints === 'device-identities'
        ? [new Extension(OID_NAME_CONSTRAINTS, true, deviceIdentityNameConstraintsDer())]
        : []),
      ...(eku ? [new ExtendedKeyUsageExtension(ekuOids(eku), false)] : []),
      ...(await keyIdExtensions(
        crypto,
        params.subjectPublicKeySpki,
        issuerCert.value,
        params.issuer.signer.publicKeySpki,
      )),
    ],
  });
}

/** `issueCaCertificateInfo` returning the DER only (the station's own root -> station CA path). */
export async function issueCaCertificate(params: CaCertificateParams): Promise<Result<Uint8Array>> {
  return derOnly(issueCaCertificateInfo(params));
}

/**
 * Issue the certificate of the station's own signing key (records, manifests): subject CN = station id,
 * keyUsage digitalSignature (critical), CA:false, optional EKU (names or OIDs).
 */
export async function issueStationCertificate(params: {
  issuer: Issuer;
  subjectPublicKeySpki: Uint8Array;
  stationId: string;
  organization?: string;
  validityDays: number;
  extendedKeyUsage?: readonly string[];
  clock: Clock;
  serialNumber?: Uint8Array;
}): Promise<Result<Uint8Array>> {
  const days = checkValidityDays(params.validityDays);
  if (!days.ok) return days;
  const key = checkSubjectKey(params.subjectPublicKeySpki);
  if (!key.ok) return key;
  const name = buildName({ commonName: params.stationId, organization: params.organization });
  if (!name.ok) return name;
  const eku = params.extendedKeyUsage ?? [];
  for (const u of eku)
    if (u !== 'clientAuth' && u !== 'serverAuth' && !OID_RE.test(u))
      return fail('CERT_ISSUE_FAILED', `extendedKeyUsage: ${u} is neither clientAuth, serverAuth nor an OID`);
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.issuer, nowDate, false);
  if (!issuerCert.ok) return issuerCert;
  const now = nowDate.getTime();
  return derOnly(
    issue({
      signer: params.issuer.signer,
      issuerCert: issuerCert.value,
      subject: name.value,
      subjectSpki: params.subjectPublicKeySpki,
      notBefore: new Date(now - SKEW_MS),
      notAfter: new Date(now + days.value * DAY_MS),
      serial: serial.value,
      extensions: async (crypto) => [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        ...(eku.length ? [new ExtendedKeyUsageExtension(ekuOids(eku), false)] : []),
        ...(await keyIdExtensions(
          crypto,
          params.subjectPublicKeySpki,
          issuerCert.value,
          params.issuer.signer.publicKeySpki,
        )),
      ],
    }),
  );
}

/** id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): relying parties need not check the responder certificate's status. */
export const OID_OCSP_NOCHECK = '1.3.6.1.5.5.7.48.1.5';

/**
 * Issue headquarters' delegated revocation signer certificate (docs/lifecycle.md "Delegated revocation signer"):
 * the subject is the issuing CA's own subject name (so a CRL it signs names the CA as its issuer, a direct CRL
 * in the RFC 5280 sense signed with another key, which `openssl verify -crl_check -extended_crl` accepts),
 * CA:false (critical), keyUsage digitalSignature + cRLSign (critical), extendedKeyUsage id-kp-OCSPSigning, OCSP
 * no-check, key identifiers. Never valid beyond the issuing CA.
 */
export async function issueRevocationSignerCertificate(params: {
  issuer: Issuer;
  subjectPublicKeySpki: Uint8Array;
  validityDays: number;
  clock: Clock;
  serialNumber?: Uint8Array;
}): Promise<Result<IssuedCertificateInfo>> {
  const days = checkValidityDays(params.validityDays);
  if (!days.ok) return days;
  const key = checkSubjectKey(params.subjectPublicKeySpki);
  if (!key.ok) return key;
  if (bytesEqual(params.subjectPublicKeySpki, params.issuer.signer.publicKeySpki))
    return fail('CERT_ISSUE_FAILED', 'the revocation signer key must not be the issuing CA key');
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.issuer, nowDate, false);
  if (!issuerCert.ok) return issuerCert;
  const now = nowDate.getTime();
  return issue({
    signer: params.issuer.signer,
    issuerCert: issuerCert.value,
    subject: issuerCert.value.subjectName,
    subjectSpki: params.subjectPublicKeySpki,
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(Math.min(now + days.value * DAY_MS, issuerCert.value.notAfter.getTime())),
    serial: serial.value,
    extensions: async (crypto) => [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.cRLSign, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.ocspSigning], false),
      new Extension(OID_OCSP_NOCHECK, false, new Uint8Array([0x05, 0x00])),
      ...(await keyIdExtensions(
        crypto,
        params.subjectPublicKeySpki,
        issuerCert.value,
        params.issuer.signer.publicKeySpki,
      )),
    ],
  });
}

/**
 * Issue, with headquarters' CA, a CRL-signer certificate for a station's delegated revocation signer key: subject =
 * the station CA's name (`stationCaCertificate`), issuer = the HQ CA, CA:false (critical), keyUsage cRLSign
 * (critical), no EKU, key identifiers; never valid beyond the station CA or the HQ CA. Relying parties give it to
 * `openssl verify -crl_check_all -extended_crl` instead of the station-issued signer certificate: its own status then
 * comes from the HQ CRL (signed by its issuer, no nested CRL path), which OpenSSL accepts (docs/lifecycle.md "What
 * relying parties run"). OCSP keeps the station-issued certificate (RFC 6960 4.2.2.2 wants the issuing CA's).
 */
export async function issueHqCrlSignerCertificate(params: {
  hqIssuer: Issuer;
  stationCaCertificate: Uint8Array;
  subjectPublicKeySpki: Uint8Array;
  clock: Clock;
  serialNumber?: Uint8Array;
}): Promise<Result<IssuedCertificateInfo>> {
  const key = checkSubjectKey(params.subjectPublicKeySpki);
  if (!key.ok) return key;
  let stationCa: X509Certificate;
  try {
    stationCa = new X509Certificate(buf(params.stationCaCertificate));
  } catch (e) {
    return fail('CERT_ISSUE_FAILED', `station CA certificate cannot be parsed: ${(e as Error).message}`);
  }
  if (bytesEqual(params.subjectPublicKeySpki, new Uint8Array(stationCa.publicKey.rawData)))
    return fail('CERT_ISSUE_FAILED', 'the CRL signer key must not be the station CA key');
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.hqIssuer, nowDate, false);
  if (!issuerCert.ok) return issuerCert;
  const now = nowDate.getTime();
  return issue({
    signer: params.hqIssuer.signer,
    issuerCert: issuerCert.value,
    subject: stationCa.subjectName,
    subjectSpki: params.subjectPublicKeySpki,
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(Math.min(stationCa.notAfter.getTime(), issuerCert.value.notAfter.getTime())),
    serial: serial.value,
    extensions: async (crypto) => [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.cRLSign, true),
      ...(await keyIdExtensions(
        crypto,
        params.subjectPublicKeySpki,
        issuerCert.value,
        params.hqIssuer.signer.publicKeySpki,
      )),
    ],
  });
}

/**
 * Check a revocation signer certificate the way headquarters does before using it: issued (signature) by
 * `caDer`, same subject name as the CA, CA:false, keyUsage exactly digitalSignature + cRLSign, EKU
 * id-kp-OCSPSigning, valid at `now`, key `expectedSpki`. CERT_ISSUE_FAILED with the reason otherwise.
 */
export async function checkRevocationSignerCertificate(
  der: Uint8Array,
  caDer: Uint8Array,
  expectedSpki: Uint8Array,
  now: Date,
): Promise<Result<X509Certificate>> {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(buf(der));
    ca = new X509Certificate(buf(caDer));
  } catch (e) {
    return fail('CERT_ISSUE_FAILED', `revocation signer certificate cannot be parsed: ${(e as Error).message}`);
  }
  const bad = (why: string) => fail('CERT_ISSUE_FAILED', `revocation signer certificate: ${why}`);
  if (!bytesEqual(new Uint8Array(cert.publicKey.rawData), expectedSpki)) return bad('not for the requested key');
  if (cert.subject !== ca.subject || cert.issuer !== ca.subject)
    return bad('subject and issuer must both be the issuing CA name');
  let signed = false;
  try {
    signed = await cert.verify({ publicKey: ca, signatureOnly: true }, globalThis.crypto);
  } catch {
    signed = false;
  }
  if (!signed) return bad('not signed by the issuing CA');
  if (cert.getExtension(BasicConstraintsExtension)?.ca !== false) return bad('must be CA:false');
  const ku = cert.getExtension(KeyUsagesExtension);
  if (ku?.usages !== (KeyUsageFlags.digitalSignature | KeyUsageFlags.cRLSign))
    return bad('keyUsage must be digitalSignature + cRLSign');
  const eku = cert.getExtension(ExtendedKeyUsageExtension);
  if (!eku || eku.usages.length !== 1 || eku.usages[0] !== ExtendedKeyUsage.ocspSigning)
    return bad('extendedKeyUsage must be id-kp-OCSPSigning');
  if (now < cert.notBefore || now > cert.notAfter) return bad(`not valid at ${now.toISOString()}`);
  return ok(cert);
}
