/**
 * Station commissioning: the one contract between `station commission` and headquarters (`registry
 * commission-station`, `POST /v1/stations/commission`), and between `station init` and its development HQ.
 *
 * The station generates two keys in its own PKCS#11 token: the issuing-CA key and the station signing key. With the
 * CA key it signs (a) a PKCS#10 request for its CA certificate and (b) its own station certificate, issued BEFORE
 * the CA certificate exists: a signature needs only the CA key and the CA's subject name, which the station derives
 * with `stationCaSubject` and headquarters checks. It signs the request document with the station key (x5c = the
 * station certificate). Headquarters, holding the manufacturer root or an HQ intermediate in its own token, checks
 * every signature (proofs of possession of both keys), issues the station CA certificate (path length 0, name and
 * EKU constraints, a validity its policy bounds), enrols the station with the full chain (station certificate,
 * station CA, HQ chain up to the root) in ONE transaction, and answers with a document signed by its receipt key
 * (the registry certificate the station pins). One round trip, online or carried by hand.
 *
 * This module holds the wire schemas and the names both sides derive; the issuing side is core/hq/commission-issue.ts
 * (registry and the development HQ), the station side station/commission/. docs/formats.md "Commissioning" and
 * docs/deployment.md describe it for a third party.
 */
import { z } from 'zod';
import { StationIdSchema, WorkOrderSchema } from './protocol.js';

export const COMMISSION_REQUEST_TYP = 'line-station-commission-request+jws';
export const COMMISSION_REQUEST_SCHEMA = 'line-station/commission-request/v1';
export const COMMISSION_ANSWER_TYP = 'line-station-commission-answer+jws';
export const COMMISSION_ANSWER_SCHEMA = 'line-station/commission-answer/v1';

/** The largest commissioning request or answer JWS accepted (characters). */
export const MAX_COMMISSION_JWS_CHARS = 64 * 1024;

/** The CN prefix of every station CA; the CN is `${STATION_CA_CN_PREFIX}${stationId}`. */
export const STATION_CA_CN_PREFIX = 'Line Station Issuing CA ';
// The defaults live in ./commission-defaults.ts (the registry's configuration reads them without these schemas).
export { DEFAULT_ORGANIZATION, DEFAULT_STATION_CA_EKU } from './commission-defaults.js';
import { DEFAULT_ORGANIZATION } from './commission-defaults.js';

/**
 * The subject of a station's issuing CA: CN = "Line Station Issuing CA <stationId>", O = the organisation.
 * The station derives it to sign its station certificate before the CA certificate exists; headquarters issues the
 * CA certificate with exactly this name and refuses a request whose CSR names anything else.
 */
export function stationCaSubject(
  stationId: string,
  organization: string = DEFAULT_ORGANIZATION,
): { commonName: string; organization: string } {
  return { commonName: `${STATION_CA_CN_PREFIX}${stationId}`, organization };
}

const ISO = z.iso.datetime({ offset: false });
const HEX64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
/** base64url (no padding) of DER bytes, bounded. */
const B64URL_DER = z
  .string()
  .min(16)
  .max(16 * 1024)
  .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url without padding');
const SHORT_TEXT = z
  .string()
  .max(128)
  .regex(/^[\x20-\x7e]*$/, 'expected printable ASCII');

/** The token the station's keys live in, as the station read it (for the audit trail at both ends; not trusted). */
export const CommissionTokenInfoSchema = z
  .object({
    manufacturer: SHORT_TEXT,
    model: SHORT_TEXT,
    serial: SHORT_TEXT,
    label: SHORT_TEXT,
    /** The token profile id from resources/tokens (core/hsm/token-profile.ts), when one matched. */
    profile: SHORT_TEXT.optional(),
  })
  .strict();
export type CommissionTokenInfo = z.infer<typeof CommissionTokenInfoSchema>;

/**
 * Payload of the commissioning request: a JWS, typ `line-station-commission-request+jws`, ES256/ES384, signed with the
 * STATION key, header x5c = [the station certificate] (standard base64 DER).
 */
