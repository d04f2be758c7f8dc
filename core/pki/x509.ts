/**
 * Certificate issuance core through an injected Signer (in production an HSM key that never leaves
 * the token). @peculiar/x509 builds and encodes the certificates; the only private-key operation
 * it performs goes through `signerCrypto`, whose `subtle.sign` delegates to `Signer.sign`.
 *
 * Profiles (docs/formats.md):
 *  - root CA: self-signed, basicConstraints CA (critical), keyUsage keyCertSign|cRLSign (critical), SKI
 *  - issuing CA: basicConstraints CA pathLen (critical), keyUsage keyCertSign|cRLSign (critical), SKI, AKI
 *  - station: basicConstraints CA:false (critical), keyUsage digitalSignature (critical), SKI, AKI, optional EKU
 *  - device: basicConstraints CA:false (critical), keyUsage digitalSignature (critical), EKU, SAN URI,
 *    certificatePolicies, SKI, AKI; random positive 16-byte serial; notBefore = now - 60 s
 */
import 'reflect-metadata';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { bytesEqual, toHex } from '../bytes.js';
import { fail, type StationError } from '../errors.js';
import type { Curve } from '../model.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import {
  algorithmHash,
  buf,
  curveSize,
  derToRawSignature,
  importVerifyKey,
  rawToDerSignature,
  spkiCurve,
  verifyRaw,
  type AlgorithmIdentifier,
  type BufferSource,
  type Crypto,
  type CryptoKey,
  type EcdsaParams,
  type VerifyKey,
} from './ecdsa.js';
import { certificateParts, ecdsaAlgorithmHash, type CertificateParts } from './der.js';
import { bytesKey, Lru } from './memo.js';
import { certificateSha256 } from './pem.js';
import { certificate, ECDSA_ALGORITHM, tbsCertificate, type NameItem, type TbsFields } from './tbs.js';

// ---------------------------------------------------------------- signer -> WebCrypto bridge

/** The error for a signer that returned no raw r||s signature of its curve's size. */
function badSignatureLength(signature: Uint8Array, curve: Curve): StationError {
  return {
    code: 'HSM_FAILED',
    message: `signer returned a ${signature.length}-byte signature, expected raw r||s of ${2 * curveSize(curve)} bytes`,
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'The HSM reported an unexpected error. Call a supervisor.',
  };
}

/** Thrown inside the WebCrypto bridge to carry a Signer's typed error out of @peculiar/x509. */
class SignerFailure extends Error {
  constructor(readonly error: StationError) {
    super(error.message);
  }
}

export interface SignerCrypto {
  /** WebCrypto-shaped provider: pass it as the last argument of @peculiar/x509 generators. */
  readonly crypto: Crypto;
  /** Stand-in private CryptoKey; `crypto.subtle.sign` with it calls `signer.sign`. */
  readonly privateKey: CryptoKey;
  /** The signer's public key, imported for ECDSA verification. */
  readonly publicKey: CryptoKey;
}

function toBytes(data: BufferSource): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function hashName(alg: unknown): string | undefined {
  if (!alg || typeof alg !== 'object' || !('hash' in alg)) return undefined;
  const h = (alg as { hash: unknown }).hash;
  if (typeof h === 'string') return h;
  if (h && typeof h === 'object' && 'name' in h && typeof (h as { name: unknown }).name === 'string')
    return (h as { name: string }).name;
  return undefined;
}

/**
 * Build a WebCrypto `Crypto` whose `subtle.sign` with the returned stand-in private key delegates
 * to `signer.sign` (every other operation goes to globalThis.crypto.subtle), plus the stand-in key
 * and the imported public key. A signer failure surfaces as the signer's own error (e.g. HSM_SESSION_LOST).
 */
