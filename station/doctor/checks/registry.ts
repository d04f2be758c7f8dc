/**
 * The registry, through the one registry client (station/hq/client.ts, its URL policy and pinned TLS): reachable,
 * answering as the registry whose certificate the station pinned (the health answer's `audience` is the SHA-256 of
 * the registry certificate it signs with), that certificate still valid; and the station's clock against the
 * registry's (the `time` of the same health answer, against the midpoint of the exchange).
 */
import type { DoctorCheck } from '../../../core/api.js';
import { registryAudience } from '../../../core/hq/protocol.js';
import { parseCertificate } from '../../../core/pki/chain.js';
import { SKEW_MS } from '../../../core/pki/x509.js';
import type { Result } from '../../../core/result.js';
import { check, skipped } from '../check.js';
import type { DoctorRegistry, RegistryHealth } from '../ports.js';

/** Above this the clock check warns. */
export const CLOCK_SKEW_WARN_MS = 5_000;
/**
 * Above this it fails: certificates are back-dated by SKEW_MS (core/pki/x509.ts), so a station clock further ahead
 * issues certificates not yet valid where they are checked (the registry also refuses signed requests beyond
 * MAX_CLOCK_SKEW_S, 300 s).
 */
export const CLOCK_SKEW_FAIL_MS = SKEW_MS;

const ENROLL = (url: string) =>
  `get the current registry.pem (and for https its TLS certificate) from headquarters, then: station enroll --registry ${url} --registry-cert registry.pem${url.startsWith('https:') ? ' --registry-tls-cert tls.pem' : ''}`;

/** registry: reachable with its pinned certificates. Returns the health answer for the clock check. */
export async function checkRegistry(
  r: DoctorRegistry | null,
  now: Date,
): Promise<{ check: DoctorCheck; health: Result<RegistryHealth> | null }> {
  const none = (why: string, action: string) => ({ check: check('registry', 'skipped', why, action), health: null });
  if (!r)
    return none('no registry is configured (offline)', 'station enroll --registry URL --registry-cert registry.pem');
  if (!r.url)
    return none(
      'enrolled for offline bundles only (no registry URL)',
      'to sync online: station enroll --registry URL --registry-cert registry.pem',
    );
  const url = r.url;
  if (!r.certificate.ok)
    return { check: check('registry', 'fail', r.certificate.error.message, ENROLL(url)), health: null };
  const cert = parseCertificate(r.certificate.value, 'registry certificate');
  if (!cert.ok) return { check: check('registry', 'fail', cert.error, ENROLL(url)), health: null };
  if (cert.value.notAfter < now)
    return {
      check: check(
        'registry',
        'fail',
        `the pinned registry certificate expired at ${cert.value.notAfter.toISOString()}`,
        ENROLL(url),
      ),
      health: null,
    };
  const health = await r.health();
  if (!health.ok) {
    const e = health.error;
    const action =
      e.code === 'SYNC_UNREACHABLE'
        ? `start the registry or restore the network to it; check from this machine: curl -sS ${url}/v1/health`
        : ENROLL(url);
    return { check: check('registry', 'fail', e.message, action, { url, code: e.code }), health };
  }
  const h = health.value;
  const pinned = await registryAudience(r.certificate.value);
  const rtt = h.receivedAt.getTime() - h.sentAt.getTime();
  const details = { url, registryId: h.health.registryId, roundTripMs: rtt };
  if (h.health.audience !== pinned)
    return {
      check: check(
        'registry',
        'fail',
        `the registry at ${url} (${h.health.registryId}) signs with another certificate than the pinned registry.pem`,
        ENROLL(url),
        { ...details, pinnedAudience: pinned, registryAudience: h.health.audience },
      ),
      health,
    };
  const tls = url.startsWith('https:') ? 'TLS certificate pinned' : 'loopback http';
  return {
    check: check(
      'registry',
      'pass',
      `${url} answers in ${rtt} ms as ${h.health.registryId} (${tls}; signing certificate = pinned registry.pem)`,
      undefined,
      details,
    ),
    health,
  };
}

/** clock-skew: the registry's time against this clock, at the midpoint of the health exchange. */
export function checkClockSkew(health: Result<RegistryHealth> | null): DoctorCheck {
  if (!health) return skipped('clock-skew', 'no registry to compare with (see registry)');
  if (!health.ok) return skipped('clock-skew', 'the registry did not answer (see registry)');
  const h = health.value;
  const mid = (h.sentAt.getTime() + h.receivedAt.getTime()) / 2;
  const skew = Math.round(mid - Date.parse(h.health.time));
  const uncertainty = Math.ceil((h.receivedAt.getTime() - h.sentAt.getTime()) / 2);
  const text = `this clock is ${Math.abs(skew)} ms ${skew >= 0 ? 'ahead of' : 'behind'} the registry's (±${uncertainty} ms)`;
  const details = { skewMs: skew, uncertaintyMs: uncertainty };
  const action = 'synchronise the clock with NTP: sudo timedatectl set-ntp true (check: timedatectl status)';
  if (Math.abs(skew) > CLOCK_SKEW_FAIL_MS) return check('clock-skew', 'fail', text, action, details);
  if (Math.abs(skew) > CLOCK_SKEW_WARN_MS) return check('clock-skew', 'warn', text, action, details);
  return check('clock-skew', 'pass', text, undefined, details);
}
