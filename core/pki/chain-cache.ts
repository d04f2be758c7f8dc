/**
 * The attestation chain check of every board, fast (docs/architecture.md "PKI hot path"): a board's chain is its
 * own leaf under a vendor chain that every board of the line shares. What does not depend on the leaf (parsing the
 * vendor certificates and the trust anchors, importing their keys, and the path above the leaf: signatures, CA
 * flags, pathLen, key usage, critical extensions, name constraints among the CAs) is checked once by
 * chain.ts `verifyChainStructure` and memoised, keyed on the exact bytes of the certificates above the leaf, the
 * anchors and which of them signed the leaf. Per board, the leaf is read with the strict DER reader (./der.ts) and
 * checked: its signature by that issuer (key imported once), its validity and every certificate's validity at the
 * board's time, unknown critical extensions, and its names against the cached CAs' name constraints.
 *
 * The fast path only ever says yes: anything it does not read, any check that fails, any certificate it has not
 * seen validated, sends the board to the full check (chain.ts verifyCertificateChain), whose answer (and error
 * message) is the answer. So the memo never accepts a chain the full check would refuse: a different intermediate
 * (other bytes, same subject) is another key, an expired one fails its window at the board's time, a leaf its
 * cached issuer did not sign finds no issuer. Both caches are bounded (least recently used out).
 */
import 'reflect-metadata';
import { Name } from '@peculiar/x509';
import { bytesEqual } from '../bytes.js';
import { err, ok, type Result } from '../result.js';
import {
  KNOWN_EXTENSIONS,
  verifyCertificateChain,
  verifyChainStructure,
  type ExcludedType,
  type StructuralPath,
} from './chain.js';
import {
  certificateParts,
  ecdsaAlgorithmHash,
  ecSpkiCurve,
  nameAttributes,
  subjectAltNameTypes,
  type CertificateParts,
} from './der.js';
import { curveSize, derToRawSignature, importVerifyKey, verifyRaw, type ImportedKey } from './ecdsa.js';
import { bytesKey, Lru } from './memo.js';

/** The leaf of a validated chain, as verifyAttestation reads it. */
export interface VerifiedLeaf {
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array;
  /** The subject's serialNumber (2.5.4.5) values, in order. */
  readonly serialNumbers: readonly string[];
  /** The subject as a string (RFC 4514 style, @peculiar/x509's form). */
  readonly subject: string;
}

const MAX_CHAIN = 8;
const MAX_CERT_BYTES = 16 * 1024;
/** Bounds of the two memos: distinct certificates, distinct vendor paths. */
const MAX_CERTS = 64;
const MAX_PATHS = 32;

const OID_SERIAL_NUMBER = '2.5.4.5';
/** Extensions @peculiar/x509 parses eagerly that this reader does not: a leaf with one goes the full way. */
const LEAF_READ = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.14', '2.5.29.35', '2.5.29.17']);
/** version [0] INTEGER 2 (v3). */
const V3 = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02);
const PECULIAR_PARSED = new Set(['2.5.29.32', '2.5.29.31', '1.3.6.1.5.5.7.1.1', '2.5.29.18']);

/** A certificate above the leaf, read once: its parts and its key imported for ECDSA verification (or null). */
interface Known {
  readonly parts: CertificateParts;
  readonly key: Promise<ImportedKey | null>;
}

const known = new Lru<Known | null>(MAX_CERTS);
const paths = new Lru<StructuralPath>(MAX_PATHS);

function read(der: Uint8Array): Known | null {
  const k = bytesKey(der);
  const hit = known.get(k);
  if (hit !== undefined) return hit;
  const parts = certificateParts(der.slice()); // a copy: the memo must not see later changes of the caller's bytes
  const value = parts ? { parts, key: importVerifyKey(parts.spki) } : null;
  known.set(k, value);
  return value;
}

/** True when `issuer` signed `leaf` (names match, ECDSA signature verifies); null when this reader cannot tell. */
async function signed(leaf: CertificateParts, issuer: Known): Promise<boolean | null> {
  if (!bytesEqual(leaf.issuer, issuer.parts.subject)) return false;
  const key = await issuer.key;
  const hash = ecdsaAlgorithmHash(leaf.algorithm);
  if (!key || !hash) return null;
  const raw = derToRawSignature(leaf.signature, key.curve);
  if (!raw || raw.length !== 2 * curveSize(key.curve)) return null;
  return verifyRaw(key.key, key.curve, hash, raw, leaf.tbs);
}

/** The leaf read strictly, with every extension @peculiar/x509 would parse checked here too; null otherwise. */
function readLeaf(der: Uint8Array): { parts: CertificateParts; serials: string[]; san: Uint8Array | null } | null {
  const parts = certificateParts(der);
  if (!parts) return null;
  // v3 (explicitly), a 1..20 byte serial, no unique identifiers, the same ECDSA algorithm inside and outside.
  const head = parts.tbs[1]! & 0x80 ? 2 + (parts.tbs[1]! & 0x7f) : 2;
  if (!bytesEqual(parts.tbs.subarray(head, head + 5), V3)) return null;
  if (parts.serial.length > 40 || !bytesEqual(parts.algorithm, parts.tbsAlgorithm)) return null;
  if (!ecdsaAlgorithmHash(parts.algorithm) || !ecSpkiCurve(parts.spki)) return null;
  const subject = nameAttributes(parts.subject);
  if (!subject || !nameAttributes(parts.issuer)) return null;
  let san: Uint8Array | null = null;
  for (const e of parts.extensions) {
    if (PECULIAR_PARSED.has(e.oid)) return null;
    if (!LEAF_READ.has(e.oid)) continue;
    if (e.oid === '2.5.29.17') {
      if (!subjectAltNameTypes(e.value)) return null;
      san = e.value;
    } else if (!wellFormed(e.oid, e.value)) return null;
  }
  const serials = subject.filter((a) => a.oid === OID_SERIAL_NUMBER).map((a) => new TextDecoder().decode(a.value));
  return { parts, serials, san };
}

