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
export const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
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

/** The name types a CA's nameConstraints may exclude (see excludedTypes). */
export type ExcludedType = 'dNSName' | 'rfc822Name' | 'iPAddress' | 'uniformResourceIdentifier';
const EXCLUDABLE: readonly ExcludedType[] = ['dNSName', 'rfc822Name', 'iPAddress', 'uniformResourceIdentifier'];

/**
 * Name constraints, conservatively: a CA's nameConstraints may only EXCLUDE subtrees of the types dNSName,
 * rfc822Name, iPAddress and URI (headquarters' station CA profile excludes every DNS name, e-mail address and IP
 * address, core/pki/ca.ts). A certificate below it that carries ANY subject alternative name of an excluded type
 * fails, whatever the subtree's value (stricter than RFC 5280, never looser). Permitted subtrees, or excluded
 * subtrees of another type, are refused as unsupported. This part: the types `ca` excludes (empty: no constraints).
 */
function excludedTypes(ca: X509Certificate, what: string): Result<Set<ExcludedType>, string> {
  const excluded = new Set<ExcludedType>();
  const ext = ca.extensions.find((e) => e.type === '2.5.29.30');
  if (!ext) return ok(excluded);
  let nc: NameConstraints;
  try {
    nc = AsnConvert.parse(ext.value, NameConstraints);
  } catch {
    return err(`${what} (${ca.subject}) has malformed name constraints`);
  }
  if (nc.permittedSubtrees?.length) return err(`${what} (${ca.subject}) has permitted name subtrees (unsupported)`);
  for (const t of nc.excludedSubtrees ?? []) {
    const type = EXCLUDABLE.find((k) => t.base[k] !== undefined);
    if (!type) return err(`${what} (${ca.subject}) excludes a name type this verifier does not support`);
    excluded.add(type);
  }
  return ok(excluded);
}

/** The name constraint check of one certificate `c` below `ca` (see excludedTypes): a message, or null. */
function excludedNameIn(
  c: X509Certificate,
  excluded: ReadonlySet<ExcludedType>,
  ca: X509Certificate,
  what: string,
): string | null {
  if (excluded.size === 0) return null;
  const san = c.extensions.find((e) => e.type === '2.5.29.17');
  if (!san) return null;
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
  return null;
}

function checkNameConstraints(ca: X509Certificate, below: readonly X509Certificate[], what: string): string | null {
  const excluded = excludedTypes(ca, what);
  if (!excluded.ok) return excluded.error;
  for (const c of below) {
    const r = excludedNameIn(c, excluded.value, ca, what);
    if (r) return r;
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

/** The label of path[i] in name constraint messages. */
function caLabel(path: readonly unknown[], i: number): string {
  return i === path.length - 1 ? 'trust anchor' : 'issuer';
}

function checkNameConstraintsOnPath(path: readonly X509Certificate[]): string | null {
  for (let i = 1; i < path.length; i++) {
    const r = checkNameConstraints(path[i]!, path.slice(0, i), caLabel(path, i));
    if (r) return r;
  }
  return null;
}

/**
 * A path validated without a clock and without the leaf's names (chain-cache.ts): what is left to check for a
 * given leaf at a given time are the validity windows of path[1..] (in path order) and, for each CA path[i]
 * (i >= 1), the name types it excludes (excluded[i - 1]).
 */
export interface StructuralPath extends ValidatedPath {
  readonly windows: ReadonlyArray<{ readonly notBefore: number; readonly notAfter: number }>;
  readonly excluded: ReadonlyArray<ReadonlySet<ExcludedType>>;
}

/**
 * Name constraints of a path above its leaf: every CA's constraints parse and are supported, and no certificate
 * between the leaf and the CA carries a name it excludes. The leaf's own names are the caller's check.
 */
function structuralNameConstraints(path: readonly X509Certificate[]): Result<Array<Set<ExcludedType>>, string> {
  const out: Array<Set<ExcludedType>> = [];
  for (let i = 1; i < path.length; i++) {
    const what = caLabel(path, i);
    const excluded = excludedTypes(path[i]!, what);
    if (!excluded.ok) return excluded;
    for (const c of path.slice(1, i)) {
      const r = excludedNameIn(c, excluded.value, path[i]!, what);
      if (r) return err(r);
    }
    out.push(excluded.value);
  }
  return ok(out);
}

/**
 * Build and check the path from certs[0] (RFC 5280 §6 subset, see the module comment). With `at`, every check;
 * without (structural), validity is recorded instead of checked and the leaf's names are left out of the name
 * constraint check (StructuralPath says what is left).
 */
async function walk(
  certs: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  at: Date | null,
): Promise<Result<StructuralPath, string>> {
  const leaf = certs[0]!;
  const path: X509Certificate[] = [leaf];
  const windows: Array<{ notBefore: number; notAfter: number }> = [];
  const window = (c: X509Certificate) =>
    windows.push({ notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() });
  const done = (): Result<StructuralPath, string> => {
    if (at) {
      const nc = checkNameConstraintsOnPath(path);
      return nc ? err(nc) : ok({ path, leaf, windows, excluded: [] });
    }
    const nc = structuralNameConstraints(path);
    return nc.ok ? ok({ path, leaf, windows, excluded: nc.value }) : nc;
  };
  const used = new Set<number>([0]);
  let current = leaf;
  let what = 'leaf certificate';
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const t = (at ? checkTime(current, at, what) : null) ?? checkCritical(current, what);
    if (t) return err(t);
    if (!at && depth > 0) window(current);
    // An anchor that signed the current certificate ends the path.
    for (const root of roots) {
      if (await signedBy(current, root)) {
        const r = checkIssuer(root, depth, 'trust anchor') ?? (at ? checkTime(root, at, 'trust anchor') : null);
        if (r) return err(r);
        if (!at) window(root);
        path.push(root);
        return done();
      }
    }
    // The leaf itself may be a trust anchor (pinned certificate).
    if (depth === 0 && roots.some((r) => bytesEqual(new Uint8Array(r.rawData), new Uint8Array(leaf.rawData))))
      return ok({ path, leaf, windows, excluded: [] });
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

/** Parse the chain and the anchors for `walk`; the first message on failure. */
function parseAll(
  chain: readonly Uint8Array[],
  anchors: readonly Uint8Array[],
): Result<{ certs: X509Certificate[]; roots: X509Certificate[] }, string> {
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
  return ok({ certs, roots });
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
  const parsed = parseAll(chain, anchors);
  if (!parsed.ok) return parsed;
  const r = await walk(parsed.value.certs, parsed.value.roots, at);
  return r.ok ? ok({ path: r.value.path, leaf: r.value.leaf }) : r;
}

/**
 * The structural part of verifyCertificateChain (no clock, the leaf's names left out; see StructuralPath), for
 * chain-cache.ts, which caches it and checks the rest per leaf. The same parsing and messages.
 */
export async function verifyChainStructure(
  chain: readonly Uint8Array[],
  anchors: readonly Uint8Array[],
): Promise<Result<StructuralPath, string>> {
  const parsed = parseAll(chain, anchors);
  if (!parsed.ok) return parsed;
  return walk(parsed.value.certs, parsed.value.roots, null);
}
