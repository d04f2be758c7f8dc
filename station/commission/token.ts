/**
 * The station's token at commissioning: open it (module, label, token profile, library parameters), check that it
 * can make the station's keys BEFORE anything is generated or written (core/hsm/requirements.ts `signing-key-p256`,
 * HSM_TOKEN_LACKS_MECHANISM naming what it lacks), generate the issuing-CA key and the station signing key in it
 * (sensitive, non-extractable, only the attributes its profile says it accepts: native/hsm `generateSigningKey`,
 * which reads the attributes back and destroys a key the token did not protect: HSM_KEY_EXPORTABLE), or find them
 * again by label when a commissioning resumes. Also says which board profiles the token cannot serve.
 */
import type { CommissionTokenInfo } from '../../core/hq/commission.js';
import { fail } from '../../core/errors.js';
import { profilesUnsupported, requirementResult, type UnsupportedProfile } from '../../core/hsm/requirements.js';
import type { Logger, Signer } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import { mapPkcs11Error, openHsm, resolveTokenConfig, type HsmAdmin } from '../../native/hsm/index.js';
import { acquireModule, releaseModule } from '../../native/hsm/module-registry.js';
import { ulong } from '../../native/hsm/pkcs11.js';

/** Where the station's token is, as config.json `hsm` names it (paths absolute here). */
export interface CommissionTokenRef {
  readonly module: string;
  readonly tokenLabel: string;
  /** Token profile id (resources/tokens); absent: matched from the module. */
  readonly profile?: string;
  /** The token's own directory (NSS softoken key database), absolute. */
  readonly tokenDir?: string;
  /** SoftHSM2: its configuration file (set as SOFTHSM2_CONF before the module loads), absolute. */
  readonly softhsmConf?: string;
}

/** The labels of the station's two keys in the token. */
export interface StationKeyLabels {
  readonly issuingCa: string;
  readonly station: string;
}

/** Open the token for commissioning (logged in as user). */
export async function openCommissionToken(
  ref: CommissionTokenRef,
  pin: string,
  logger: Logger,
): Promise<Result<HsmAdmin>> {
  if (ref.softhsmConf) process.env['SOFTHSM2_CONF'] = ref.softhsmConf;
  const tok = resolveTokenConfig({
    module: ref.module,
    tokenLabel: ref.tokenLabel,
    ...(ref.profile !== undefined ? { profile: ref.profile } : {}),
    ...(ref.tokenDir !== undefined ? { tokenDir: ref.tokenDir } : {}),
  });
  if (!tok.ok) return tok;
  return openHsm({ module: ref.module, tokenLabel: ref.tokenLabel, pin, logger, ...tok.value });
}

/**
 * The label of the token in slot `slot` (the decimal slot id `pkcs11-tool --list-slots` shows) of `module`:
 * HSM_TOKEN_ABSENT naming the slots that hold a token when none is there. Only reads the slot list.
 */
export function tokenLabelOfSlot(module: string, slot: number): Result<string> {
  const m = acquireModule(module);
  if (!m.ok) return m;
  try {
    const seen: string[] = [];
    for (const s of m.value.lib.C_GetSlotList(true)) {
      const id = ulong(s);
      const label = m.value.lib.C_GetTokenInfo(s).label.trim();
      seen.push(`${id} "${label}"`);
      if (id === slot) return ok(label);
    }
    return fail(
      'HSM_TOKEN_ABSENT',
      `no token in slot ${slot} of ${module} (slots with a token: ${seen.join(', ') || 'none'})`,
    );
  } catch (e) {
    return err(mapPkcs11Error(e, 'C_GetSlotList'));
  } finally {
    releaseModule(m.value);
  }
}

/** What a token offers the station, checked before any key is made. */
export interface TokenFitness {
  readonly info: CommissionTokenInfo;
  /** Board profiles this token cannot serve (e.g. injected keys without RFC 5649 wrap), each with its coded error. */
  readonly unsupportedProfiles: readonly UnsupportedProfile[];
  /** False when the token's profile says it does not enforce sensitive/non-extractable (NSS softoken). */
  readonly protectionEnforced: boolean | null;
}

/**
 * HSM_TOKEN_LACKS_MECHANISM when the token cannot make P-256 signing keys; otherwise what it is and which board
 * profiles (`boardProfiles`) it cannot serve. Reads only: nothing is generated.
 */
export async function checkTokenFitness(
  hsm: HsmAdmin,
  boardProfiles: readonly { id: string; keyMode: 'onboard' | 'injected'; curve: 'P-256' | 'P-384' }[],
): Promise<Result<TokenFitness>> {
  const reqs = await hsm.checkRequirements();
  if (!reqs.ok) return reqs;
  const p256 = reqs.value.find((r) => r.requirement === 'signing-key-p256');
  if (!p256) return fail('INTERNAL', 'no signing-key-p256 requirement checked');
  const usable = requirementResult(p256);
  if (!usable.ok)
    return fail(
      'HSM_TOKEN_LACKS_MECHANISM',
      `${usable.error.message}: this token cannot hold the station's issuing CA and signing keys; nothing was generated or written`,
      usable.error.details,
    );
  const info = await hsm.info();
  if (!info.ok) return info;
  const clip = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 128);
  return ok({
    info: {
      manufacturer: clip(info.value.manufacturer),
      model: clip(info.value.model),
      serial: clip(info.value.tokenSerial),
      label: clip(info.value.tokenLabel),
      ...(hsm.profile ? { profile: hsm.profile.id } : {}),
    },
    unsupportedProfiles: profilesUnsupported({ requirements: reqs.value }, boardProfiles),
    protectionEnforced: hsm.profile ? hsm.profile.keyProtection.enforced : null,
  });
}

/** Labels of `labels` that already name a private or public key in the token. */
export async function existingKeys(hsm: HsmAdmin, labels: StationKeyLabels): Promise<Result<string[]>> {
  const out: string[] = [];
  for (const l of [labels.issuingCa, labels.station]) {
    const k = await hsm.findKey(l);
    if (!k.ok) return k;
    if (k.value) out.push(l);
  }
  return ok(out);
}

/** The two keys' signers. */
export interface StationKeys {
  readonly caSigner: Signer;
  readonly stationSigner: Signer;
  /** Labels generated now (the others were found again: a resumed commissioning). */
  readonly generated: readonly string[];
}

/**
 * Generate each key that is not in the token yet (P-256), then take both signers. A key found again (a resumed
 * commissioning) must be protected like a new one: HSM_KEY_EXPORTABLE otherwise.
 */
export async function ensureStationKeys(hsm: HsmAdmin, labels: StationKeyLabels): Promise<Result<StationKeys>> {
  const generated: string[] = [];
  for (const l of [labels.issuingCa, labels.station]) {
    const k = await hsm.findKey(l);
    if (!k.ok) return k;
    if (k.value) {
      if ((k.value.unprotected ?? []).length > 0)
        return fail(
          'HSM_KEY_EXPORTABLE',
          `key "${l}" in the token could leave it: ${k.value.unprotected!.join(', ')}`,
          {
            label: l,
          },
        );
      continue;
    }
    const g = await hsm.generateSigningKey(l, 'P-256');
    if (!g.ok) return g;
    generated.push(l);
  }
  const ca = await hsm.signer(labels.issuingCa);
  if (!ca.ok) return err(ca.error);
  const st = await hsm.signer(labels.station);
  if (!st.ok) return err(st.error);
  return ok({ caSigner: ca.value, stationSigner: st.value, generated });
}
