/**
 * PKCS#11 adapter (pkcs11js) implementing the `Hsm` port, plus the admin functions `station init` needs: the
 * `HsmAdmin` facade over one open token and `openHsm`. The parts live beside it: module-registry.ts (load,
 * C_Initialize, reference counts), session.ts (sessions, login, recovery), objects.ts, keys.ts, signing.ts,
 * injection.ts, mechanisms.ts; token differences come from the token profile (core/hsm/token-profile.ts,
 * resources/tokens/*.json). See docs/hsm.md.
 */
import type { Curve } from '../../core/model.js';
import type { HsmInfo, HsmKeyInfo, Logger, Signer, TransportKey, WrappedDeviceKey, Hsm } from '../../core/ports.js';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import type { TokenProfile } from '../../core/hsm/token-profile.js';
import {
  checkRequirement,
  checkRequirements,
  requirementResult,
  rfc5649WrapMechanism,
  type MechanismInfo,
  type RequirementCheck,
  type TokenRequirement,
} from '../../core/hsm/requirements.js';
import { mapPkcs11Error } from './errors.js';
import { acquireModule, releaseModule, type LoadedModule } from './module-registry.js';
import { TokenSession } from './session.js';
import { CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS, P, findAll, ulong, type Handle } from './pkcs11.js';
import { keyInfo } from './objects.js';
import * as keys from './keys.js';
import { signer } from './signing.js';
import { checkTransportKey, generateWrappedDeviceKey } from './injection.js';
import { readMechanisms } from './mechanisms.js';
import { tokenProfileFor } from './token-profiles.js';

export interface HsmConfig {
  /** Path of the PKCS#11 module (.so). */
  readonly module: string;
  /** CKA token label (CK_TOKEN_INFO.label, trailing blanks ignored). */
  readonly tokenLabel: string;
  /** User PIN. Kept in memory for re-login after session loss; never logged. */
  readonly pin: string;
  readonly logger?: Logger;
  /** Number of extra sessions used for concurrent signing (default 4, 1..16). */
  readonly signSessions?: number;
  /** C_Initialize library parameters (NSS softoken: `configdir='sql:DIR' …`; see `libraryParametersFor`). */
  readonly libraryParameters?: string;
  /**
   * The token profile (resources/tokens): undefined = the shipped profile matching the module and token, null = none
   * (the station's defaults: every template attribute, CKM_AES_KEY_WRAP_KWP for RFC 5649).
   */
  readonly profile?: TokenProfile | null;
}

/** The Hsm port plus the token administration used by `station init`. */
export interface HsmAdmin extends Hsm {
  /** The token profile in use (null: none matched; station defaults). */
  readonly profile: TokenProfile | null;
  /**
   * Generate a token-resident EC signing key pair (private: sensitive, not extractable, sign only).
   * Both halves get the same CKA_LABEL and a random CKA_ID. Refuses (INPUT_INVALID) if a key with the label exists;
   * HSM_TOKEN_LACKS_MECHANISM if the token cannot make such keys.
   */
  generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>>;
  /** Store an X.509 certificate (DER) as a token object with this label (replaces a certificate with the same label). */
  importCertificate(label: string, der: Uint8Array): Promise<Result<{ id: string }>>;
  /** Attributes (never values) of the private key with this label, or null if there is none. */
  findKey(label: string): Promise<Result<HsmKeyInfo | null>>;
  /**
   * Station key rotation (station/rotate-key.ts): destroy the private and public key objects labelled `label`
   * (certificate objects are kept). Returns how many objects were destroyed (0: none had the label).
   */
  destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>>;
  /** The station's mechanisms the token offers (C_GetMechanismList/Info, read once) and how many it lists. */
  mechanisms(): Promise<Result<{ listed: number; mechanisms: readonly MechanismInfo[] }>>;
  /** Every station requirement checked against the token's mechanisms (core/hsm/requirements.ts). */
  checkRequirements(): Promise<Result<RequirementCheck[]>>;
}

/** The facade: one open token, its profile and its mechanism list. */
class Pkcs11Hsm implements HsmAdmin {
  private mechanismCache: { listed: number; mechanisms: MechanismInfo[] } | null = null;

  constructor(
    private readonly t: TokenSession,
    readonly profile: TokenProfile | null,
    private readonly tokenName: string,
  ) {}

  /** Token, slot and key inventory (attributes only, never key values). */
  async info(): Promise<Result<HsmInfo>> {
    const t = this.t;
    return t.run('info', (s) => {
      const ti = t.lib.C_GetTokenInfo(t.slot);
      const state = t.lib.C_GetSessionInfo(s).state;
      const found: HsmKeyInfo[] = [];
      for (const h of findAll(t.lib, s, [{ type: P.CKA_TOKEN, value: true }])) {
        const k = keyInfo(t.lib, s, h);
        if (k) found.push(k);
      }
      found.sort((a, b) => a.label.localeCompare(b.label) || a.class.localeCompare(b.class));
      return {
        module: t.mod.path,
        slotId: t.slotKey,
        tokenLabel: ti.label.trim(),
        tokenSerial: ti.serialNumber.trim(),
        manufacturer: ti.manufacturerID.trim(),
        model: ti.model.trim(),
        loggedIn: state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS,
        keys: found,
      };
    });
  }

  async signer(label: string): Promise<Result<Signer>> {
    return signer(this.t, label);
  }

  async certificate(label: string): Promise<Result<Uint8Array | null>> {
    return keys.readCertificate(this.t, label);
  }