export function signerCrypto(signer: Signer): Promise<Result<SignerCrypto>> {
  // One bridge (and one imported public key) per signer object, as long as its key is the same bytes.
  const hit = bridges.get(signer);
  if (hit && bytesEqual(hit.spki, signer.publicKeySpki)) return hit.value;
  const value = makeSignerCrypto(signer);
  bridges.set(signer, { spki: signer.publicKeySpki.slice(), value });
  return value;
}

const bridges = new WeakMap<Signer, { readonly spki: Uint8Array; readonly value: Promise<Result<SignerCrypto>> }>();

async function makeSignerCrypto(signer: Signer): Promise<Result<SignerCrypto>> {
  const curve = spkiCurve(signer.publicKeySpki);
  if (!curve || curve !== signer.curve)
    return fail('CERT_ISSUE_FAILED', `signer public key is not an EC ${signer.curve} key`, { curve });
  let publicKey: CryptoKey;
  try {
    publicKey = await globalThis.crypto.subtle.importKey(
      'spki',
      buf(signer.publicKeySpki),
      { name: 'ECDSA', namedCurve: curve },
      true,
      ['verify'],
    );
  } catch (e) {
    return fail('CERT_ISSUE_FAILED', `signer public key cannot be imported: ${(e as Error).message}`);
  }
  const privateKey = {
    type: 'private',
    extractable: false,
    algorithm: { name: 'ECDSA', namedCurve: curve },
    usages: ['sign'],
  } as unknown as CryptoKey;
  const base = globalThis.crypto.subtle;
  const expectedHash = algorithmHash(signer.algorithm);
  const subtle = new Proxy(base, {
    get(target, prop) {
      if (prop === 'sign') {
        return async (
          alg: AlgorithmIdentifier | EcdsaParams,
          key: CryptoKey,
          data: BufferSource,
        ): Promise<ArrayBuffer> => {
          if (key !== privateKey) return target.sign(alg, key, data);
          const name = typeof alg === 'string' ? alg : alg.name;
          if (name.toUpperCase() !== 'ECDSA' || hashName(alg)?.toUpperCase() !== expectedHash)
            throw new Error(`signer ${signer.algorithm} cannot sign with ${name}/${hashName(alg) ?? '?'}`);
          const r = await signer.sign(toBytes(data));
          if (!r.ok) throw new SignerFailure(r.error);
          if (r.value.length !== 2 * curveSize(curve)) throw new SignerFailure(badSignatureLength(r.value, curve));
          return buf(r.value).buffer;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const crypto = {
    subtle,
    getRandomValues: (a: Uint8Array) => globalThis.crypto.getRandomValues(a),
    randomUUID: () => globalThis.crypto.randomUUID(),
  } as unknown as Crypto;
  return ok({ crypto, privateKey, publicKey });
}

// ---------------------------------------------------------------- names & templates

/** Subject of a CA or station certificate. */
export interface SimpleSubject {
  readonly commonName: string;
  readonly organization?: string;
}

type NameParams = ConstructorParameters<typeof Name>[0];

const ATTR_VALUE_RE = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,64}$/u;
const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]{1,64}$/;

function checkAttr(field: string, value: string): Result<string> {
  if (typeof value !== 'string' || !ATTR_VALUE_RE.test(value) || value !== value.trim())
    return fail(
      'CERT_ISSUE_FAILED',
      `subject ${field}: must be 1..64 characters without control characters or outer spaces`,
      {
        field,
      },
    );
  return ok(value);
}

/** The attributes of a subject, checked, in certificate order (O, CN, serialNumber); values, never a DN string. */
export function nameItems(attrs: {
  commonName: string;
  organization?: string | undefined;
  serialNumber?: string | undefined;
}): Result<NameItem[]> {
  const items: NameItem[] = [];
  if (attrs.organization !== undefined) {
    const o = checkAttr('organization', attrs.organization);
    if (!o.ok) return o;
    items.push({ oid: '2.5.4.10', value: o.value, printable: false });
  }
  const cn = checkAttr('commonName', attrs.commonName);
  if (!cn.ok) return cn;
  items.push({ oid: '2.5.4.3', value: cn.value, printable: false });
  if (attrs.serialNumber !== undefined) {
    if (!PRINTABLE_RE.test(attrs.serialNumber))
      return fail('CERT_ISSUE_FAILED', 'subject serialNumber: must be 1..64 PrintableString characters', {
        field: 'serialNumber',
      });
    items.push({ oid: '2.5.4.5', value: attrs.serialNumber, printable: true });
  }
  return ok(items);
}

/** Build a Name from attribute values (set as values, never parsed as a DN string). */
export function buildName(attrs: {
  commonName: string;
  organization?: string | undefined;
  serialNumber?: string | undefined;
}): Result<Name> {
  const items = nameItems(attrs);
  if (!items.ok) return items;
  const params = items.value.map((i) => ({
    [i.oid]: [i.printable ? { printableString: i.value } : { utf8String: i.value }],
  }));
  return ok(new Name(params as unknown as NameParams));
}

/** A dotted-decimal object identifier. */
export const OID_RE = /^[0-2](\.(0|[1-9][0-9]*))+$/;

// ---------------------------------------------------------------- issuance core

/** What every issuing function returns. */
export interface IssuedCertificateInfo {
  readonly der: Uint8Array;
  /** Serial number, lower-case hex (as in the certificate, without a sign byte). */
  readonly serialNumber: string;
  /** SHA-256 of the DER, lower-case hex. */
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** The issuing side: a signer and the DER certificate of its key. */
export interface Issuer {
  readonly signer: Signer;
  readonly certificate: Uint8Array;
}

export const DAY_MS = 86_400_000;
export const SKEW_MS = 60_000;

/** A random positive 16-byte serial (top bit clear, second-highest set: always exactly 16 bytes in DER). */
export function randomSerial(): Uint8Array {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b;
}

export function checkSerial(serial: Uint8Array): Result<Uint8Array> {
  if (
    serial.length < 1 ||
    serial.length > 20 ||
    (serial[0]! & 0x80) !== 0 ||
    serial[0] === 0 ||
    serial.every((x) => x === 0)
  )
    return fail('CERT_ISSUE_FAILED', 'serial number must be 1..20 bytes, positive, without a leading zero byte');
  return ok(serial);
}

export function checkValidityDays(days: number): Result<number> {
  if (!Number.isInteger(days) || days < 1 || days > 36500)
    return fail('CERT_ISSUE_FAILED', `validityDays must be an integer in 1..36500, got ${String(days)}`);
  return ok(days);
}

/** Issuer certificates parsed once per exact DER (every check of loadIssuer still runs on every call). */
const issuers = new Lru<Result<X509Certificate>>(16);

function parseIssuer(der: Uint8Array): Result<X509Certificate> {
  const key = bytesKey(der);
  const hit = issuers.get(key);
  if (hit) return hit;
  let r: Result<X509Certificate>;
  try {
    const cert = new X509Certificate(buf(der));
    void cert.extensions;
    r = ok(cert);
  } catch (e) {
    r = fail('CERT_ISSUE_FAILED', `issuer certificate cannot be parsed: ${(e as Error).message}`);
  }
  issuers.set(key, r);
  return r;
}

/** The issuer certificate's DER parts (./der.ts), read once per exact DER; null when the strict reader declines. */
export function issuerParts(der: Uint8Array): CertificateParts | null {
  const key = bytesKey(der);
  const hit = issuerDerParts.get(key);
  if (hit !== undefined) return hit;
  const parts = certificateParts(der.slice()); // a copy: the memo must not see later changes of the caller's bytes
  issuerDerParts.set(key, parts);
  return parts;
}

const issuerDerParts = new Lru<CertificateParts | null>(16);

/** Parse and vet the issuer: certificate parses, is a CA allowed to sign certs, is valid now, matches the signer key. */
export function loadIssuer(issuer: Issuer, now: Date, issuingCa: boolean): Result<X509Certificate> {
  const parsed = parseIssuer(issuer.certificate);
  if (!parsed.ok) return parsed;
  const cert = parsed.value;
  if (!bytesEqual(new Uint8Array(cert.publicKey.rawData), issuer.signer.publicKeySpki))
    return fail('CERT_ISSUE_FAILED', 'issuer certificate does not belong to the signing key');
  const bc = cert.getExtension(BasicConstraintsExtension);
  if (!bc?.ca) return fail('CERT_ISSUE_FAILED', `issuer ${cert.subject} is not a CA certificate`);
  if (issuingCa && bc.pathLength === 0)
    return fail('CERT_ISSUE_FAILED', `issuer ${cert.subject} has pathLen 0 and cannot issue CA certificates`);
  const ku = cert.getExtension(KeyUsagesExtension);
  if (ku && (ku.usages & KeyUsageFlags.keyCertSign) === 0)
    return fail('CERT_ISSUE_FAILED', `issuer ${cert.subject} key usage does not allow keyCertSign`);
  if (now < cert.notBefore || now > cert.notAfter)
    return fail('CERT_ISSUE_FAILED', `issuer ${cert.subject} is not valid at ${now.toISOString()}`, {
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    });
  return ok(cert);
}

export interface IssueParams {
  readonly signer: Signer;
  /** Undefined: self-signed. */
  readonly issuerCert?: X509Certificate;
  readonly subject: Name;
  readonly subjectSpki: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serial: Uint8Array;
  readonly extensions: (crypto: Crypto) => Promise<Extension[]>;
}

export async function issue(p: IssueParams): Promise<Result<IssuedCertificateInfo>> {
  const sc = await signerCrypto(p.signer);
  if (!sc.ok) return sc;
  const { crypto, privateKey } = sc.value;
  try {
    const extensions = await p.extensions(crypto);
    const cert = await X509CertificateGenerator.create(
      {
        serialNumber: toHex(p.serial),
        subject: p.subject,
        issuer: p.issuerCert ? p.issuerCert.subjectName : p.subject,
        notBefore: p.notBefore,
        notAfter: p.notAfter,
        publicKey: buf(p.subjectSpki),
        signingKey: privateKey,
        signingAlgorithm: { name: 'ECDSA', hash: algorithmHash(p.signer.algorithm) } as EcdsaParams,
        extensions,
      },
      crypto,
    );
    return await checked(new Uint8Array(cert.rawData), p.serial, p.signer, sc.value.publicKey);
  } catch (e) {
    if (e instanceof SignerFailure) return { ok: false, error: e.error };
    return fail('CERT_ISSUE_FAILED', `certificate generation failed: ${(e as Error).message}`);
  }
}

/**
 * Issue a certificate from its encoded tbsCertificate fields (tbs.ts, the per-board device certificate): sign the
 * tbsCertificate through the signer, assemble, and self-check as `issue` does. A Signer error is returned as is.
 */
export async function issueEncoded(
  signer: Signer,
  fields: Omit<TbsFields, 'algorithm'>,
): Promise<Result<IssuedCertificateInfo>> {
  const key = await signerVerifyKey(signer);
  if (!key.ok) return key;
  const algorithm = ECDSA_ALGORITHM[algorithmHash(signer.algorithm)];
  const tbs = tbsCertificate({ ...fields, algorithm });
  const signed = await signer.sign(tbs);
  if (!signed.ok) return signed;
  if (signed.value.length !== 2 * curveSize(signer.curve))
    return { ok: false, error: badSignatureLength(signed.value, signer.curve) };
  return checked(certificate(tbs, algorithm, rawToDerSignature(signed.value)), fields.serial, signer, key.value);
}

/**
 * The signer's public key imported for verification (ecdsa.ts importVerifyKey: memoised by its bytes, so once per
 * distinct key, not per signer object), refused as signerCrypto refuses it: not an EC key of the signer's curve.
 */
async function signerVerifyKey(signer: Signer): Promise<Result<VerifyKey>> {
  const curve = spkiCurve(signer.publicKeySpki);
  if (!curve || curve !== signer.curve)
    return fail('CERT_ISSUE_FAILED', `signer public key is not an EC ${signer.curve} key`, { curve });
  const key = await importVerifyKey(signer.publicKeySpki);
  if (!key) return fail('CERT_ISSUE_FAILED', 'signer public key cannot be imported');
  return ok(key.key);
}

/**
 * Self-check of an issued certificate: its signature must verify with the issuer key (catches a misbehaving
 * signer). Then its serial, fingerprint and validity as read back.
 */
async function checked(
  der: Uint8Array,
  serial: Uint8Array,
  signer: Signer,
  publicKey: VerifyKey,
): Promise<Result<IssuedCertificateInfo>> {
  const validity = await selfCheck(der, signer, publicKey);
  if (!validity)
    return fail('CERT_ISSUE_FAILED', 'issued certificate does not verify with the issuer key (signer fault)');
  const iso = (ms: number) => new Date(ms).toISOString();
  return ok({
    der,
    serialNumber: toHex(serial),
    sha256: await certificateSha256(der),
    notBefore: iso(validity.notBefore),
    notAfter: iso(validity.notAfter),
  });
}

/**
 * The issued certificate read back (strict DER, ./der.ts) and its signature verified over the tbsCertificate with
 * the issuer's key; its validity, or null when it does not read or verify.
 */
async function selfCheck(
  der: Uint8Array,
  signer: Signer,
  publicKey: VerifyKey,
): Promise<{ notBefore: number; notAfter: number } | null> {
  const parts = certificateParts(der);
  const hash = algorithmHash(signer.algorithm);
  if (!parts || !bytesEqual(parts.algorithm, parts.tbsAlgorithm) || ecdsaAlgorithmHash(parts.algorithm) !== hash)
    return null;
  const raw = derToRawSignature(parts.signature, signer.curve);
  if (!raw) return null;
  const good = await verifyRaw(publicKey, signer.curve, hash, raw, parts.tbs);
  return good ? { notBefore: parts.notBefore, notAfter: parts.notAfter } : null;
}

export async function keyIdExtensions(
  crypto: Crypto,
  subjectSpki: Uint8Array,
  issuerCert: X509Certificate | undefined,
  issuerSpki: Uint8Array,
): Promise<Extension[]> {
  const ski = await SubjectKeyIdentifierExtension.create(buf(subjectSpki), false, crypto);
  const out: Extension[] = [ski];
  if (issuerCert) {
    const issuerSki = issuerCert.getExtension(SubjectKeyIdentifierExtension);
    out.push(
      issuerSki
        ? new AuthorityKeyIdentifierExtension(issuerSki.keyId, false)
        : await AuthorityKeyIdentifierExtension.create(buf(issuerSpki), false, crypto),
    );
  }
  return out;
}

export function checkSubjectKey(spki: Uint8Array): Result<Curve> {
  const c = spkiCurve(spki);
  if (!c) return fail('CERT_ISSUE_FAILED', 'subject public key is not an EC P-256 / P-384 key');
  return ok(c);
}

/** EKU names (clientAuth, serverAuth, OCSPSigning) or dotted OIDs to OIDs. */
export function ekuOids(list: readonly string[]): string[] {
  return list.map((u) =>
    u === 'clientAuth'
      ? ExtendedKeyUsage.clientAuth
      : u === 'serverAuth'
        ? ExtendedKeyUsage.serverAuth
        : u === 'OCSPSigning'
          ? ExtendedKeyUsage.ocspSigning
          : u,
  );
}
