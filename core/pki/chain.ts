/**
 * Certificate path validation (a strict subset of RFC 5280 §6): build leaf -> ... -> trust anchor from
 * the given certificates and check signatures, validity at a time, CA flags, keyCertSign and pathLen
 * on issuers, name constraints (only excluded name types, checked conservatively), and refuse unknown critical
 * extensions. Errors are plain messages; callers map them
 * to their own code (ATTEST_CHAIN_INVALID, INPUT_INVALID). Never throws.
 */
import 'reflect-metadata';
import { AsnConvert } from '@peculiar/asn1-schema';
import { NameConstraints, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, X509Certificate } from '@peculiar/x509';
import { bytesEqual } from '../bytes.js';
import { err, ok, type Result } from '../result.js';
import { buf } from './ecdsa.js';

const MAX_CHAIN = 8;
const MAX_CERT_BYTES = 16 * 1024;

/** Extensions we understand; an unknown extension marked critical fails validation. */
const KNOWN_EXTENSIONS = new Set([
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.32', // certificatePolicies
  '2.5.29.30', // nameConstraints (excluded name types only, see checkNameConstraints)
]);

export interface ValidatedPath {
  /** Leaf first, trust anchor last. */
  readonly path: readonly X509Certificate[];
  readonly leaf: X509Certificate;
}

/** Parse a DER certificate; an error message on failure. */
export function parseCertificate(der: Uint8Array, what: string): Result<X509Certificate, string> {
  if (!(der instanceof Uint8Array) || der.length === 0) return err(`${what} is empty`);
  if (der.length > MAX_CERT_BYTES) return err(`${what} is larger than ${MAX_CERT_BYTES} bytes`);
  try {
    const c = new X509Certificate(buf(der));
    // Touch the lazily parsed fields so malformed content fails here.
    void c.subject;
    void c.issuer;
    void c.notBefore;
    void c.notAfter;
    void c.publicKey.rawData;
    void c.extensions;
    return ok(c);
  } catch (e) {
    return err(`${what} is not a valid DER certificate (${(e as Error).message})`);
  }
}

function nameDer(c: X509Certificate, which: 'subject' | 'issuer'): Uint8Array {
  return new Uint8Array((which === 'subject' ? c.subjectName : c.issuerName).toArrayBuffer());
}

function checkTime(c: X509Certificate, at: Date, what: string): string | null {
  if (at < c.notBefore) return `${what} (${c.subject}) is not valid before ${c.notBefore.toISOString()}`;
  if (at > c.notAfter) return `${what} (${c.subject}) expired at ${c.notAfter.toISOString()}`;
  return null;
}

function checkCritical(c: X509Certificate, what: string): string | null {
  for (const e of c.extensions)
    if (e.critical && !KNOWN_EXTENSIONS.has(e.type)) return `${what} has an unknown critical extension ${e.type}`;
  return null;
}

/** The issuer checks: CA flag, keyCertSign, pathLen against the number of intermediates below it. */
function checkIssuer(c: X509Certificate, below: number, what: string): string | null {
  const bc = c.getExtension(BasicConstraintsExtension);
  if (!bc?.ca) return `${what} (${c.subject}) is not a CA certificate`;
  if (bc.pathLength !== undefined && below > bc.pathLength)
    return `${what} (${c.subject}) path length constraint exceeded`;
  const ku = c.getExtension(KeyUsagesExtension);
  if (ku && (ku.usages & KeyUsageFlags.keyCertSign) === 0) return `${what} (${c.subject}) may not sign certificates`;
  return null;
}

type ExcludedType = 'dNSName' | 'rfc822Name' | 'iPAddress' | 'uniformResourceIdentifier';
const EXCLUDABLE: readonly ExcludedType[] = ['dNSName', 'rfc822Name', 'iPAddress', 'uniformResourceIdentifier'];

/**
 * Name constraints, conservatively: a CA's nameConstraints may only EXCLUDE subtrees of the types dNSName,
 * rfc822Name, iPAddress and URI (headquarters' station CA profile excludes every DNS name, e-mail address and IP
 * address, core/pki/ca.ts). A certificate below it that carries ANY subject alternative name of an excluded type
 * fails, whatever the subtree's value (stricter than RFC 5280, never looser). Permitted subtrees, or excluded
 * subtrees of another type, are refused as unsupported.
 */
