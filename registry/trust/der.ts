/**
 * A minimal, strict DER reader of X.509 certificates (RFC 5280 4.1) for the registry's per-record device
 * certificate check: the parts ingest compares and verifies (tbsCertificate bytes, signature algorithm and value,
 * serial, issuer and subject names as DER, validity, subjectPublicKeyInfo, and the extensions it needs:
 * basicConstraints, authority and subject key identifiers). Parsing a certificate with node:crypto's
 * X509Certificate costs more than verifying its signature; this reader costs a fraction of it. Anything it does not
 * expect (indefinite or non-minimal lengths, trailing bytes, unknown layouts) makes it answer null, and the caller
 * then decides with node:crypto. Imports nothing.
 */

interface Tlv {
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
function tlv(der: Uint8Array, pos: number, limit: number): Tlv | null {
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
}

const OID_BASIC_CONSTRAINTS = '0603551d13';
const OID_SKI = '0603551d0e';
const OID_AKI = '0603551d23';

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Children of a constructed element; null if they do not tile it exactly. */
function children(der: Uint8Array, el: Tlv): Tlv[] | null {
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

/** The extensions the checks read, from the [3] element; null on any malformed extension or a repeated one. */
function extensions(
  der: Uint8Array,
  el: Tlv,
): { isCa: boolean; aki: Uint8Array | null; ski: Uint8Array | null } | null {
  const outer = children(der, el);
  if (!outer || outer.length !== 1 || outer[0]!.tag !== 0x30) return null;
  const list = children(der, outer[0]!);
  if (!list) return null;
  const seen = new Set<string>();
  let isCa = false;
  let aki: Uint8Array | null = null;
  let ski: Uint8Array | null = null;
  for (const e of list) {
    const parts = e.tag === 0x30 ? children(der, e) : null;
    if (!parts || parts.length < 2 || parts.length > 3 || parts[0]!.tag !== 0x06) return null;
    const oid = hex(der.subarray(parts[0]!.pos, parts[0]!.end));
    if (seen.has(oid)) return null;
    seen.add(oid);
    if (parts.length === 3 && (parts[1]!.tag !== 0x01 || parts[1]!.end - parts[1]!.start !== 1)) return null;
    const value = parts[parts.length - 1]!;
    if (value.tag !== 0x04) return null;
    const inner = tlv(der, value.start, value.end);
    if (!inner || inner.end !== value.end) return null;
    if (oid === OID_BASIC_CONSTRAINTS) {
      const bc = inner.tag === 0x30 ? children(der, inner) : null;
      if (!bc) return null;
      const first = bc[0];
      if (first && first.tag === 0x01) {
        if (first.end - first.start !== 1) return null;
        isCa = der[first.start] !== 0;
      }
    } else if (oid === OID_SKI) {
      if (inner.tag !== 0x04) return null;
      ski = der.subarray(inner.start, inner.end);
    } else if (oid === OID_AKI) {
      const a = inner.tag === 0x30 ? children(der, inner) : null;
      if (!a) return null;
      const kid = a.find((x) => x.tag === 0x80);
      aki = kid ? der.subarray(kid.start, kid.end) : null;
    }
  }
  return { isCa, aki, ski };
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
  let ext: ReturnType<typeof extensions> = { isCa: false, aki: null, ski: null };
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
    authorityKeyId: ext!.aki,
    subjectKeyId: ext!.ski,
  };
}

/** The subjectPublicKeyInfo element (tag, length and content) of a DER certificate, or null if not readable. */
export function certificateSpki(der: Uint8Array): Uint8Array | null {
  return certificateParts(der)?.spki ?? null;
}