  async generateWrappedDeviceKey(transport: TransportKey): Promise<Result<WrappedDeviceKey>> {
    const point = checkTransportKey(transport);
    if (!point.ok) return point;
    const req = await this.ensure('key-injection');
    if (!req.ok) return req;
    // ensure() passed, so the profile names a wrap mechanism (or there is no profile: the PKCS#11 3.0 one).
    return generateWrappedDeviceKey(this.t, point.value, rfc5649WrapMechanism(this.profile) ?? 'CKM_AES_KEY_WRAP_KWP');
  }

  async generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>> {
    if (curve === 'P-256' || curve === 'P-384') {
      const req = await this.ensure(curve === 'P-256' ? 'signing-key-p256' : 'signing-key-p384');
      if (!req.ok) return req;
    }
    return keys.generateSigningKey(this.t, this.profile, label, curve);
  }

  async importCertificate(label: string, der: Uint8Array): Promise<Result<{ id: string }>> {
    return keys.importCertificate(this.t, label, der);
  }

  async findKey(label: string): Promise<Result<HsmKeyInfo | null>> {
    return keys.findKey(this.t, label);
  }

  async destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>> {
    return keys.destroyKeyPair(this.t, label);
  }

  async mechanisms(): Promise<Result<{ listed: number; mechanisms: readonly MechanismInfo[] }>> {
    if (this.t.closed) return fail('HSM_SESSION_LOST', 'HSM adapter is closed');
    if (this.mechanismCache) return ok(this.mechanismCache);
    const r = readMechanisms(this.t.lib, this.t.slot);
    if (!r.ok) return r;
    this.mechanismCache = r.value;
    return ok(r.value);
  }

  async checkRequirements(): Promise<Result<RequirementCheck[]>> {
    const m = await this.mechanisms();
    if (!m.ok) return m;
    return ok(checkRequirements(m.value.mechanisms, this.profile, this.tokenName));
  }

  /** HSM_TOKEN_LACKS_MECHANISM unless the token meets the requirement. */
  private async ensure(req: TokenRequirement): Promise<Result<void>> {
    const m = await this.mechanisms();
    if (!m.ok) return m;
    const r = requirementResult(checkRequirement(req, m.value.mechanisms, this.profile, this.tokenName));
    if (!r.ok) this.t.log?.log('error', 'the token lacks a mechanism', { requirement: req, code: r.error.code });
    return r;
  }

  async close(): Promise<void> {
    return this.t.close();
  }
}

/** The slot holding the token with this label (first match), its token info, and every label seen. */
export function findTokenSlot(
  mod: LoadedModule,
  tokenLabel: string,
): Result<{ slot: Handle | null; info: { manufacturerID: string; model: string } | null; seen: string[] }> {
  const seen: string[] = [];
  try {
    for (const s of mod.lib.C_GetSlotList(true)) {
      let ti: { label: string; manufacturerID: string; model: string };
      try {
        ti = mod.lib.C_GetTokenInfo(s);
      } catch {
        continue; // token vanished between the two calls
      }
      const label = ti.label.trim();
      seen.push(label);
      if (label === tokenLabel) return ok({ slot: s, info: ti, seen });
    }
  } catch (e) {
    return err(mapPkcs11Error(e, 'C_GetSlotList'));
  }
  return ok({ slot: null, info: null, seen });
}

/** How messages name a token: the profile's name (or the token's model) and its label. */
export function tokenDisplayName(profile: TokenProfile | null, model: string, label: string): string {
  return `${profile?.name ?? (model.trim() || 'PKCS#11 token')} "${label}"`;
}

/**
 * Open a PKCS#11 token: load the module, initialise Cryptoki (with the library parameters), find the token by
 * label, open a R/W session and log in as user.
 */
export async function openHsm(cfg: HsmConfig): Promise<Result<HsmAdmin>> {
  const log = cfg.logger?.child('hsm');
  if (typeof cfg.pin !== 'string' || cfg.pin.length === 0) return fail('CONFIG_INVALID', 'HSM PIN is empty');
  const maxSign = Math.min(16, Math.max(1, Math.floor(cfg.signSessions ?? 4)));
  const m = acquireModule(cfg.module, cfg.libraryParameters);
  if (!m.ok) {
    log?.log('error', 'PKCS#11 module load failed', { module: cfg.module, code: m.error.code });
    return m;
  }
  const mod = m.value;
  const found = findTokenSlot(mod, cfg.tokenLabel);
  if (!found.ok) {
    releaseModule(mod);
    return found;
  }
  const { slot, info, seen } = found.value;
  if (!slot || !info) {
    releaseModule(mod);
    log?.log('error', 'HSM token not found', { tokenLabel: cfg.tokenLabel, tokensPresent: seen });
    return fail('HSM_TOKEN_ABSENT', `no token labelled "${cfg.tokenLabel}" in ${cfg.module}`, {
      tokenLabel: cfg.tokenLabel,
      tokensPresent: seen,
    });
  }
  const t = new TokenSession(mod, slot, cfg.pin, log, maxSign);
  const opened = t.openMain();
  if (!opened.ok) {
    releaseModule(mod);
    log?.log('error', 'HSM login failed', { tokenLabel: cfg.tokenLabel, code: opened.error.code });
    return opened;
  }
  t.registerLogin();
  const matched = cfg.profile === undefined ? tokenProfileFor(cfg.module, info) : ok(cfg.profile);
  if (!matched.ok) {
    await t.close();
    return matched;
  }
  const profile = matched.value;
  log?.log('info', 'HSM token opened', {
    module: cfg.module,
    tokenLabel: cfg.tokenLabel,
    slot: String(ulong(slot)),
    profile: profile?.id ?? null,
  });
  return ok(new Pkcs11Hsm(t, profile, tokenDisplayName(profile, info.model, cfg.tokenLabel)));
}
