/**
 * Record detail for the supervisor: the run and its signed record, the device certificate and chain parsed
 * into readable fields (@peculiar/x509), the baseline manifest decoded and its JWS verified against the
 * station root, the record signature check, timings, key mode, audit-chain status and sync state.
 */
import 'reflect-metadata';
import {
  CertificatePolicyExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509Certificate,
} from '@peculiar/x509';
import { createHash } from 'node:crypto';
import type { CertificateView, LogEntry, RecordDetail } from '../../core/api.js';
import { MANIFEST_TYP } from '../../core/provisioning/baseline.js';
import { fromBase64Url, toHex } from '../../core/bytes.js';
import { verifyJws } from '../../core/pki/jws.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import type { Clock } from '../../core/ports.js';
import { RECORD_TYP } from '../../core/provisioning/record.js';
import { jwsHeaderOf, recordIssuingChain } from '../../core/provisioning/record-manifest.js';
import type { RunRow } from '../../core/provisioning/store.js';

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};

const KU_NAMES: [KeyUsageFlags, string][] = [
  [KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [KeyUsageFlags.cRLSign, 'cRLSign'],
  [KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

const DN_NAMES: Record<string, string> = {
  '2.5.4.5': 'serialNumber',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.97': 'organizationIdentifier',
  '2.5.4.65': 'pseudonym',
};
/** A distinguished name with attribute OIDs the library leaves numeric named as openssl does. */
const readableDn = (dn: string): string =>
  dn.replace(/(^|,\s*|\+)(\d+(?:\.\d+)+)=/g, (m, sep: string, oid: string) =>
    DN_NAMES[oid] ? `${sep}${DN_NAMES[oid]}=` : m,
  );

/** Readable fields of a DER certificate. */
export function certificateView(der: Uint8Array): CertificateView {
  const c = new X509Certificate(der);
  const ku = c.getExtension(KeyUsagesExtension);
  const eku = c.getExtension(ExtendedKeyUsageExtension);
  const san = c.getExtension(SubjectAlternativeNameExtension);
  const pol = c.getExtension(CertificatePolicyExtension);
  const alg = c.publicKey.algorithm as { name: string; namedCurve?: string };
  const spki = new Uint8Array(c.publicKey.rawData);
  const size = alg.namedCurve === 'P-384' ? 48 : alg.namedCurve === 'P-521' ? 66 : 32;
  const point = alg.namedCurve ? spki.slice(spki.length - (1 + 2 * size)) : spki;
  return {
    subject: readableDn(c.subject),
    issuer: readableDn(c.issuer),
    serialNumber: c.serialNumber.toLowerCase(),
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    sanUris: san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [],
    keyUsage: ku ? KU_NAMES.filter(([f]) => (ku.usages & f) !== 0).map(([, n]) => n) : [],
    extendedKeyUsage: eku ? eku.usages.map((u) => EKU_NAMES[String(u)] ?? String(u)) : [],
    policyOids: pol ? [...pol.policies] : [],
    publicKey: `${alg.name === 'ECDSA' ? 'EC' : alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''} ${toHex(point)}`,
    sha256: createHash('sha256').update(der).digest('hex'),
    pem: toPem(der, 'CERTIFICATE'),
  };
}

function safeView(der: Uint8Array): CertificateView | null {
  try {
    return certificateView(der);
  } catch {
    return null;
  }
}

function decodePayload(jws: string): unknown {
  const p = jws.split('.')[1];
  if (p === undefined) return null;
  try {
    return JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

const asObj = (x: unknown): Record<string, unknown> =>
  x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {};

export interface RecordDetailInput {
  readonly entry: LogEntry;
  readonly run: RunRow;
  readonly record: { readonly recordJson: string; readonly jws: string } | null;
  readonly root: Uint8Array;
  readonly clock: Clock;
  readonly audit: RecordDetail['audit'];
  readonly sync: RecordDetail['sync'];
}

/** Assemble the RecordDetail of one run. */
export async function buildRecordDetail(i: RecordDetailInput): Promise<RecordDetail> {
  const data = i.run.data;
  const anchors = [i.root];
  const recordJson = asObj(i.record ? safeParse(i.record.recordJson) : null);

  let certificate: CertificateView | null = null;
  let chain: CertificateView[] = [];
  if (data.certificate) {
    certificate = safeView(fromBase64Url(data.certificate.der));
    chain = data.certificate.chain.map((c) => safeView(fromBase64Url(c))).filter((x): x is CertificateView => !!x);
  } else if (i.record) {
    const cert = asObj(recordJson['certificate']);
    if (typeof cert['pem'] === 'string') {
      const d = fromPemChain(cert['pem']);
      if (d.ok && d.value[0]) certificate = safeView(d.value[0]);
    }
  }
  if (chain.length === 0 && i.record) {
    // v2: the record's `chain` PEM; v3: its x5c after the station certificate.
    const issuing = recordIssuingChain(recordJson, jwsHeaderOf(i.record.jws));
    if (issuing.ok) chain = issuing.value.map(safeView).filter((x): x is CertificateView => !!x);
  }

  let manifest: RecordDetail['manifest'] = null;
  const mjws = data.manifest?.jws;
  if (mjws) {
    const v = await verifyJws(mjws, { trustAnchors: anchors, clock: i.clock, typ: MANIFEST_TYP });
    const payload = v.ok ? safeParse(new TextDecoder().decode(v.value.payload)) : decodePayload(mjws);
    const m = asObj(payload);
    const verdict = asObj(m['verdict']);
    manifest = {
      measurements: asObj(m['measurements']),
      verdict: {
        pass: verdict['pass'] === true,
        violations: (Array.isArray(verdict['violations']) ? verdict['violations'] : []).map((x) => {
          const o = asObj(x);
          return {
            rule: String(o['rule'] ?? ''),
            expected: JSON.stringify(o['expected'] ?? null),
            actual: JSON.stringify(o['actual'] ?? null),
            message: String(o['message'] ?? ''),
          };
        }),
      },
      policyRef: asObj(m['policyRef']),
      capturedAt: typeof m['capturedAt'] === 'string' ? m['capturedAt'] : '',
      signatureValid: v.ok,
    };
  }

  let recordSignatureValid: boolean | null = null;
  if (i.record) {
    const v = await verifyJws(i.record.jws, { trustAnchors: anchors, clock: i.clock, typ: RECORD_TYP });
    recordSignatureValid = v.ok && new TextDecoder().decode(v.value.payload) === i.record.recordJson;
  }

  const timingsSrc = asObj(recordJson['timings'] ?? data.timings);
  const timings: Record<string, number> = {};
  for (const [k, v] of Object.entries(timingsSrc)) if (typeof v === 'number') timings[k] = v;
  const recKey = asObj(recordJson['key']);
  const mode = data.key?.mode ?? recKey['mode'];

  return {
    entry: i.entry,
    certificate,
    chain,
    manifest,
    timings,
    keyMode: mode === 'onboard' || mode === 'injected' ? mode : null,
    audit: i.audit,
    sync: i.sync,
    recordSignatureValid,
  };
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return null;
  }
}
