/**
 * hsm-mechanisms: the token offers what this station needs (core/hsm/requirements.ts: P-256 signing keys, and key
 * injection when a loaded board profile injects keys), first from its mechanism list (the inspection's requirement
 * checks), then proven by use on the logged-in session: ECDSA signing with the station key (the signature checked
 * with node:crypto), and key injection on each curve of such a profile (EC key generation, ECDH derivation and AES
 * key wrap: `generateWrappedDeviceKey` with a throwaway software transport key; the device key it makes is a session
 * object the adapter destroys). Nothing persists on the token.
 */
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import type { DoctorCheck } from '../../../core/api.js';
import type { Curve } from '../../../core/model.js';
import type { Hsm } from '../../../core/ports.js';
import type { BoardProfile } from '../../../core/provisioning/profiles.js';
import {
  profileRequirements,
  REQUIREMENT_PURPOSE,
  type RequirementCheck,
  type TokenRequirement,
} from '../../../core/hsm/requirements.js';
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

/** A requirement the station puts on its token, and who needs it (empty: the station itself). */
export interface StationNeed {
  readonly requirement: TokenRequirement;
  readonly neededBy: readonly string[];
}

/** What this station needs: signing keys on P-256 (its keys), key injection when a loaded profile injects keys. */
export function stationNeeds(profiles: readonly BoardProfile[]): StationNeed[] {
  const injected = profiles.filter((p) => profileRequirements(p).includes('key-injection')).map((p) => p.id);
  return [
    { requirement: 'signing-key-p256', neededBy: [] },
    ...(injected.length ? [{ requirement: 'key-injection' as const, neededBy: injected }] : []),
  ];
}

/**
 * hsm-mechanisms: each need against the token's mechanism list (the inspection's requirement checks; null when the
 * token was not reached) and against the probes by use (null: no session, listed mechanisms only).
 */
export function checkMechanisms(
  needs: readonly StationNeed[],
  listed: readonly RequirementCheck[] | null,
  probed: readonly MechanismRequirement[] | null,
): DoctorCheck {
  if (!listed) return skipped('hsm-mechanisms', 'the token was not reached (see hsm-token)');
  const problems: string[] = [];
  const refused = new Set<string>();
  let stationItself = false;
  for (const n of needs) {
    const c = listed.find((x) => x.requirement === n.requirement);
    if (c?.satisfied) continue;
    problems.push(c ? c.message : `the token was not checked for ${REQUIREMENT_PURPOSE[n.requirement]}`);
    n.neededBy.forEach((id) => refused.add(id));
    if (n.neededBy.length === 0) stationItself = true;
  }
  for (const p of probed ?? []) {
    if (p.present) continue;
    problems.push(`${p.what} failed when tried (${p.mechanisms.join(', ')}): ${p.error ?? 'absent'}`);
    p.neededBy.forEach((id) => refused.add(id));
    if (p.neededBy.length === 0) stationItself = true;
  }
  const details = { needs, requirements: listed, probes: probed };
  if (problems.length) {
    const ids = [...refused].sort();
    return check(
      'hsm-mechanisms',
      'fail',
      [...problems, ...(ids.length ? [`board profiles refused on this token: ${ids.join(', ')}`] : [])].join('; '),
      stationItself
        ? 'use a token that generates EC P-256 keys and signs with CKM_ECDSA (docs/operations.md "station doctor")'
        : `use a token with those mechanisms, or do not use ${ids.join(', ')} on this station (docs/hsm.md "Key injection")`,
      details,
    );
  }
  const what = needs
    .map((n) =>
      n.requirement === 'key-injection'
        ? `key injection (${n.neededBy.join(', ')})`
        : REQUIREMENT_PURPOSE[n.requirement],
    )
    .join(', ');
  return check(
    'hsm-mechanisms',
    'pass',
    probed
      ? `the token lists and performs what the station needs: ${what}`
      : `the token lists what the station needs: ${what} (not tried by use: no token session, see hsm-login)`,
    undefined,
    details,
  );
}
