/**
 * A minimal, strict DER reader of X.509 certificates (RFC 5280 4.1) and EC public keys, for the hot paths: the
 * registry's per-record device certificate check and the station's attestation chain check (./chain-cache.ts). It
 * reads the parts those compare and verify (tbsCertificate bytes, signature algorithm and value, serial, issuer and
 * subject names as DER, validity, subjectPublicKeyInfo, every extension with its criticality, basicConstraints,
 * authority and subject key identifiers). Parsing a certificate with node:crypto's X509Certificate or @peculiar/x509
 * costs more than verifying its signature; this reader costs a fraction of it. Anything it does not expect
 * (indefinite or non-minimal lengths, trailing bytes, unknown layouts) makes it answer null, and the caller then
 * decides with the full parser. Imports nothing.
 */

/** One DER element: where its tag, content and end are. */
export interface Tlv {
  /** Offset of the tag byte. */
  readonly pos: number;
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the element. */
  readonly end: number;
}

/**
 * The DER element at `pos` within `[pos, limit)`, or null when it does not fit or is not DER: single-byte tags,
 * definite and minimal lengths only.
 */
export function tlv(der: Uint8Array, pos: number, limit: number): Tlv | null {
  if (pos + 2 > limit) return null;
  const tag = der[pos]!;
  if ((tag & 0x1f) === 0x1f) return null;
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit || der[start] === 0) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    if (len < 0x80) return null;
    start += n;
  }
  const end = start + len;
  return end > limit ? null : { pos, tag, start, end };
}

/** The parts of a certificate the registry's checks read. */
export interface CertificateParts {
  /** The tbsCertificate element: the signed bytes. */
  readonly tbs: Uint8Array;
  /** The signature AlgorithmIdentifier inside tbsCertificate and the outer one (must be equal). */
  readonly tbsAlgorithm: Uint8Array;
  readonly algorithm: Uint8Array;
  /** The signature value (the BIT STRING's content without the unused-bits byte). */
  readonly signature: Uint8Array;
  /** Serial number, lower-case hex without leading zeros. */
  readonly serial: string;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Uint8Array;
  /** basicConstraints cA (false when the extension is absent). */
  readonly isCa: boolean;
  /** keyIdentifier of authorityKeyIdentifier / subjectKeyIdentifier, when present. */
  readonly authorityKeyId: Uint8Array | null;
  readonly subjectKeyId: Uint8Array | null;
  /** basicConstraints pathLenConstraint (0..127), when present. */
  readonly pathLength: number | undefined;
  /** Every extension, in certificate order. */
  readonly extensions: readonly DerExtension[];
}

const OID_BASIC_CONSTRAINTS = '0603551d13';
const OID_SKI = '0603551d0e';
const OID_AKI = '0603551d23';

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Children of a constructed element; null if they do not tile it exactly. */
export function children(der: Uint8Array, el: Tlv): Tlv[] | null {
  const out: Tlv[] = [];
  let pos = el.start;
  while (pos < el.end) {
    const c = tlv(der, pos, el.end);
    if (!c) return null;
    out.push(c);
    pos = c.end;
  }
  return out;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 4.1.2.5 allows them; NaN otherwise. */
function time(der: Uint8Array, el: Tlv): number {
  const s = Buffer.from(der.buffer, der.byteOffset + el.start, el.end - el.start).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (el.tag === 0x17 && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (el.tag === 0x18 && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]);
  } else return NaN;
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const t = Date.UTC(year, mo - 1, d, h, mi, se);
  const back = new Date(t);
  return back.getUTCMonth() === mo - 1 && back.getUTCDate() === d && h < 24 && mi < 60 && se < 60 ? t : NaN;
}

/** One extension as it is encoded: its OID (dotted), criticality and the extnValue's content (the inner DER). */
export interface DerExtension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

/** The dotted form of an OBJECT IDENTIFIER element's content; null when it is not minimally encoded. */
export function oidString(der: Uint8Array, el: Tlv): string | null {
  if (el.tag !== 0x06 || el.end === el.start) return null;
  const arcs: number[] = [];
  let v = 0;
  let fresh = true;
  for (let i = el.start; i < el.end; i++) {
    const b = der[i]!;
    if (fresh && b === 0x80) return null; // non-minimal sub-identifier
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) return null;
    fresh = (b & 0x80) === 0;
    if (fresh) {
      arcs.push(v);
      v = 0;
    }
  }
  if (!fresh) return null;
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

