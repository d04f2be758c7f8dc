/**
 * RFC 5280 certificate revocation lists, signed through an injected Signer (in production the issuing CA key
 * held in a PKCS#11 token). Version 2, thisUpdate / nextUpdate, CRL number and authority key identifier
 * extensions, one entry per revoked serial with its reason code (certificateHold for suspended devices).
 */
import 'reflect-metadata';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509';
import {
  AuthorityKeyIdentifierExtension,
  Extension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509Crl,
  X509CrlGenerator,
  type X509CrlReason,
} from '@peculiar/x509';
import { bytesEqual } from '../bytes.js';
import { fail } from '../errors.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { algorithmHash, buf, type EcdsaParams } from './ecdsa.js';
import { signerCrypto } from './x509.js';

export interface CrlEntry {
  /** Serial number (hex). */
  readonly serial: string;
  /** ISO revocation time. */
  readonly revokedAt: string;
  /** RFC 5280 CRLReason code (0..10 except 7); 6 = certificateHold. */
  readonly reason: number;
}

export interface CrlParams {
  readonly signer: Signer;
  /** DER of the issuing CA certificate whose key is `signer`. */
  readonly issuerCertificate: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Monotonic CRL number (>= 1). */
  readonly crlNumber: number;
  readonly entries: readonly CrlEntry[];
}

const VALID_REASONS = new Set([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);

/** Hex of a positive INTEGER's content octets: even length, a leading 00 when the high bit is set. */
export function serialHexForDer(serial: string): string {
  let h = serial.toLowerCase().replace(/^0+(?=.)/, '');
  if (h.length % 2) h = `0${h}`;
  if (parseInt(h[0]!, 16) >= 8) h = `00${h}`;
  return h;
}

/** Build and sign a CRL (DER). CERT_ISSUE_FAILED for bad input, the signer's own error when signing fails. */
export async function createCrl(p: CrlParams): Promise<Result<Uint8Array>> {
  let issuer: X509Certificate;
  try {
    issuer = new X509Certificate(buf(p.issuerCertificate));
  } catch (e) {
    return fail('CERT_ISSUE_FAILED', `CRL issuer certificate cannot be parsed: ${(e as Error).message}`);
  }
  if (!bytesEqual(new Uint8Array(issuer.publicKey.rawData), p.signer.publicKeySpki))
    return fail('CERT_ISSUE_FAILED', 'the CRL signer key is not the issuer certificate key');
  if (!Number.isSafeInteger(p.crlNumber) || p.crlNumber < 1)
    return fail('CERT_ISSUE_FAILED', 'CRL number must be a positive integer');
  if (!(p.nextUpdate > p.thisUpdate)) return fail('CERT_ISSUE_FAILED', 'CRL nextUpdate must be after thisUpdate');
  for (const e of p.entries) {
    if (!/^[0-9a-fA-F]{1,40}$/.test(e.serial)) return fail('CERT_ISSUE_FAILED', `bad CRL entry serial ${e.serial}`);
    if (!VALID_REASONS.has(e.reason)) return fail('CERT_ISSUE_FAILED', `bad CRL reason code ${e.reason}`);
    if (Number.isNaN(Date.parse(e.revokedAt))) return fail('CERT_ISSUE_FAILED', `bad revocation time ${e.revokedAt}`);
  }
  const sc = await signerCrypto(p.signer);
  if (!sc.ok) return sc;
  try {
    const ski = issuer.getExtension(SubjectKeyIdentifierExtension);
    const aki = ski
      ? new AuthorityKeyIdentifierExtension(ski.keyId, false)
      : await AuthorityKeyIdentifierExtension.create(buf(p.signer.publicKeySpki), false, sc.value.crypto);
    const crlNumber = new Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(p.crlNumber)));
    const crl = await X509CrlGenerator.create(
      {
        issuer: issuer.subjectName,
        thisUpdate: p.thisUpdate,
        nextUpdate: p.nextUpdate,
        signingKey: sc.value.privateKey,
        signingAlgorithm: { name: 'ECDSA', hash: algorithmHash(p.signer.algorithm) } as EcdsaParams,
        extensions: [aki, crlNumber],
        entries: p.entries.map((e) => ({
          serialNumber: serialHexForDer(e.serial),
          revocationDate: new Date(e.revokedAt),
          reason: e.reason as X509CrlReason,
        })),
      },
      sc.value.crypto,
    );
    const der = new Uint8Array(crl.rawData);
    const check = new X509Crl(buf(der));
    if (!(await check.verify({ publicKey: issuer }, globalThis.crypto)))
      return fail('CERT_ISSUE_FAILED', 'the CRL does not verify with the issuer key (signer fault)');
    return ok(der);
  } catch (e) {
    const se = (e as { error?: { code?: string } }).error;
    if (se && typeof se.code === 'string') return { ok: false, error: (e as { error: never }).error };
    return fail('CERT_ISSUE_FAILED', `CRL generation failed: ${(e as Error).message}`);
  }
}
