/**
 * The delegated revocation signer on the wire (docs/lifecycle.md "Delegated revocation signer"): headquarters
 * generates a key in its own token and asks the station for a certificate; the station's issuing CA (in the
 * station HSM) issues it (core/pki/ca.ts `issueRevocationSignerCertificate`); headquarters then signs the
 * station's CRLs and OCSP answers with that key. Both registry answers are JWS signed with the registry receipt
 * key and checked by the station against the registry certificate pinned at `station enroll` (never a key from
 * the message). Both requests are station requests (LS-Sig with the enrolled station key): no bearer token.
 * Pure apart from WebCrypto: used by the station (station/revocation-signer.ts) and the registry (service.ts).
 */
import { z } from 'zod';
import { utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import { signJws } from '../pki/jws.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { verifyDocument } from './jws.js';

/** LS-Sig, body `{}`: the registry's signed request for a certificate (the same one while it is pending). */
export const SIGNER_REQUEST_PATH = '/v1/stations/revocation-signer/request';
/** LS-Sig, body `InstallBody`: the certificate the station issued; answered with the signed confirmation. */
export const SIGNER_INSTALL_PATH = '/v1/stations/revocation-signer/certificate';
export const SIGNER_REQUEST_TYP = 'line-station-revocation-signer-request+jws';
export const SIGNER_REQUEST_SCHEMA = 'line-station/revocation-signer-request/v1';
export const SIGNER_INSTALLED_TYP = 'line-station-revocation-signer-installed+jws';
export const SIGNER_INSTALLED_SCHEMA = 'line-station/revocation-signer-installed/v1';
/** Largest answer JWS the station accepts (a CSR is < 1 KiB). */
export const MAX_SIGNER_JWS_CHARS = 16 * 1024;

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const StationId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);
const Iso = z.iso.datetime({ offset: true });

/** What the registry signs when it asks for a certificate. */
export const SignerRequestSchema = z
  .object({
    schema: z.literal(SIGNER_REQUEST_SCHEMA),
    registryId: z.string().min(1).max(128),
    stationId: StationId,
    requestId: z.uuid(),
    /** base64url DER PKCS#10, self-signed by the registry token key (proof of possession). */
    csr: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .max(8 * 1024),
    requestedAt: Iso,
  })
  .strict();
export type SignerRequest = z.infer<typeof SignerRequestSchema>;

/** What the registry signs once it checked and installed the certificate. */
export const SignerInstalledSchema = z
  .object({
    schema: z.literal(SIGNER_INSTALLED_SCHEMA),
    registryId: z.string().min(1).max(128),
    stationId: StationId,
    requestId: z.uuid(),
    certificateSha256: Hex64,
    installedAt: Iso,
  })
  .strict();
export type SignerInstalled = z.infer<typeof SignerInstalledSchema>;

/** Body of SIGNER_INSTALL_PATH. */
export const InstallBodySchema = z
  .object({
    requestId: z.uuid(),
    certificatePem: z
      .string()
      .min(1)
      .max(16 * 1024),
  })
  .strict();
export type InstallBody = z.infer<typeof InstallBodySchema>;

/** HTTP 200 body of both routes. */
export const SignedAnswerSchema = z.object({ jws: z.string().min(1).max(MAX_SIGNER_JWS_CHARS) }).strip();

/** Sign one of the two answers with the registry receipt key (x5c = registry chain). */
export async function signSignerDocument(
  signer: Signer,
  registryChain: readonly Uint8Array[],
  doc: SignerRequest | SignerInstalled,
): Promise<Result<string>> {
  return signJws({
    signer,
    payload: utf8(canonicalJson(doc)),
    header: {
      typ: doc.schema === SIGNER_REQUEST_SCHEMA ? SIGNER_REQUEST_TYP : SIGNER_INSTALLED_TYP,
      kid: doc.registryId,
      x5c: registryChain,
    },
  });
}

/** Verify the registry's request with the pinned registry certificate; it must be addressed to `stationId`. */
export async function verifySignerRequest(
  jws: string,
  registryCertificate: Uint8Array,
  stationId: string,
): Promise<Result<SignerRequest>> {
  const d = await verifyDocument(
    'revocation signer request',
    jws,
    SIGNER_REQUEST_TYP,
    SignerRequestSchema,
    registryCertificate,
    MAX_SIGNER_JWS_CHARS,
  );
  if (!d.ok) return d;
  if (d.value.payload.stationId !== stationId)
    return fail(
      'INPUT_INVALID',
      `revocation signer request: for station ${d.value.payload.stationId}, not ${stationId}`,
    );
  return ok(d.value.payload);
}

/** Verify the registry's confirmation with the pinned registry certificate; it must name this request and cert. */
export async function verifySignerInstalled(
  jws: string,
  registryCertificate: Uint8Array,
  expect: { readonly stationId: string; readonly requestId: string; readonly certificateSha256: string },
): Promise<Result<SignerInstalled>> {
  const d = await verifyDocument(
    'revocation signer confirmation',
    jws,
    SIGNER_INSTALLED_TYP,
    SignerInstalledSchema,
    registryCertificate,
    MAX_SIGNER_JWS_CHARS,
  );
  if (!d.ok) return d;
  for (const k of ['stationId', 'requestId', 'certificateSha256'] as const)
    if (d.value.payload[k] !== expect[k])
      return fail(
        'INPUT_INVALID',
        `revocation signer confirmation: ${k} is ${d.value.payload[k]}, expected ${expect[k]}`,
      );
  return ok(d.value.payload);
}