interface ReadExtensions {
  readonly list: DerExtension[];
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  readonly aki: Uint8Array | null;
  readonly ski: Uint8Array | null;
}

/** The extensions, from the [3] element; null on any malformed extension or a repeated one. */
function extensions(der: Uint8Array, el: Tlv): ReadExtensions | null {
  const outer = children(der, el);
  if (!outer || outer.length !== 1 || outer[0]!.tag !== 0x30) return null;
  const items = children(der, outer[0]!);
  if (!items || items.length === 0) return null;
  const list: DerExtension[] = [];
  const seen = new Set<string>();
  let isCa = false;
  let pathLength: number | undefined;
  let aki: Uint8Array | null = null;
  let ski: Uint8Array | null = null;
  for (const e of items) {
    const parts = e.tag === 0x30 ? children(der, e) : null;
    if (!parts || parts.length < 2 || parts.length > 3 || parts[0]!.tag !== 0x06) return null;
    const oidHex = hex(der.subarray(parts[0]!.pos, parts[0]!.end));
    const oid = oidString(der, parts[0]!);
    if (oid === null || seen.has(oidHex)) return null;
    seen.add(oidHex);
    let critical = false;
    if (parts.length === 3) {
      // DER: a BOOLEAN is 0x00 or 0xff, and the DEFAULT FALSE value is never encoded.
      if (parts[1]!.tag !== 0x01 || parts[1]!.end - parts[1]!.start !== 1 || der[parts[1]!.start] !== 0xff) return null;
      critical = true;
    }
    const value = parts[parts.length - 1]!;
    if (value.tag !== 0x04) return null;
    const inner = tlv(der, value.start, value.end);
    if (!inner || inner.end !== value.end) return null;
    list.push({ oid, critical, value: der.subarray(value.start, value.end) });
    if (oidHex === OID_BASIC_CONSTRAINTS) {
      const bc = inner.tag === 0x30 ? children(der, inner) : null;
      if (!bc || bc.length > 2) return null;
      let k = 0;
      if (bc[0]?.tag === 0x01) {
        if (bc[0].end - bc[0].start !== 1 || der[bc[0].start] !== 0xff) return null;
        isCa = true;
        k = 1;
      }
      const len = bc[k];
      if (len) {
        if (len.tag !== 0x02 || k + 1 !== bc.length || len.end - len.start !== 1 || der[len.start]! > 0x7f) return null;
        pathLength = der[len.start]!;
      }
    } else if (oidHex === OID_SKI) {
      if (inner.tag !== 0x04) return null;
      ski = der.subarray(inner.start, inner.end);
    } else if (oidHex === OID_AKI) {
      const a = inner.tag === 0x30 ? children(der, inner) : null;
      if (!a) return null;
      const kid = a.find((x) => x.tag === 0x80);
      aki = kid ? der.subarray(kid.start, kid.end) : null;
    }
  }
  return { list, isCa, pathLength, aki, ski };
}

/** Read a DER certificate's parts (see CertificateParts); null when it is not laid out as expected. */
export function certificateParts(der: Uint8Array): CertificateParts | null {
  const cert = tlv(der, 0, der.length);
  if (!cert || cert.tag !== 0x30 || cert.end !== der.length) return null;
  const top = children(der, cert);
  if (!top || top.length !== 3) return null;
  const [tbsEl, algEl, sigEl] = top as [Tlv, Tlv, Tlv];
  if (tbsEl.tag !== 0x30 || algEl.tag !== 0x30 || sigEl.tag !== 0x03) return null;
  if (sigEl.end - sigEl.start < 2 || der[sigEl.start] !== 0) return null;
  const f = children(der, tbsEl);
  if (!f) return null;
  let i = 0;
  if (f[0]?.tag === 0xa0) i = 1; // version
  const [serial, alg, issuer, validity, subject, spki] = f.slice(i, i + 6);
  if (!serial || !alg || !issuer || !validity || !subject || !spki) return null;
  if (serial.tag !== 0x02 || alg.tag !== 0x30 || issuer.tag !== 0x30 || validity.tag !== 0x30) return null;
  if (subject.tag !== 0x30 || spki.tag !== 0x30) return null;
  const v = children(der, validity);
  if (!v || v.length !== 2) return null;
  const notBefore = time(der, v[0]!);
  const notAfter = time(der, v[1]!);
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return null;
  let ext: ReadExtensions | null = { list: [], isCa: false, pathLength: undefined, aki: null, ski: null };
  for (const rest of f.slice(i + 6)) {
    if (rest.tag === 0xa3) ext = extensions(der, rest);
    else if (rest.tag !== 0x81 && rest.tag !== 0x82) return null; // issuer/subject unique ids
    if (!ext) return null;
  }
  const elem = (t: Tlv) => der.subarray(t.pos, t.end);
  const serialHex = hex(der.subarray(serial.start, serial.end)).replace(/^0+/, '') || '0';
  return {
    tbs: elem(tbsEl),
    tbsAlgorithm: elem(alg),
    algorithm: elem(algEl),
    signature: der.subarray(sigEl.start + 1, sigEl.end),
    serial: serialHex,
    issuer: elem(issuer),
    subject: elem(subject),
    notBefore,
    notAfter,
    spki: elem(spki),
    isCa: ext!.isCa,
    pathLength: ext!.pathLength,
    authorityKeyId: ext!.aki,
    subjectKeyId: ext!.ski,
    extensions: ext!.list,
  };
}

