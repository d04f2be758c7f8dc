/**
 * Station PKI certificates: the self-signed root, the issuing (station) CA and the station's own
 * signing certificate. All signatures go through a Signer (an HSM key in production).
 * Profiles are documented in docs/formats.md.
 */
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
} from '@peculiar/x509';
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

/** Issue an intermediate (issuing) CA certificate, e.g. the station CA under the factory root. */
export async function issueCaCertificate(params: {
  issuer: Issuer;
  subjectPublicKeySpki: Uint8Array;
  subject: SimpleSubject;
  validityDays: number;
  pathLength?: number;
  clock: Clock;
  serialNumber?: Uint8Array;
}): Promise<Result<Uint8Array>> {
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
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.issuer, nowDate, true);
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
        new BasicConstraintsExtension(true, pathLength, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
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
