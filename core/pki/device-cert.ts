/**
 * Device certificates from a board profile (resources/boards/*.json "certificate" block), encoded directly in DER
 * (./tbs.ts: the bytes @peculiar/x509 wrote before, at a fraction of the cost) and signed through the CA Signer.
 * Template variables are validated and set as attribute values, never concatenated into a DN.
 */
import { z } from 'zod';
import { fail } from '../errors.js';
import type { Clock } from '../ports.js';
import { parseCertificate } from './chain.js';
import { ok, type Result } from '../result.js';
import { RevocationUrlsSchema, type RevocationUrls } from './revocation-urls.js';
import { curveSize, spkiCurve } from './ecdsa.js';
import { digest } from '../bytes.js';
import { name as encodeName, extension, values } from './tbs.js';
import {
  DAY_MS,
  OID_RE,
  SKEW_MS,
  checkSerial,
  checkSubjectKey,
  ekuOids,
  issueEncoded,
  issuerParts,
  loadIssuer,
  nameItems,
  randomSerial,
  type IssuedCertificateInfo,
  type Issuer,
} from './x509.js';

export type { IssuedCertificateInfo, Issuer } from './x509.js';

/** Variables available to device certificate templates. */
export interface DeviceCertificateVars {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly model: string;
  readonly workOrder: string;
}

const VAR_RULES: Record<keyof DeviceCertificateVars, { re: RegExp; what: string }> = {
  serialNumber: { re: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, what: '1..64 of A-Z a-z 0-9 . _ : -' },
  chipId: { re: /^[0-9a-f]{8,64}$/, what: '8..64 lower-case hex chars' },
  model: { re: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, what: '1..64 of A-Z a-z 0-9 . _ : -' },
  workOrder: { re: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, what: '1..64 of A-Z a-z 0-9 . _ -' },
};

/**
 * Substitute {serialNumber}, {chipId}, {model}, {workOrder} in a template. Every variable is validated
 * against a strict character set first (no DN separators, quotes, spaces or control characters);
 * unknown placeholders and stray braces are errors (CERT_ISSUE_FAILED).
 */
export function renderTemplate(template: string, vars: DeviceCertificateVars): Result<string> {
  for (const k of Object.keys(VAR_RULES) as Array<keyof DeviceCertificateVars>) {
    const v = vars[k];
    if (typeof v !== 'string' || !VAR_RULES[k].re.test(v))
      return fail('CERT_ISSUE_FAILED', `certificate variable ${k}: expected ${VAR_RULES[k].what}`, { variable: k });
  }
  let bad: string | null = null;
  const out = template.replace(/\{([^{}]*)\}/g, (m, name: string) => {
    if (Object.prototype.hasOwnProperty.call(VAR_RULES, name)) return vars[name as keyof DeviceCertificateVars];
    bad ??= m;
    return m;
  });
  if (bad !== null) return fail('CERT_ISSUE_FAILED', `certificate template: unknown placeholder ${bad}`, { template });
  if (/[{}]/.test(out)) return fail('CERT_ISSUE_FAILED', 'certificate template: unbalanced braces', { template });
  return ok(out);
}

const TEMPLATE = z.string().min(1).max(128);

/**
 * The `certificate` block of a board profile (resources/boards/*.json). Exported so core/provisioning/profiles.ts
 * can embed it. `extendedKeyUsage` entries are names (clientAuth, serverAuth) or dotted OIDs.
 */
export const DeviceCertificateProfileSchema = z
  .object({
    subject: z
      .object({
        commonName: TEMPLATE,
        organization: TEMPLATE.optional(),
        serialNumber: TEMPLATE.optional(),
      })
      .strict(),
    sanUri: TEMPLATE.optional(),
    validityDays: z.number().int().min(1).max(36500),
    policyOid: z.string().regex(OID_RE, 'expected a dotted OID').optional(),
    extendedKeyUsage: z
      .array(
        z.union([
          z.enum(['clientAuth', 'serverAuth']),
          z.string().regex(OID_RE, 'expected clientAuth, serverAuth or an OID'),
        ]),
      )
      .optional(),
  })
  .strict();

export type DeviceCertificateProfile = z.infer<typeof DeviceCertificateProfileSchema>;

/**
 * A registry policy's override of a board profile's certificate block (policy `profileOverrides`, keyed by
 * board profile id). Only the issuance parameters a security officer tunes centrally; the subject templates
 * other than the organisation stay with the profile.
 */