/** The subjectPublicKeyInfo element (tag, length and content) of a DER certificate, or null if not readable. */
export function certificateSpki(der: Uint8Array): Uint8Array | null {
  return certificateParts(der)?.spki ?? null;
}

/** One attribute of a distinguished name: its OID (dotted), the string type's tag and the value's bytes. */
export interface NameAttribute {
  readonly oid: string;
  readonly tag: number;
  readonly value: Uint8Array;
}

/** String types a name attribute may have here: UTF8String, PrintableString, IA5String. */
const NAME_STRING_TAGS = new Set([0x0c, 0x13, 0x16]);

/**
 * The attributes of a DER Name (SEQUENCE OF SET OF AttributeTypeAndValue), in order; null when it is not one, or
 * an attribute value is not a UTF8String, PrintableString or IA5String (the caller then uses the full parser).
 */
export function nameAttributes(name: Uint8Array): NameAttribute[] | null {
  const top = tlv(name, 0, name.length);
  if (!top || top.tag !== 0x30 || top.end !== name.length) return null;
  const rdns = children(name, top);
  if (!rdns) return null;
  const out: NameAttribute[] = [];
  for (const rdn of rdns) {
    const atvs = rdn.tag === 0x31 ? children(name, rdn) : null;
    if (!atvs || atvs.length === 0) return null;
    for (const atv of atvs) {
      const p = atv.tag === 0x30 ? children(name, atv) : null;
      if (!p || p.length !== 2 || !NAME_STRING_TAGS.has(p[1]!.tag)) return null;
      const oid = oidString(name, p[0]!);
      if (oid === null) return null;
      const value = name.subarray(p[1]!.start, p[1]!.end);
      if (p[1]!.tag !== 0x0c && value.some((b) => b > 0x7e || b < 0x20)) return null;
      out.push({ oid, tag: p[1]!.tag, value });
    }
  }
  return out;
}

/** id-ecPublicKey, secp256r1 and secp384r1 as DER OBJECT IDENTIFIER elements (hex). */
const OID_EC_PUBLIC_KEY = '06072a8648ce3d0201';
const OID_P256 = '06082a8648ce3d030107';
const OID_P384 = '06052b81040022';

/**
 * The curve of an EC SubjectPublicKeyInfo (DER): SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve P-256 | P-384 },
 * BIT STRING (no unused bits) holding an uncompressed point of the curve's size }, nothing before or after. Null
 * for anything else. Whether the point is on the curve is the key import's check.
 */
export function ecSpkiCurve(spki: Uint8Array): 'P-256' | 'P-384' | null {
  const top = tlv(spki, 0, spki.length);
  if (!top || top.tag !== 0x30 || top.end !== spki.length) return null;
  const p = children(spki, top);
  if (!p || p.length !== 2 || p[0]!.tag !== 0x30 || p[1]!.tag !== 0x03) return null;
  const alg = children(spki, p[0]!);
  if (!alg || alg.length !== 2) return null;
  if (hex(spki.subarray(alg[0]!.pos, alg[0]!.end)) !== OID_EC_PUBLIC_KEY) return null;
  const named = hex(spki.subarray(alg[1]!.pos, alg[1]!.end));
  const curve = named === OID_P256 ? 'P-256' : named === OID_P384 ? 'P-384' : null;
  if (!curve) return null;
  const bits = p[1]!;
  const size = curve === 'P-256' ? 32 : 48;
  if (bits.end - bits.start !== 2 + 2 * size || spki[bits.start] !== 0 || spki[bits.start + 1] !== 0x04) return null;
  return curve;
}

