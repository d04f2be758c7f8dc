/**
 * The registry's strict DER reader of X.509 certificates now lives in core/pki/der.ts (the station's attestation
 * chain check reads certificates with it too); this module keeps the registry's import path.
 */
export { certificateParts, certificateSpki, type CertificateParts } from '../../core/pki/der.js';
