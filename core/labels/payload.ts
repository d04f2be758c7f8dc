/**
 * What a board's label says (docs/formats.md "Board label"): the label fields taken from a signed provisioning
 * record, and the exact QR payload — `LSL1 <certificate SHA-256 hex> <device URN>` — with its parser. Pure: the
 * device URN is read from the record's certificate (its first `uniformResourceIdentifier` subject alternative name),
 * so the label names the identity the certificate carries, nothing the station made up.
 */
import 'reflect-metadata';
import { SubjectAlternativeNameExtension } from '@peculiar/x509';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { parseCertificate } from '../pki/chain.js';
import { fromPem } from '../pki/pem.js';
import { sha256Hex } from '../bytes.js';

/** The first token of every label QR payload: the payload's format and version. */
export const QR_PAYLOAD_TAG = 'LSL1';

/** Printable ASCII without space: what a URN on a label may hold (RFC 8141 URNs are a subset). */
const URN_RE = /^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[\x21-\x7e]{1,220}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
/** What a text field of the label may hold: printable ASCII, 1..64 characters (a board's serial is its own claim). */
const TEXT_RE = /^[\x20-\x7e]{1,64}$/;

/** The fields of one board label. All public: nothing on a label is a secret (docs/threat-model.md). */
export interface LabelData {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly workOrder: string;
  /** The provisioning date, YYYY-MM-DD (UTC) of the record's completion. */
  readonly date: string;
  /** SHA-256 (lower-case hex) of the device certificate's DER: the certificate fingerprint. */
  readonly certificateSha256: string;
  /** The device URN: the certificate's first URI subject alternative name starting `urn:`. */
  readonly deviceUrn: string;
  /** The record the label was made from (for the audit of a reprint; not printed). */
  readonly recordId: string;
}

/** The QR payload of a label: `LSL1 <certificateSha256> <deviceUrn>`, one line, ASCII, no trailing newline. */
export function qrPayload(d: Pick<LabelData, 'certificateSha256' | 'deviceUrn'>): string {
  return `${QR_PAYLOAD_TAG} ${d.certificateSha256} ${d.deviceUrn}`;
}

/** Parse a scanned label QR payload (exactly the form qrPayload writes); LABEL_DATA_INVALID otherwise. */
export function parseQrPayload(s: string): Result<{ certificateSha256: string; deviceUrn: string }> {
  const parts = s.split(' ');
  if (parts.length !== 3 || parts[0] !== QR_PAYLOAD_TAG)
    return fail('LABEL_DATA_INVALID', `QR payload: expected "${QR_PAYLOAD_TAG} <sha256> <urn>"`);
  const [, certificateSha256, deviceUrn] = parts as [string, string, string];
  if (!SHA256_RE.test(certificateSha256))
    return fail('LABEL_DATA_INVALID', 'QR payload: the fingerprint is not 64 lower-case hex characters');
  if (!URN_RE.test(deviceUrn)) return fail('LABEL_DATA_INVALID', 'QR payload: the device URN is not a urn:…');
  return ok({ certificateSha256, deviceUrn });
}

/** The record fields a label is made from (a StoredRecord's signed JSON, parsed). */
export interface LabelSource {
  readonly recordId: string;
  readonly workOrder: string;
  readonly completedAt: string;
  readonly board: { readonly chipId: string; readonly serialNumber: string };
  readonly certificate: { readonly sha256: string; readonly pem: string };
}

/**
 * The label of a record: its board, work order and date, and its certificate's fingerprint and device URN. The
 * fingerprint is recomputed from the certificate and must equal the record's (else LABEL_DATA_INVALID: the label
 * would vouch for another certificate). Text fields outside printable ASCII (1..64) are refused, not mangled.
 */
export async function labelFromRecord(r: LabelSource): Promise<Result<LabelData>> {
  const der = fromPem(r.certificate.pem, 'CERTIFICATE');
  if (!der.ok) return fail('LABEL_DATA_INVALID', `record ${r.recordId}: certificate: ${der.error.message}`);
  const cert = parseCertificate(der.value, 'the device certificate');
  if (!cert.ok) return fail('LABEL_DATA_INVALID', `record ${r.recordId}: ${cert.error}`);
  const sha = await sha256Hex(der.value);
  if (sha !== r.certificate.sha256)
    return fail('LABEL_DATA_INVALID', `record ${r.recordId}: certificate.sha256 does not match the certificate`);
  const san = cert.value.getExtension(SubjectAlternativeNameExtension);
  const urn = san?.names.items.find((n) => n.type === 'url' && n.value.startsWith('urn:'))?.value;
  if (!urn || !URN_RE.test(urn))
    return fail(
      'LABEL_DATA_INVALID',
      `record ${r.recordId}: the certificate has no device URN (a subjectAltName URI urn:…, printable ASCII)`,
    );
  const fields = { serialNumber: r.board.serialNumber, chipId: r.board.chipId, workOrder: r.workOrder };
  for (const [k, v] of Object.entries(fields))
    if (!TEXT_RE.test(v))
      return fail('LABEL_DATA_INVALID', `record ${r.recordId}: ${k} is not 1..64 printable ASCII characters`, {
        field: k,
      });
  const date = r.completedAt.slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date))
    return fail('LABEL_DATA_INVALID', `record ${r.recordId}: completedAt is not an ISO date`);
  return ok({ ...fields, date, certificateSha256: sha, deviceUrn: urn, recordId: r.recordId });
}