/** keyUsage, extendedKeyUsage and authorityKeyIdentifier values as DER requires them (the others der.ts checks). */
function wellFormed(oid: string, v: Uint8Array): boolean {
  if (oid === '2.5.29.15') return v[0] === 0x03 && v[1]! >= 2 && v[1]! <= 3 && v.length === v[1]! + 2 && v[2]! < 8;
  if (oid === '2.5.29.37') {
    if (v[0] !== 0x30 || v.length < 2) return false;
    let p = v[1]! & 0x80 ? 2 + (v[1]! & 0x7f) : 2;
    while (p < v.length) {
      if (v[p] !== 0x06 || v[p + 1]! >= 0x80 || v[p + 1] === 0) return false;
      p += 2 + v[p + 1]!;
    }
    return p === v.length;
  }
  if (oid === '2.5.29.35') {
    if (v[0] !== 0x30 || v.length < 2) return false;
    let p = 2;
    let last = -1;
    while (p < v.length) {
      const order = [0x80, 0xa1, 0x82].indexOf(v[p]!);
      if (order <= last || v[p + 1]! >= 0x80) return false;
      last = order;
      p += 2 + v[p + 1]!;
    }
    return p === v.length && v[1] === v.length - 2;
  }
  return true;
}

/** The fast path: the validated leaf, or null (ask the full check). */
async function fast(
  chain: readonly Uint8Array[],
  anchors: readonly Uint8Array[],
  at: Date,
): Promise<VerifiedLeaf | null> {
  if (!Array.isArray(chain) || chain.length < 1 || chain.length > MAX_CHAIN || anchors.length === 0) return null;
  if ([...chain, ...anchors].some((d) => !(d instanceof Uint8Array) || d.length === 0 || d.length > MAX_CERT_BYTES))
    return null;
  const leaf = readLeaf(chain[0]!);
  if (!leaf) return null;
  const t = at.getTime();
  if (t < leaf.parts.notBefore || t > leaf.parts.notAfter) return null;
  if (leaf.parts.extensions.some((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid))) return null;
  // Which certificate signed the leaf, in the full check's order: the anchors, then the chain.
  // (A leaf that is itself an anchor, and not signed by one, is the full check's case.)
  const candidates = [...anchors, ...chain.slice(1)];
  let signer = -1;
  for (const [i, der] of candidates.entries()) {
    if (i === anchors.length && anchors.some((a) => bytesEqual(a, chain[0]!))) return null;
    const c = read(der);
    if (!c) return null;
    const s = await signed(leaf.parts, c);
    if (s === null) return null;
    if (s) {
      signer = i;
      break;
    }
  }
  if (signer < 0) return null;
  const key = [String(signer), ...anchors.map(bytesKey), '|', ...chain.slice(1).map(bytesKey)].join('\0');
  let path = paths.get(key);
  if (!path) {
    const s = await verifyChainStructure(chain, anchors);
    // The structural walk must have taken the same issuer for this leaf; else no memo.
    if (!s.ok || s.value.path.length < 2) return null;
    const issuer = new Uint8Array(s.value.path[1]!.rawData);
    if (!bytesEqual(issuer, candidates[signer]!)) return null;
    path = s.value;
    paths.set(key, path);
  }
  if (path.windows.some((w) => t < w.notBefore || t > w.notAfter)) return null;
  if (path.excluded.some((e) => e.size > 0) && leaf.san) {
    const types = subjectAltNameTypes(leaf.san)!;
    if (path.excluded.some((e) => types.some((n) => e.has(n as ExcludedType)))) return null;
  }
  const subjectDer = leaf.parts.subject;
  let subject: string | undefined;
  return {
    spki: leaf.parts.spki,
    serialNumbers: leaf.serials,
    get subject() {
      subject ??= new Name(subjectDer.slice()).toString();
      return subject;
    },
  };
}

/**
 * Validate an attestation chain (DER, leaf first) against `anchors` at `at`, as chain.ts verifyCertificateChain does
 * (same verdicts, same messages), with the memo described above. Never throws.
 */
export async function verifyLeafChain(
  chain: readonly Uint8Array[],
  anchors: readonly Uint8Array[],
  at: Date,
): Promise<Result<VerifiedLeaf, string>> {
  const f = await fast(chain, anchors, at);
  if (f) return ok(f);
  const full = await verifyCertificateChain(chain, anchors, at);
  if (!full.ok) return err(full.error);
  const leaf = full.value.leaf;
  return ok({
    spki: new Uint8Array(leaf.publicKey.rawData),
    serialNumbers: leaf.subjectName.getField(OID_SERIAL_NUMBER),
    subject: leaf.subject,
  });
}

/** How many certificates and paths the memo holds (tests), and a way to empty it. */
export const chainMemo = {
  sizes: (): { certificates: number; paths: number } => ({ certificates: known.size, paths: paths.size }),
  clear: (): void => {
    known.clear();
    paths.clear();
  },
};
