/**
 * The simulated board vendor's factory PKI: a vendor root CA (self-signed, P-256) and per-board
 * attestation certificates (subject serialNumber = chipId). The vendor root key stays in the sim state
 * dir; only the root certificate is handed to the station (`vendor-root.pem`).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './fsutil.js';

/** Node's WebCrypto typed as the DOM `Crypto` that @peculiar/x509 expects. */
export const nodeCrypto = webcrypto as unknown as X509Crypto;
/** Node's WebCrypto with node's own types. */
const subtle = webcrypto.subtle;

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface VendorPki {
  readonly rootCert: x509.X509Certificate;
  readonly rootKey: CryptoKey;
  readonly rootPem: string;
  readonly rootPath: string;
}

/** PEM-armour DER bytes. */
export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** DER bytes of the first PEM block with `label`. */
export function fromPem(pem: string, label: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m?.[1]) throw new Error(`no ${label} PEM block`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

const serial = (): string => '01' + randomBytes(15).toString('hex');

/** Load the vendor PKI from `stateDir`, creating it on first use. */
export async function loadOrCreateVendorPki(stateDir: string): Promise<VendorPki> {
  const rootPath = join(stateDir, 'vendor-root.pem');
  const keyPath = join(stateDir, 'vendor-root-key.pem');
  if (existsSync(rootPath) && existsSync(keyPath)) {
    const rootPem = readFileSync(rootPath, 'utf8');
    const rootCert = new x509.X509Certificate(fromPem(rootPem, 'CERTIFICATE'));
    const rootKey = await subtle.importKey(
      'pkcs8',
      fromPem(readFileSync(keyPath, 'utf8'), 'PRIVATE KEY'),
      ECDSA_P256,
      false,
      ['sign'],
    );
    return { rootCert, rootKey, rootPem, rootPath };
  }
  const keys = (await subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: [{ CN: ['Line Station Simulated Vendor Root CA'] }, { O: ['LS Sim Silicon'] }],
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 20 * 365 * DAY),
      keys,
      signingAlgorithm: SIGN_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, nodeCrypto),
      ],
    },
    nodeCrypto,
  );
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', keys.privateKey));
  writeFileAtomic(keyPath, toPem(pkcs8, 'PRIVATE KEY'), 0o600);
  const rootPem = toPem(new Uint8Array(rootCert.rawData), 'CERTIFICATE');
  writeFileAtomic(rootPath, rootPem);
  return { rootCert, rootKey: keys.privateKey, rootPem, rootPath };
}

/** Issue the factory attestation certificate (DER) of chip `chipId` for its attestation public key (SPKI DER). */
export async function issueAttestationCert(
  pki: VendorPki,
  chipId: string,
  publicKeySpki: Uint8Array,
): Promise<Uint8Array> {
  const publicKey = await subtle.importKey('spki', publicKeySpki, ECDSA_P256, true, ['verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: [{ CN: [`LS attestation ${chipId}`] }, { '2.5.4.5': [chipId] }],
      issuer: pki.rootCert.subject,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 20 * 365 * DAY),
      publicKey,
      signingKey: pki.rootKey,
      signingAlgorithm: SIGN_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, nodeCrypto),
        await x509.AuthorityKeyIdentifierExtension.create(pki.rootCert, false, nodeCrypto),
      ],
    },
    nodeCrypto,
  );
  return new Uint8Array(cert.rawData);
}