function checkNameConstraints(ca: X509Certificate, below: readonly X509Certificate[], what: string): string | null {
  const ext = ca.extensions.find((e) => e.type === '2.5.29.30');
  if (!ext) return null;
  let nc: NameConstraints;
  try {
    nc = AsnConvert.parse(ext.value, NameConstraints);
  } catch {
    return `${what} (${ca.subject}) has malformed name constraints`;
  }
  if (nc.permittedSubtrees?.length) return `${what} (${ca.subject}) has permitted name subtrees (unsupported)`;
  const excluded = new Set<ExcludedType>();
  for (const t of nc.excludedSubtrees ?? []) {
    const type = EXCLUDABLE.find((k) => t.base[k] !== undefined);
    if (!type) return `${what} (${ca.subject}) excludes a name type this verifier does not support`;
    excluded.add(type);
  }
  for (const c of below) {
    const san = c.extensions.find((e) => e.type === '2.5.29.17');
    if (!san) continue;
    let names: SubjectAlternativeName;
    try {
      names = AsnConvert.parse(san.value, SubjectAlternativeName);
    } catch {
      return `certificate ${c.subject} has a malformed subjectAltName`;
    }
    for (const n of names)
      for (const type of excluded)
        if (n[type] !== undefined)
          return `certificate ${c.subject} has a ${type} name that ${what} (${ca.subject}) excludes by its name constraints`;
  }
  return null;
}

async function signedBy(child: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  if (!bytesEqual(nameDer(child, 'issuer'), nameDer(issuer, 'subject'))) return false;
  try {
    return await child.verify({ publicKey: issuer.publicKey, signatureOnly: true }, globalThis.crypto);
  } catch {
    return false;
  }
}

function checkNameConstraintsOnPath(path: readonly X509Certificate[]): string | null {
  for (let i = 1; i < path.length; i++) {
    const r = checkNameConstraints(path[i]!, path.slice(0, i), i === path.length - 1 ? 'trust anchor' : 'issuer');
    if (r) return r;
  }
  return null;
}

/**
 * Validate `chain` (DER, leaf first; may include the anchor itself) against `anchors` at time `at`.
 * Returns the validated path or a message naming the failing certificate.
 */
export async function verifyCertificateChain(
  chain: readonly Uint8Array[],
  anchors: readonly Uint8Array[],
  at: Date,
): Promise<Result<ValidatedPath, string>> {
  if (!Array.isArray(chain) || chain.length === 0) return err('the certificate chain is empty');
  if (chain.length > MAX_CHAIN) return err(`the certificate chain has more than ${MAX_CHAIN} certificates`);
  if (anchors.length === 0) return err('no trust anchors are configured');
  const certs: X509Certificate[] = [];
  for (const [i, der] of chain.entries()) {
    const c = parseCertificate(der, `certificate #${i} of the chain`);
    if (!c.ok) return c;
    certs.push(c.value);
  }
  const roots: X509Certificate[] = [];
  for (const [i, der] of anchors.entries()) {
    const c = parseCertificate(der, `trust anchor #${i}`);
    if (!c.ok) return c;
    roots.push(c.value);
  }
  const leaf = certs[0]!;
  const path: X509Certificate[] = [leaf];
  const used = new Set<number>([0]);
  let current = leaf;
  let what = 'leaf certificate';
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const t = checkTime(current, at, what) ?? checkCritical(current, what);
    if (t) return err(t);
    // An anchor that signed the current certificate ends the path.
    for (const root of roots) {
      if (await signedBy(current, root)) {
        const r = checkIssuer(root, depth, 'trust anchor') ?? checkTime(root, at, 'trust anchor');
        if (r) return err(r);
        path.push(root);
        const nc = checkNameConstraintsOnPath(path);
        return nc ? err(nc) : ok({ path, leaf });
      }
    }
    // The leaf itself may be a trust anchor (pinned certificate).
    if (depth === 0 && roots.some((r) => bytesEqual(new Uint8Array(r.rawData), new Uint8Array(leaf.rawData))))
      return ok({ path, leaf });
    let next: number | null = null;
    for (const [i, c] of certs.entries()) {
      if (used.has(i)) continue;
      if (await signedBy(current, c)) {
        next = i;
        break;
      }
    }
    if (next === null) {
      const selfIssued = bytesEqual(nameDer(current, 'issuer'), nameDer(current, 'subject'));
      return err(
        selfIssued
          ? `the chain ends at ${current.subject}, which is not a trusted root`
          : `no trusted issuer found for ${what} (${current.subject}); issuer ${current.issuer} is unknown or its signature does not verify`,
      );
    }
    const issuer = certs[next]!;
    used.add(next);
    what = `intermediate certificate #${next}`;
    const r = checkIssuer(issuer, depth, what);
    if (r) return err(r);
    path.push(issuer);
    current = issuer;
  }
  return err('the certificate chain is too long');
}