export const CommissionRequestSchema = z
  .object({
    schema: z.literal(COMMISSION_REQUEST_SCHEMA),
    stationId: StationIdSchema,
    /** Random per commissioning (uuid), the same when a half-finished commissioning is resumed. */
    requestId: z.uuid(),
    /** O of the station CA and station certificate subjects (headquarters refuses another than its own). */
    organization: SHORT_TEXT.min(1),
    /** PKCS#10 (DER, base64url) for the station CA key, self-signed by it; subject = `stationCaSubject(...)`. */
    caCsr: B64URL_DER,
    /**
     * The station certificate (DER, base64url): issued by the CA key under `stationCaSubject(...)`, CN = stationId,
     * CA:false, keyUsage digitalSignature; its key signs this JWS. Same bytes as x5c[0].
     */
    stationCertificate: B64URL_DER,
    token: CommissionTokenInfoSchema,
    requestedAt: ISO,
  })
  .strict();
export type CommissionRequest = z.infer<typeof CommissionRequestSchema>;

/** Body of `POST /v1/stations/commission` (anonymous: the one-time enrolment code is the authorisation). */
export const CommissionBodySchema = z
  .object({
    /** The one-time enrolment code printed by `registry commission-station --id S` (ENROLMENT_CODE_RE). */
    code: z.string().max(64),
    /** The compact request JWS. */
    request: z.string().max(MAX_COMMISSION_JWS_CHARS),
  })
  .strict();
export type CommissionBody = z.infer<typeof CommissionBodySchema>;

/**
 * Payload of the answer: a JWS, typ `line-station-commission-answer+jws`, signed with the registry receipt key (x5c =
 * the registry certificate), verified by the station with the registry certificate it PINS (`--registry-cert`),
 * never with a key taken from the message. The development HQ of `station init` signs with its root key instead
 * (the station pins that root).
 */
export const CommissionAnswerSchema = z
  .object({
    schema: z.literal(COMMISSION_ANSWER_SCHEMA),
    registryId: z.string().min(1).max(64),
    stationId: StationIdSchema,
    requestId: z.uuid(),
    /** SHA-256 (hex) of the request JWS (its compact ASCII bytes) this answers. */
    requestSha256: HEX64,
    /** The station CA certificate (DER, base64url) issued by the HQ CA. */
    caCertificate: B64URL_DER,
    /** The HQ chain above it, DER base64url: the HQ CA first, the HQ root last (one element when the CA is the root). */
    hqChain: z.array(B64URL_DER).min(1).max(4),
    /** SHA-256 (hex) of the station certificate enrolled (= the request's). */
    stationCertificateSha256: HEX64,
    /** Work orders the station may submit records for (empty: any). */
    workOrders: z.array(WorkOrderSchema).max(1000),
    issuedAt: ISO,
  })
  .strict();
export type CommissionAnswer = z.infer<typeof CommissionAnswerSchema>;

/** Answer body of `POST /v1/stations/commission`: `{answer}` (the compact answer JWS). */
export const CommissionResponseSchema = z.object({ answer: z.string().max(MAX_COMMISSION_JWS_CHARS) }).strict();
export type CommissionResponse = z.infer<typeof CommissionResponseSchema>;

/**
 * One-time enrolment codes: "LS-" + 6 groups of 4 base32 (RFC 4648 alphabet, no padding) characters = 120 bits,
 * e.g. LS-ABCD-EFGH-IJKL-MNOP-QRST-UV23. Stored only as SHA-256 of the normalised code (upper case, no spaces);
 * valid once, until it expires (default 24 h).
 */
export const ENROLMENT_CODE_RE = /^LS(-[A-Z2-7]{4}){6}$/;

/** Normalise a typed code (trim, upper case, spaces removed); null when it is not a well-formed code. */
export function normaliseEnrolmentCode(code: string): string | null {
  const c = code.trim().toUpperCase().replace(/\s+/g, '');
  return ENROLMENT_CODE_RE.test(c) ? c : null;
}
