/**
 * Where relying parties check a device certificate's revocation: the schemas of the CRL and OCSP addresses.
 * Their own module (re-exported by core/pki/device-cert.ts) so that reading the station configuration does not
 * load the X.509 stack (issue 12, cold start). Imports zod.
 */
import { z } from 'zod';

const HTTP_URL_RE = /^https?:\/\/[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$/;
/** A CRL or OCSP address in a device certificate: an http(s) URL (openssl fetches http; RFC 5280 4.2.1.13). */
export const RevocationUrlSchema = z.string().max(512).regex(HTTP_URL_RE, 'expected an http(s) URL');

/**
 * Where relying parties check a device certificate's revocation: the CRL distribution point (RFC 5280 4.2.1.13)
 * and the OCSP responder (authorityInfoAccess id-ad-ocsp, RFC 5280 4.2.2.1). Station config `revocation`
 * (written by `station enroll`), overridable by the registry policy `revocationUrls`.
 */
export const RevocationUrlsSchema = z
  .object({ crl: RevocationUrlSchema.optional(), ocsp: RevocationUrlSchema.optional() })
  .strict();
export type RevocationUrls = z.infer<typeof RevocationUrlsSchema>;
