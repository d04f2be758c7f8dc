/**
 * The board's PKCS#10 certificate request (RFC 2986), as its firmware writes it: subject CN, the device key's
 * SubjectPublicKeyInfo, no attributes, an ECDSA self-signature (proof of possession). Encoded directly (DER element
 * writers of core/pki/tbs.ts, signature by node:crypto): the same bytes @peculiar/x509's generator writes for the same
 * key and subject (csr.test.ts compares them, openssl verifies the result), without its WebCrypto key imports and
 * ASN.1 schema machinery (~2.4 ms per CSR, 8 % of the simulator's busy time in the bench's 16-board burst).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPublicKey, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import { ECDSA_ALGORITHM, element, integer, name, sequence } from '../../core/pki/tbs.js';
import { nodeCrypto } from './pki.js';

export type CsrCurve = 'P-256' | 'P-384';

const HASH: Record<CsrCurve, 'SHA-256' | 'SHA-384'> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384' };
const NODE_HASH: Record<CsrCurve, string> = { 'P-256': 'sha256', 'P-384': 'sha384' };
/** The characters of an ASN.1 PrintableString; @peculiar/x509 writes a CN made only of them as one. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
/**
 * Subjects @peculiar/x509 does not write as they are (a leading `#` is hex, quotes and backslashes are unescaped):
 * those keep its generator, so every subject gives the CSR it gave.
 */
const REWRITTEN = /^#|["\\]/;

/** Make a PKCS#10 CSR (DER) with subject CN=`subject`, signed by `privateKey` (proof of possession). */
export async function makeCsr(privateKey: KeyObject, curve: CsrCurve, subject: string): Promise<Uint8Array> {
  if (REWRITTEN.test(subject)) return makeCsrGeneric(privateKey, curve, subject);
  const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const info = sequence(
    integer(Uint8Array.of(0)),
    name([{ oid: '2.5.4.3', value: subject, printable: PRINTABLE.test(subject) }]),
    spki,
    Uint8Array.of(0xa0, 0x00), // attributes: [0] IMPLICIT SET OF, empty
  );
  const signature = nodeSign(NODE_HASH[curve], info, { key: privateKey, dsaEncoding: 'der' });
  return sequence(info, ECDSA_ALGORITHM[HASH[curve]], element(0x03, Uint8Array.of(0), signature));
}

/** The same CSR through @peculiar/x509's generator (WebCrypto keys): for the subjects it rewrites, and for tests. */
export async function makeCsrGeneric(privateKey: KeyObject, curve: CsrCurve, subject: string): Promise<Uint8Array> {
  const alg = { name: 'ECDSA', namedCurve: curve };
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const priv = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const pub = await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ CN: [subject] }],
      keys: { privateKey: priv, publicKey: pub },
      signingAlgorithm: { name: 'ECDSA', hash: HASH[curve] },
    },
    nodeCrypto,
  );
  return new Uint8Array(csr.rawData);
}
