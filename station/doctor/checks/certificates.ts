/**
 * certificates: the station certificate belongs to the station signing key and the issuing CA certificate to the
 * issuing CA key (same public key as the token's), both chains verify to the root the station pins, and neither is
 * expired or about to expire. The pinned root is the trust anchor of the station's configuration: the headquarters
 * root `pki.hqRoot` written by `station commission` (or `station init`: its development HQ's root); for a station
 * made before commissioning existed, the last certificate of `pki.caChain` (`pinnedRoot`).
 */
import type { DoctorCheck } from '../../../core/api.js';
import { bytesEqual } from '../../../core/bytes.js';
import type { Signer } from '../../../core/ports.js';
import { parseCertificate, verifyCertificateChain } from '../../../core/pki/chain.js';
import { DAY_MS } from '../../../core/pki/x509.js';
import type { Result } from '../../../core/result.js';
import { check } from '../check.js';

/** Warn when the station certificate ends within this many days (time to run station rotate-key). */
export const STATION_CERT_WARN_DAYS = 30;
/** Warn when the issuing CA certificate ends within this many days (device certificates are capped at its end). */
export const ISSUING_CA_WARN_DAYS = 365;

export interface CertificateInputs {
  readonly caChain: readonly Uint8Array[];
  readonly stationChain: readonly Uint8Array[];
  /** The pinned HQ root (config.json pki.hqRoot); null when none is configured. */
  readonly hqRoot: Uint8Array | null;
  /** The keys' signers from the token (null: no session, the keys are not compared). */
  readonly keys: { readonly issuingCa: Result<Signer>; readonly station: Result<Signer> } | null;
  readonly now: Date;
}

/**
 * The root the station pins: the HQ root of its configuration, else (a station made before commissioning existed)
 * the last certificate of its CA chain.
 */
export function pinnedRoot(caChain: readonly Uint8Array[], hqRoot: Uint8Array | null): Uint8Array | null {
  if (hqRoot) return hqRoot;
  return caChain.length ? caChain[caChain.length - 1]! : null;
}

const ACTION_CHAIN =
  'the PEM files named by pki.caChain and pki.stationChain in config.json must hold the certificates of this station (leaf first, up to the root); restore them from the backup of the data dir';

/** The certificates check over the files and the token's keys. */
export async function checkCertificates(i: Result<CertificateInputs>): Promise<DoctorCheck> {
  if (!i.ok) return check('certificates', 'fail', i.error.message, ACTION_CHAIN, { code: i.error.code });
  const { caChain, stationChain, keys, now, hqRoot } = i.value;
  const root = pinnedRoot(caChain, hqRoot);
  if (!root || stationChain.length === 0)
    return check('certificates', 'fail', 'a certificate chain file holds no certificate', ACTION_CHAIN);
  const anchor = parseCertificate(root, 'pinned root');
  if (!anchor.ok) return check('certificates', 'fail', anchor.error, ACTION_CHAIN);
  const problems: string[] = [];
  let action = ACTION_CHAIN;
  for (const [what, chain] of [
    ['station certificate', stationChain],
    ['issuing CA certificate', caChain],
  ] as const) {
    const v = await verifyCertificateChain(chain, [root], now);
    if (!v.ok) problems.push(`${what} does not chain to the pinned ${hqRoot ? 'HQ ' : ''}root: ${v.error}`);
  }
  const compared: string[] = [];
  if (keys) {
    for (const [what, chain, signer, label] of [
      ['station certificate', stationChain, keys.station, 'station signing key'],
      ['issuing CA certificate', caChain, keys.issuingCa, 'issuing CA key'],
    ] as const) {
      const cert = parseCertificate(chain[0]!, what);
      if (!cert.ok) continue; // reported by the chain check
      if (!signer.ok) problems.push(`${label}: ${signer.error.message}`);
      else if (!bytesEqual(new Uint8Array(cert.value.publicKey.rawData), signer.value.publicKeySpki)) {
        problems.push(`the ${what} is not for the token's ${label} (different public key)`);
        if (label === 'station signing key')
          action =
            'the station certificate must be the one issued for the current station key: finish the key rotation (station rotate-key --answer ANSWER.json) or restore pki/station-chain.pem';
      } else compared.push(label);
    }
  }
  const details = {
    pinnedRoot: anchor.value.subject,
    pinnedRootSource: hqRoot ? 'pki.hqRoot' : 'pki.caChain',
    keysCompared: compared,
  };
  if (problems.length) return check('certificates', 'fail', problems.join('; '), action, details);
  const st = parseCertificate(stationChain[0]!, 'station certificate');
  const ca = parseCertificate(caChain[0]!, 'issuing CA certificate');
  const days = (c: typeof st) => (c.ok ? Math.floor((c.value.notAfter.getTime() - now.getTime()) / DAY_MS) : null);
  const stDays = days(st);
  const caDays = days(ca);
  const ends = `station certificate ends in ${stDays} d, issuing CA in ${caDays} d`;
  if (stDays !== null && stDays < STATION_CERT_WARN_DAYS)
    return check(
      'certificates',
      'warn',
      `${ends}`,
      'station rotate-key (docs/lifecycle.md "Station key rotation")',
      details,
    );
  if (caDays !== null && caDays < ISSUING_CA_WARN_DAYS)
    return check(
      'certificates',
      'warn',
      `${ends}: device certificates are cut at the issuing CA's end`,
      'plan a new issuing CA for this station (docs/formats.md "Certificate profiles": device certificates are capped at its end)',
      details,
    );
  if (!keys)
    return check(
      'certificates',
      'skipped',
      `both chains verify to the pinned root "${anchor.value.subject}"; the keys were not compared (no token session: see hsm-login)`,
      undefined,
      details,
    );
  return check(
    'certificates',
    'pass',
    `station and issuing CA certificates match their token keys and chain to the pinned root "${anchor.value.subject}"; ${ends}`,
    undefined,
    details,
  );
}