/** GeneralName types (RFC 5280 4.2.1.6) by their context tag, as far as the name constraint check needs them. */
export type GeneralNameType = 'rfc822Name' | 'dNSName' | 'uniformResourceIdentifier' | 'iPAddress';
const GENERAL_NAME_TAGS: Record<number, GeneralNameType> = {
  0x81: 'rfc822Name',
  0x82: 'dNSName',
  0x86: 'uniformResourceIdentifier',
  0x87: 'iPAddress',
};

/**
 * The types of the names in a subjectAltName extension value (SEQUENCE OF GeneralName), in order; null when it is
 * malformed or holds a name of another type (otherName, directoryName, ...), for which the caller uses the full
 * parser. IA5String names must be 7-bit, iPAddress names 4 or 16 bytes.
 */
export function subjectAltNameTypes(value: Uint8Array): GeneralNameType[] | null {
  const top = tlv(value, 0, value.length);
  if (!top || top.tag !== 0x30 || top.end !== value.length) return null;
  const names = children(value, top);
  if (!names || names.length === 0) return null;
  const out: GeneralNameType[] = [];
  for (const n of names) {
    const type = GENERAL_NAME_TAGS[n.tag];
    if (!type) return null;
    const len = n.end - n.start;
    if (type === 'iPAddress' ? len !== 4 && len !== 16 : value.subarray(n.start, n.end).some((b) => b > 0x7e))
      return null;
    out.push(type);
  }
  return out;
}

/** ecdsa-with-SHA256 / -SHA384 AlgorithmIdentifiers (no parameters, RFC 5758), hex. */
const ECDSA_ALGORITHMS: Readonly<Record<string, 'SHA-256' | 'SHA-384'>> = {
  '300a06082a8648ce3d040302': 'SHA-256',
  '300a06082a8648ce3d040303': 'SHA-384',
};

/** The hash of an ecdsa-with-SHA256/384 AlgorithmIdentifier (DER), or null for any other algorithm or encoding. */
export function ecdsaAlgorithmHash(algorithm: Uint8Array): 'SHA-256' | 'SHA-384' | null {
  return ECDSA_ALGORITHMS[hex(algorithm)] ?? null;
}

/** The parts of a PKCS#10 request (RFC 2986) the proof-of-possession check reads. */
export interface CsrParts {
  /** The certificationRequestInfo element: the signed bytes. */
  readonly info: Uint8Array;
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
  readonly algorithm: Uint8Array;
  /** The signature value (the BIT STRING's content without the unused-bits byte). */
  readonly signature: Uint8Array;
}

/**
 * A DER PKCS#10 request laid out the plain way: version 0, a Name, a subjectPublicKeyInfo, NO attributes (an empty
 * [0]), an AlgorithmIdentifier and a BIT STRING without unused bits. Null for anything else (the caller then uses
 * the full parser).
 */
export function plainCsrParts(der: Uint8Array): CsrParts | null {
  const top = tlv(der, 0, der.length);
  if (!top || top.tag !== 0x30 || top.end !== der.length) return null;
  const p = children(der, top);
  if (!p || p.length !== 3 || p[0]!.tag !== 0x30 || p[1]!.tag !== 0x30 || p[2]!.tag !== 0x03) return null;
  const [info, alg, sig] = p as [Tlv, Tlv, Tlv];
  if (sig.end - sig.start < 2 || der[sig.start] !== 0) return null;
  const f = children(der, info);
  if (!f || f.length !== 4) return null;
  const [version, subject, spki, attrs] = f as [Tlv, Tlv, Tlv, Tlv];
  if (version.tag !== 0x02 || version.end - version.start !== 1 || der[version.start] !== 0) return null;
  if (subject.tag !== 0x30 || spki.tag !== 0x30 || attrs.tag !== 0xa0 || attrs.end !== attrs.start) return null;
  const elem = (t: Tlv) => der.subarray(t.pos, t.end);
  return {
    info: elem(info),
    subject: elem(subject),
    spki: elem(spki),
    algorithm: elem(alg),
    signature: der.subarray(sig.start + 1, sig.end),
  };
}
