/**
 * PKCS#10 certificate requests from boards: parse, check proof of possession (the self-signature),
 * allow only EC P-256 / P-384 keys, and optionally pin the expected key.
 */
import 'reflect-metadata';
import { Name, Pkcs10CertificateRequest, Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { bytesEqual } from '../bytes.js';
import { fail } from '../errors.js';
import type { Curve } from '../model.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { ecdsaAlgorithmHash, nameAttributes, plainCsrParts, tlv } from './der.js';
import {
  algorithmHash,
  buf,
  derToRawSignature,
  importVerifyKey,
  spkiCurve,
  verifyRaw,
  type EcdsaParams,
} from './ecdsa.js';
import { buildName, signerCrypto, type SimpleSubject } from './x509.js';

const MAX_CSR_BYTES = 8 * 1024;
const ECDSA_SIG_OIDS = new Set(['1.2.840.10045.4.3.2', '1.2.840.10045.4.3.3']); // ecdsa-with-SHA256 / SHA384

export interface VerifiedCsr {
  /** SPKI DER of the requested key. */
  readonly publicKeySpki: Uint8Array;
  /** Subject as an RFC 4514-style string (informational only: the certificate subject comes from the profile). */
  readonly subject: string;
  readonly curve: Curve;
}

/**
 * Verify a DER PKCS#10 CSR. CSR_INVALID: not a CSR, not an EC P-256/P-384 key, or a different key than
 * `expected.publicKeySpki`. CSR_POP_FAILED: the self-signature does not verify (no proof of possession).
 */
export async function verifyCsr(
  csrDer: Uint8Array,
  expected?: { publicKeySpki?: Uint8Array },
): Promise<Result<VerifiedCsr>> {
  if (!(csrDer instanceof Uint8Array) || csrDer.length === 0) return fail('CSR_INVALID', 'the CSR is empty');
  if (csrDer.length > MAX_CSR_BYTES) return fail('CSR_INVALID', `the CSR is larger than ${MAX_CSR_BYTES} bytes`);
  const outer = tlv(csrDer, 0, csrDer.length);
  if (!outer || outer.tag !== 0x30 || outer.end !== csrDer.length)
    return fail('CSR_INVALID', 'the CSR is not one DER SEQUENCE (bad length or bytes after its end)');
  const plain = await verifyPlainCsr(csrDer, expected?.publicKeySpki);
  if (plain) return ok(plain);
  let csr: Pkcs10CertificateRequest;
  let spki: Uint8Array;
  let subject: string;
  let sigOid: string;
  try {
    csr = new Pkcs10CertificateRequest(buf(csrDer));
    spki = new Uint8Array(csr.publicKey.rawData);
    subject = csr.subject;
    const asn = AsnConvert.parse(csrDer, CertificationRequest);
    sigOid = asn.signatureAlgorithm.algorithm;
    if (asn.certificationRequestInfo.version !== 0) return fail('CSR_INVALID', 'the CSR version is not v1 (0)');
  } catch (e) {
    return fail('CSR_INVALID', `the CSR cannot be parsed: ${(e as Error).message}`);
  }
  const curve = spkiCurve(spki);
  if (!curve) return fail('CSR_INVALID', 'the CSR key is not an EC P-256 or P-384 public key');
  if (!ECDSA_SIG_OIDS.has(sigOid))
    return fail('CSR_INVALID', `the CSR signature algorithm ${sigOid} is not ECDSA with SHA-256/384`);
  if (expected?.publicKeySpki && !bytesEqual(expected.publicKeySpki, spki))
    return fail('CSR_INVALID', 'the CSR is for a different key than expected');
  let valid = false;
  try {
    valid = await csr.verify(globalThis.crypto);
  } catch {
    valid = false;
  }
  if (!valid)
    return fail('CSR_POP_FAILED', 'the CSR signature does not verify with its own key (no proof of possession)');
  return ok({ publicKeySpki: spki, subject, curve });
}

/**
 * The fast path of verifyCsr for the plain request boards send (der.ts plainCsrParts: no attributes, UTF8/Printable/
 * IA5 names): read with the strict DER reader, every check of verifyCsr, the self-signature verified over the
 * certificationRequestInfo bytes. Only a request that passes every check is answered here; anything else (including
 * every refusal) is left to the full parser, whose verdict and message stand.
 */
async function verifyPlainCsr(der: Uint8Array, expectedSpki: Uint8Array | undefined): Promise<VerifiedCsr | null> {
  const parts = plainCsrParts(der);
  if (!parts || !nameAttributes(parts.subject)) return null;
  const hash = ecdsaAlgorithmHash(parts.algorithm);
  const curve = spkiCurve(parts.spki);
  if (!hash || !curve || (expectedSpki && !bytesEqual(expectedSpki, parts.spki))) return null;
  const key = await importVerifyKey(parts.spki);
  const raw = derToRawSignature(parts.signature, curve);
  if (!key || !raw || !(await verifyRaw(key.key, curve, hash, raw, parts.info))) return null;
  const subjectDer = parts.subject.slice();
  let subject: string | undefined;
  return {
    publicKeySpki: parts.spki.slice(),
    curve,
    // Informational: formatted on demand.
    get subject() {
      subject ??= new Name(subjectDer).toString();
      return subject;
    },
  };
}

/** A PKCS#10 request (DER) for the key of `signer`, self-signed through it (an HSM key at headquarters). */
export async function createCsr(signer: Signer, subject: SimpleSubject): Promise<Result<Uint8Array>> {
  const name = buildName(subject);
  if (!name.ok) return name;
  const sc = await signerCrypto(signer);
  if (!sc.ok) return sc;
  try {
    const csr = await Pkcs10CertificateRequestGenerator.create(
      {
        name: name.value,
        keys: { publicKey: sc.value.publicKey, privateKey: sc.value.privateKey },
        signingAlgorithm: { name: 'ECDSA', hash: algorithmHash(signer.algorithm) } as EcdsaParams,
      },
      sc.value.crypto,
    );
    return ok(new Uint8Array(csr.rawData));
  } catch (e) {
    const se = (e as { error?: { code?: string } }).error;
    if (se && typeof se.code === 'string') return { ok: false, error: (e as { error: never }).error };
    return fail('CERT_ISSUE_FAILED', `CSR generation failed: ${(e as Error).message}`);
  }
}
