/**
 * hsm-mechanisms: the token can do what this station asks of it, proven by use on the logged-in session (the Hsm
 * port lists no mechanisms): ECDSA signing with the station key (the signature checked with node:crypto), and, when a
 * loaded board profile injects keys (`keyMode: injected`), key injection on each such curve (EC key generation,
 * ECDH derivation and AES key wrap: `generateWrappedDeviceKey` with a throwaway software transport key; the device
 * key it makes is a session object, destroyed by the adapter). Nothing persists on the token.
 */
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import type { DoctorCheck } from '../../../core/api.js';
import type { Curve } from '../../../core/model.js';
import type { Hsm } from '../../../core/ports.js';
import type { BoardProfile } from '../../../core/provisioning/profiles.js';
import { check, skipped } from '../check.js';

/** One capability the station needs from its token, and whether the token showed it. */
export interface MechanismRequirement {
  readonly id: string;
  /** For people: what it is for. */
  readonly what: string;
  /** The PKCS#11 mechanisms it uses. */
  readonly mechanisms: readonly string[];
  /** Profiles that need it (empty: the station itself). */
  readonly neededBy: readonly string[];
  readonly present: boolean;
  /** Why not, when absent. */
  readonly error?: string;
}

const NODE_CURVE: Readonly<Record<Curve, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

/** Sign a random challenge with `stationKey` and check the signature against the key's public half. */
async function probeSigning(hsm: Hsm, stationKey: string): Promise<MechanismRequirement> {
  const base = { id: 'ecdsa-sign', what: 'ECDSA signatures (station and issuing CA keys)', neededBy: [] };
  const signer = await hsm.signer(stationKey);
  if (!signer.ok) return { ...base, mechanisms: ['CKM_ECDSA'], present: false, error: signer.error.message };
  const data = new Uint8Array(randomBytes(32));
  const sig = await signer.value.sign(data);
  const mechanisms = ['CKM_ECDSA', signer.value.algorithm === 'ES384' ? 'SHA-384' : 'SHA-256'];
  if (!sig.ok) return { ...base, mechanisms, present: false, error: sig.error.message };
  const good = verify(
    signer.value.algorithm === 'ES384' ? 'sha384' : 'sha256',
    data,
    { key: Buffer.from(signer.value.publicKeySpki), format: 'der', type: 'spki', dsaEncoding: 'ieee-p1363' },
    sig.value,
  );
  return good
    ? { ...base, mechanisms, present: true }
    : { ...base, mechanisms, present: false, error: 'the signature does not verify with the public key' };
}

/** Key injection on `curve`: wrap a fresh device key to a software transport key. */
async function probeInjection(hsm: Hsm, curve: Curve, neededBy: readonly string[]): Promise<MechanismRequirement> {
  const spki = generateKeyPairSync('ec', { namedCurve: NODE_CURVE[curve] }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  const r = await hsm.generateWrappedDeviceKey({ curve, publicKeySpki: new Uint8Array(spki) });
  return {
    id: `key-injection-${curve}`,
    what: `key injection on ${curve}`,
    mechanisms: ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDH1_DERIVE', 'CKM_AES_KEY_WRAP_PAD'],
    neededBy,
    present: r.ok,
    ...(r.ok ? {} : { error: `${r.error.code}: ${r.error.message}` }),
  };
}

/** Every requirement of this station and its loaded profiles, each tried on the token. */
export async function probeMechanisms(
  hsm: Hsm,
  stationKey: string,
  profiles: readonly BoardProfile[],
): Promise<MechanismRequirement[]> {
  const out = [await probeSigning(hsm, stationKey)];
  const byCurve = new Map<Curve, string[]>();
  for (const p of profiles) if (p.keyMode === 'injected') byCurve.set(p.curve, [...(byCurve.get(p.curve) ?? []), p.id]);
  for (const [curve, ids] of [...byCurve].sort(([a], [b]) => (a < b ? -1 : 1)))
    out.push(await probeInjection(hsm, curve, ids));
  return out;
}

/** hsm-mechanisms from the probed requirements (null: no token session). */
export function checkMechanisms(reqs: readonly MechanismRequirement[] | null): DoctorCheck {
  if (!reqs) return skipped('hsm-mechanisms', 'no token session (see hsm-login)');
  const missing = reqs.filter((r) => !r.present);
  const details = { requirements: reqs };
  if (missing.length === 0)
    return check('hsm-mechanisms', 'pass', `the token does ${reqs.map((r) => r.what).join(', ')}`, undefined, details);
  const station = missing.filter((r) => r.neededBy.length === 0);
  const profiles = [...new Set(missing.flatMap((r) => r.neededBy))];
  return check(
    'hsm-mechanisms',
    'fail',
    missing
      .map((r) => `${r.what} failed (${r.mechanisms.join(', ')}): ${r.error ?? 'absent'}`)
      .concat(profiles.length ? [`profiles that need it cannot run on this token: ${profiles.join(', ')}`] : [])
      .join('; '),
    station.length
      ? 'use a token that offers ECDSA on the station key curve (docs/operations.md "station doctor" lists what the station needs)'
      : `use a token with those mechanisms, or do not use ${profiles.join(', ')} on this station (docs/hsm.md "Key injection")`,
    details,
  );
}
