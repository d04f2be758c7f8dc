/**
 * Station side of the delegated revocation signer (docs/lifecycle.md "Delegated revocation signer"), run by
 * `station enroll --revocation-signer`. The issuing CA key never leaves the station HSM; instead:
 *
 * 1. `POST /v1/stations/revocation-signer/request` (LS-Sig of the station key, body `{}`): the registry answers a
 *    JWS signed with its receipt key holding a CSR of a key it generated in its own token. The JWS is verified
 *    with the PINNED registry certificate (registry.pem given at enroll), never with a key from the message;
 *    anything else is refused with SYNC_REGISTRY_UNTRUSTED before the station issues or sends anything else;
 * 2. the station's issuing CA (HSM) issues that key a certificate (core/pki/ca.ts
 *    `issueRevocationSignerCertificate`: the CA's own subject name, CA:false, digitalSignature + cRLSign,
 *    id-kp-OCSPSigning), audited `revocation-signer.issued` with the certificate before it is sent;
 * 3. `POST /v1/stations/revocation-signer/certificate` (LS-Sig) `{requestId, certificatePem}`: the registry
 *    answers a signed confirmation naming the request and the certificate's SHA-256, verified the same way;
 *    audited `revocation-signer.installed`.
 *
 * The only credential is the station's own request signature, checked by the registry against the enrolled
 * station certificate: no bearer token is ever sent. Both requests go through the registry client
 * (station/hq/client.ts: URL policy, pinned TLS, LS-Sig); the answers are verified here.
 */
import { fromBase64Url } from '../core/bytes.js';
import { fail, type StationError } from '../core/errors.js';
import type { Clock, Signer } from '../core/ports.js';
import { err, ok, type Result } from '../core/result.js';
import { issueRevocationSignerCertificate } from '../core/pki/ca.js';
import { verifyCsr } from '../core/pki/csr.js';
import { toPem } from '../core/pki/pem.js';
import { verifySignerInstalled, verifySignerRequest } from '../core/hq/revocation-signer.js';
import { createRegistryClient } from './hq/client.js';

/** Validity of the delegated signer certificate (capped at the issuing CA's notAfter). */
export const REVOCATION_SIGNER_VALIDITY_DAYS = 825;

export interface DelegationParams {
  /** Registry base URL (its policy is checked by the transport on every call). */
  readonly url: string;
  /** The pinned registry certificate (DER of registry.pem): both answers must verify with it. */
  readonly registryCertificate: Uint8Array;
  /** The pinned registry TLS certificate (DER), for an https URL. */
  readonly tlsCertificate: Uint8Array | null;
  readonly stationId: string;
  /** The station signing key (LS-Sig of both requests). */
  readonly signer: Signer;
  /** The issuing CA key (station HSM) and its certificate chain (issuing CA first, then the root). */
  readonly caSigner: Signer;
  readonly caChain: readonly Uint8Array[];
  readonly clock: Clock;
  /** Station audit trail. */
  readonly audit: (type: string, payload: Readonly<Record<string, unknown>>) => void;
  readonly timeoutMs?: number;
}

export interface DelegationOutcome {
  readonly registryId: string;
  readonly requestId: string;
  readonly serialNumber: string;
  readonly certificateSha256: string;
  readonly certificatePem: string;
  readonly notAfter: string;
  readonly installedAt: string;
}

const untrusted = (what: string, e: StationError): Result<never> =>
  fail('SYNC_REGISTRY_UNTRUSTED', `${what}: ${e.message}`);

/** Run the three steps (see the module comment). Nothing is issued unless step 1's answer verified. */
export async function delegateRevocationSigner(p: DelegationParams): Promise<Result<DelegationOutcome>> {
  const caCert = p.caChain[0];
  if (!caCert) return fail('CONFIG_INVALID', 'the issuing CA certificate is missing');
  const registry = createRegistryClient({
    url: p.url,
    tlsCertificate: p.tlsCertificate,
    registryCertificate: p.registryCertificate,
    stationId: p.stationId,
    signer: p.signer,
    clock: p.clock,
    timeoutMs: p.timeoutMs ?? 30_000,
  });
  const reqJws = await registry.revocationSignerRequest();
  if (!reqJws.ok) return err(reqJws.error.error);
  const request = await verifySignerRequest(reqJws.value, p.registryCertificate, p.stationId);
  if (!request.ok) return untrusted('revocation signer request', request.error);
  let csrDer: Uint8Array;
  try {
    csrDer = fromBase64Url(request.value.csr);
  } catch {
    return fail('SYNC_REGISTRY_UNTRUSTED', 'revocation signer request: the CSR is not base64url');
  }
  const csr = await verifyCsr(csrDer);
  if (!csr.ok) return untrusted('revocation signer request', csr.error);
  const issued = await issueRevocationSignerCertificate({
    issuer: { signer: p.caSigner, certificate: caCert },
    subjectPublicKeySpki: csr.value.publicKeySpki,
    validityDays: REVOCATION_SIGNER_VALIDITY_DAYS,
    clock: p.clock,
  });
  if (!issued.ok) return issued;
  const certificatePem = toPem(issued.value.der, 'CERTIFICATE');
  // Every certificate the CA issues is on record before it leaves the station.
  p.audit('revocation-signer.issued', {
    registryId: request.value.registryId,
    requestId: request.value.requestId,
    serialNumber: issued.value.serialNumber,
    certificateSha256: issued.value.sha256,
    notAfter: issued.value.notAfter,
    certificatePem,
  });
  const doneJws = await registry.revocationSignerInstall({ requestId: request.value.requestId, certificatePem });
  if (!doneJws.ok) return err(doneJws.error.error);
  const done = await verifySignerInstalled(doneJws.value, p.registryCertificate, {
    stationId: p.stationId,
    requestId: request.value.requestId,
    certificateSha256: issued.value.sha256,
  });
  if (!done.ok) return untrusted('revocation signer confirmation', done.error);
  p.audit('revocation-signer.installed', {
    registryId: done.value.registryId,
    requestId: done.value.requestId,
    certificateSha256: done.value.certificateSha256,
    installedAt: done.value.installedAt,
  });
  return ok({
    registryId: done.value.registryId,
    requestId: done.value.requestId,
    serialNumber: issued.value.serialNumber,
    certificateSha256: issued.value.sha256,
    certificatePem,
    notAfter: issued.value.notAfter,
    installedAt: done.value.installedAt,
  });
}
