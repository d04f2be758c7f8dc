/**
 * A direct DER encoder of the device certificate's tbsCertificate (RFC 5280 4.1) and the extensions of the device
 * profile (docs/formats.md), for the per-board issuance (device-cert.ts). It writes the same bytes @peculiar/x509's
 * generator writes for the same fields (tbs.test.ts compares them field by field, openssl reads the result), at a
 * fraction of the cost. Pure: no crypto, no parsing.
 */

/** The DER length octets of `n`. */
function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

/** One DER element: tag, length, the contents concatenated. */
export function element(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  const len = contents.reduce((n, c) => n + c.length, 0);
  const head = [tag, ...lengthOctets(len)];
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  let o = head.length;
  for (const c of contents) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export const sequence = (...c: readonly Uint8Array[]): Uint8Array => element(0x30, ...c);

/** Encoded OIDs (a profile uses a handful; bounded all the same). */
const oids = new Map<string, Uint8Array>();

/** An OBJECT IDENTIFIER element from its dotted form (the caller has checked it, OID_RE). Do not modify the result. */
export function oid(dotted: string): Uint8Array {
  const hit = oids.get(dotted);
  if (hit) return hit;
  const el = encodeOid(dotted);
  if (oids.size < 256) oids.set(dotted, el);
  return el;
}

function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const body: number[] = [];
  const push = (v: number) => {
    const b = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) b.unshift(0x80 | (x & 0x7f));
    body.push(...b);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return element(0x06, Uint8Array.from(body));
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const two = (n: number): string => String(n).padStart(2, '0');

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), whole seconds. */
export function time(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  return y >= 1950 && y <= 2049 ? element(0x17, ascii(`${two(y % 100)}${rest}`)) : element(0x18, ascii(`${y}${rest}`));
}

/** A positive INTEGER from its big-endian magnitude (no leading zero byte, top bit clear: checkSerial). */
export const integer = (magnitude: Uint8Array): Uint8Array => element(0x02, magnitude);

/** One attribute of a name: OID and value, encoded as UTF8String or PrintableString. */
export interface NameItem {
  readonly oid: string;
  readonly value: string;
  readonly printable: boolean;
}

/** A Name with one attribute per RDN, in order. */
export function name(items: readonly NameItem[]): Uint8Array {
  return sequence(
    ...items.map((i) =>
      element(0x31, sequence(oid(i.oid), i.printable ? element(0x13, ascii(i.value)) : element(0x0c, utf8(i.value)))),
    ),
  );
}

/** An Extension: OID, critical TRUE (only when critical: DEFAULT FALSE is not encoded), the value in an OCTET STRING. */
export function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [Uint8Array.of(0x01, 0x01, 0xff)] : []), element(0x04, value));
}

const uri = (u: string): Uint8Array => element(0x86, ascii(u));

/** The values of the device profile's extensions (the caller wraps them with `extension`). */
export const values = {
  /** basicConstraints cA FALSE (the default: an empty SEQUENCE). */
  endEntity: (): Uint8Array => sequence(),
  /** keyUsage digitalSignature: BIT STRING, 7 unused bits, 0x80. */
  digitalSignature: (): Uint8Array => Uint8Array.of(0x03, 0x02, 0x07, 0x80),
  extendedKeyUsage: (oids: readonly string[]): Uint8Array => sequence(...oids.map(oid)),
  subjectAltNameUri: (u: string): Uint8Array => sequence(uri(u)),
  certificatePolicy: (policy: string): Uint8Array => sequence(sequence(oid(policy))),
  /** CRLDistributionPoints with one point whose fullName is the URI. */
  crlDistributionPoint: (u: string): Uint8Array => sequence(sequence(element(0xa0, element(0xa0, uri(u))))),
  /** authorityInfoAccess with one OCSP responder URI. */
  ocsp: (u: string): Uint8Array => sequence(sequence(oid('1.3.6.1.5.5.7.48.1'), uri(u))),
  subjectKeyIdentifier: (keyId: Uint8Array): Uint8Array => element(0x04, keyId),
  authorityKeyIdentifier: (keyId: Uint8Array): Uint8Array => sequence(element(0x80, keyId)),
};

/** What a tbsCertificate holds. */
export interface TbsFields {
  readonly serial: Uint8Array;
  /** The signature AlgorithmIdentifier (DER), equal to the certificate's outer one. */
  readonly algorithm: Uint8Array;
  readonly issuer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
  /** Encoded Extension elements, in order (at least one). */
  readonly extensions: readonly Uint8Array[];
}

/** The v3 tbsCertificate. */
export function tbsCertificate(f: TbsFields): Uint8Array {
  return sequence(
    element(0xa0, integer(Uint8Array.of(2))),
    integer(f.serial),
    f.algorithm,
    f.issuer,
    sequence(time(f.notBefore), time(f.notAfter)),
    f.subject,
    f.spki,
    element(0xa3, sequence(...f.extensions)),
  );
}

/** The Certificate: tbsCertificate, AlgorithmIdentifier, BIT STRING of the DER signature. */
export function certificate(tbs: Uint8Array, algorithm: Uint8Array, signatureDer: Uint8Array): Uint8Array {
  return sequence(tbs, algorithm, element(0x03, Uint8Array.of(0), signatureDer));
}

/** ecdsa-with-SHA256 / -SHA384 AlgorithmIdentifiers (no parameters, RFC 5758). */
export const ECDSA_ALGORITHM = {
  'SHA-256': sequence(oid('1.2.840.10045.4.3.2')),
  'SHA-384': sequence(oid('1.2.840.10045.4.3.3')),
} as const;