export const CertificateProfileOverrideSchema = z
  .object({
    validityDays: z.number().int().min(1).max(36500).optional(),
    organization: TEMPLATE.optional(),
    policyOid: z.string().regex(OID_RE, 'expected a dotted OID').optional(),
    extendedKeyUsage: DeviceCertificateProfileSchema.shape.extendedKeyUsage,
  })
  .strict();
export type CertificateProfileOverride = z.infer<typeof CertificateProfileOverrideSchema>;

/** A board profile id (core/provisioning/profiles.ts `id`, the keys of the policy's certificate profile overrides). */
export const BoardProfileIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and "-" (max 63)');

/** Board profile id -> override. */
export const ProfileOverridesSchema = z.record(BoardProfileIdSchema, CertificateProfileOverrideSchema);

// The revocation address schemas live in ./revocation-urls.ts (the station configuration reads them without X.509).
export { RevocationUrlSchema, RevocationUrlsSchema, type RevocationUrls } from './revocation-urls.js';

/**
 * The registry policy's `revocationUrls`: like RevocationUrls, each URL may hold `{stationId}` (one CRL per
 * station's issuing CA), replaced by the station's id (`renderRevocationUrls`).
 */
export const RevocationUrlTemplatesSchema = z
  .object({
    crl: z
      .string()
      .max(512)
      .regex(/^https?:\/\/[A-Za-z0-9._~:/?#@!$&'()*+,;=%{}-]+$/)
      .optional(),
    ocsp: z
      .string()
      .max(512)
      .regex(/^https?:\/\/[A-Za-z0-9._~:/?#@!$&'()*+,;=%{}-]+$/)
      .optional(),
  })
  .strict();
export type RevocationUrlTemplates = z.infer<typeof RevocationUrlTemplatesSchema>;

/** The policy's URL templates for `stationId` (CERT_ISSUE_FAILED-free: an invalid result is dropped, null). */
export function renderRevocationUrls(t: RevocationUrlTemplates, stationId: string): RevocationUrls | null {
  const r = RevocationUrlsSchema.safeParse(
    Object.fromEntries(
      Object.entries(t).map(([k, v]) => [k, v.replaceAll('{stationId}', encodeURIComponent(stationId))]),
    ),
  );
  return r.success ? r.data : null;
}

/** The profile's certificate block with a policy override applied (the result is validated again at issuance). */
export function applyProfileOverride(
  profile: DeviceCertificateProfile,
  override: CertificateProfileOverride | undefined,
): DeviceCertificateProfile {
  if (!override) return profile;
  const { organization, ...rest } = override;
  return {
    ...profile,
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    subject: organization !== undefined ? { ...profile.subject, organization } : profile.subject,
  };
}

const URI_RE = /^[a-z][a-z0-9+.-]*:[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$/;

/** A device certificate as issued: `cappedAt` is set when its notAfter was cut to the issuing CA's notAfter. */
export interface IssuedDeviceCertificate extends IssuedCertificateInfo {
  /** The issuing CA's notAfter, when the profile's validity would have outlived it (else absent). */
  readonly cappedAt?: string;
}

/**
 * Issue a device certificate from a board profile. Template variables are validated and set as
 * attribute values (never concatenated into a DN string). The certificate never outlives its issuing CA:
 * notAfter is min(now + validityDays, the CA's notAfter) (`cappedAt` says when it was cut). With
 * `revocationUrls`, it carries a CRL distribution point and an OCSP address (authorityInfoAccess).
 * A Signer error is returned as is (e.g. HSM_SESSION_LOST); every other problem is CERT_ISSUE_FAILED.
 */
export async function issueDeviceCertificate(params: {
  ca: Issuer;
  publicKeySpki: Uint8Array;
  profile: DeviceCertificateProfile;
  vars: DeviceCertificateVars;
  clock: Clock;
  serialNumber?: Uint8Array;
  revocationUrls?: RevocationUrls;
}): Promise<Result<IssuedDeviceCertificate>> {
  const urls = params.revocationUrls === undefined ? null : RevocationUrlsSchema.safeParse(params.revocationUrls);
  if (urls && !urls.success)
    return fail(
      'CERT_ISSUE_FAILED',
      `revocation URLs invalid: ${urls.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const prof = DeviceCertificateProfileSchema.safeParse(params.profile);
  if (!prof.success)
    return fail(
      'CERT_ISSUE_FAILED',
      `certificate profile invalid: ${prof.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const profile = prof.data;
  const key = checkSubjectKey(params.publicKeySpki);
  if (!key.ok) return key;
  const cn = renderTemplate(profile.subject.commonName, params.vars);
  if (!cn.ok) return cn;
  let org: string | undefined;
  if (profile.subject.organization !== undefined) {
    const r = renderTemplate(profile.subject.organization, params.vars);
    if (!r.ok) return r;
    org = r.value;
  }
  let sn: string | undefined;
  if (profile.subject.serialNumber !== undefined) {
    const r = renderTemplate(profile.subject.serialNumber, params.vars);
    if (!r.ok) return r;
    sn = r.value;
  }
  let uri: string | undefined;
  if (profile.sanUri !== undefined) {
    const r = renderTemplate(profile.sanUri, params.vars);
    if (!r.ok) return r;
    if (!URI_RE.test(r.value) || r.value.length > 255)
      return fail('CERT_ISSUE_FAILED', `sanUri: ${JSON.stringify(r.value)} is not a valid URI`);
    uri = r.value;
  }
  const name = nameItems({ commonName: cn.value, organization: org, serialNumber: sn });
  if (!name.ok) return name;
  const serial = checkSerial(params.serialNumber ?? randomSerial());
  if (!serial.ok) return serial;
  const nowDate = params.clock.now();
  const issuerCert = loadIssuer(params.ca, nowDate, false);
  if (!issuerCert.ok) return issuerCert;
  const now = nowDate.getTime();
  const eku = profile.extendedKeyUsage ?? [];
  const wanted = now + profile.validityDays * DAY_MS;
  const caEnd = issuerCert.value.notAfter.getTime();
  const crl = urls?.data.crl;
  const ocsp = urls?.data.ocsp;
  const ca = issuerParts(params.ca.certificate);
  const issuerName = ca?.subject ?? new Uint8Array(issuerCert.value.subjectName.toArrayBuffer());
  const authorityKeyId = ca?.subjectKeyId ?? (await keyIdentifier(params.ca.signer.publicKeySpki));
  const issued = await issueEncoded(params.ca.signer, {
    serial: serial.value,
    issuer: issuerName,
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(Math.min(wanted, caEnd)),
    subject: encodeName(name.value),
    spki: params.publicKeySpki,
    // The device profile (docs/formats.md), in this order.
    extensions: [
      extension(OID.basicConstraints, true, values.endEntity()),
      extension(OID.keyUsage, true, values.digitalSignature()),
      ...(eku.length ? [extension(OID.extKeyUsage, false, values.extendedKeyUsage(ekuOids(eku)))] : []),
      ...(uri ? [extension(OID.subjectAltName, false, values.subjectAltNameUri(uri))] : []),
      ...(profile.policyOid
        ? [extension(OID.certificatePolicies, false, values.certificatePolicy(profile.policyOid))]
        : []),
      ...(crl ? [extension(OID.crlDistributionPoints, false, values.crlDistributionPoint(crl))] : []),
      ...(ocsp ? [extension(OID.authorityInfoAccess, false, values.ocsp(ocsp))] : []),
      extension(
        OID.subjectKeyIdentifier,
        false,
        values.subjectKeyIdentifier(await keyIdentifier(params.publicKeySpki)),
      ),
      extension(OID.authorityKeyIdentifier, false, values.authorityKeyIdentifier(authorityKeyId)),
    ],
  });
  if (!issued.ok || wanted <= caEnd) return issued;
  return ok({ ...issued.value, cappedAt: issuerCert.value.notAfter.toISOString() });
}

/** Extension OIDs of the device profile. */
const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  certificatePolicies: '2.5.29.32',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits (an EC key's point, checkSubjectKey). */
async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  const point = spki.subarray(spki.length - (1 + 2 * curveSize(spkiCurve(spki) ?? 'P-256')));
  return digest('SHA-1', point);
}

/**
 * The issuing CA's notAfter when a device certificate of `validityDays` issued at `now` would be capped to it
 * (issueDeviceCertificate), else null: the station warns at start-up (time for a new issuing CA).
 */
export function lifetimeCappedAt(ca: Pick<Issuer, 'certificate'>, validityDays: number, now: Date): string | null {
  const cert = parseCertificate(ca.certificate, 'issuing CA certificate');
  if (!cert.ok) return null;
  return now.getTime() + validityDays * DAY_MS > cert.value.notAfter.getTime()
    ? cert.value.notAfter.toISOString()
    : null;
}
