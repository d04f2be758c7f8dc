/**
 * Token inspection for `station doctor` and the UI's HSM view: `inspectToken` walks module → token → mechanisms →
 * login → the station's keys and returns a typed report (core/hsm/inspection.ts) with a status per step. It never
 * throws and never returns a PIN or a key value; a step that cannot run after a failed one is `skip`.
 * Logging in with a wrong PIN counts against the token's retry counter like any login (docs/hsm.md "Inspection").
 */
import type { Logger } from '../../core/ports.js';
import type { StationError } from '../../core/errors.js';
import type { TokenProfile } from '../../core/hsm/token-profile.js';
import { checkRequirements, mechanismChecks } from '../../core/hsm/requirements.js';
import {
  worstStatus,
  type CheckStatus,
  type KeyProtection,
  type ReportError,
  type TokenReport,
} from '../../core/hsm/inspection.js';
import { mapPkcs11Error } from './errors.js';
import { acquireModule, releaseModule } from './module-registry.js';
import { P, ulong } from './pkcs11.js';
import { findTokenSlot, openHsm, tokenDisplayName } from './pkcs11-hsm.js';
import { readMechanisms } from './mechanisms.js';
import { tokenProfileFor } from './token-profiles.js';

export interface InspectTokenOptions {
  /** PKCS#11 module path. */
  readonly module: string;
  readonly tokenLabel: string;
  /** User PIN; null or absent: no login (login and keys are `skip`). Never logged, never in the report. */
  readonly pin?: string | null;
  /** C_Initialize library parameters (NSS softoken). */
  readonly libraryParameters?: string;
  /** Token profile: undefined = the shipped profile matching the module and token; null = none. */
  readonly profile?: TokenProfile | null;
  /** The station's private keys to check, by role (e.g. `{ role: 'issuingCa', label: 'issuing-ca' }`). */
  readonly keys?: readonly { readonly role: string; readonly label: string }[];
  readonly logger?: Logger;
}

const reportError = (e: StationError): ReportError => ({ code: e.code, message: e.message });

/** Inspect a token (see the module comment). Resolves to a report; never rejects. */
export async function inspectToken(o: InspectTokenOptions): Promise<TokenReport> {
  const skipKeys = (): KeyProtection[] =>
    (o.keys ?? []).map((k) => ({ role: k.role, label: k.label, status: 'skip', found: false, unprotected: [] }));
  const base = {
    schema: 'line-station/token-report/v1' as const,
    requirements: [],
    mechanisms: { status: 'skip' as CheckStatus, listed: 0, checks: [] },
    login: { status: 'skip' as CheckStatus },
    keyProtectionEnforced: { status: 'skip' as CheckStatus, enforced: null, note: '' },
    keys: skipKeys(),
  };
  const m = acquireModule(o.module, o.libraryParameters);
  if (!m.ok) {
    return {
      ...base,
      profile: null,
      module: { status: 'fail', path: o.module, error: reportError(m.error) },
      token: { status: 'skip', label: o.tokenLabel, tokensPresent: [] },
      status: 'fail',
    };
  }
  const mod = m.value;
  try {
    let library: TokenReport['module']['library'];
    try {
      const i = mod.lib.C_GetInfo();
      library = {
        manufacturer: i.manufacturerID.trim(),
        description: i.libraryDescription.trim(),
        version: `${i.libraryVersion.major}.${i.libraryVersion.minor}`,
      };
    } catch {
      library = undefined;
    }
    const module: TokenReport['module'] = { status: 'pass', path: o.module, ...(library ? { library } : {}) };
    const found = findTokenSlot(mod, o.tokenLabel);
    if (!found.ok || !found.value.slot) {
      const error = found.ok
        ? { code: 'HSM_TOKEN_ABSENT' as const, message: `no token labelled "${o.tokenLabel}" in ${o.module}` }
        : reportError(found.error);
      return {
        ...base,
        profile: null,
        module,
        token: { status: 'fail', label: o.tokenLabel, tokensPresent: found.ok ? found.value.seen : [], error },
        status: 'fail',
      };
    }
    const { slot, seen } = found.value;
    const ti = mod.lib.C_GetTokenInfo(slot);
    const flag = (f: number): boolean => (ti.flags & f) !== 0;
    const matched = o.profile === undefined ? tokenProfileFor(o.module, ti) : null;
    if (matched && !matched.ok) {
      return {
        ...base,
        profile: null,
        module: { ...module, status: 'fail', error: reportError(matched.error) },
        token: { status: 'skip', label: o.tokenLabel, tokensPresent: seen },
        status: 'fail',
      };
    }
    const profile = o.profile === undefined ? (matched?.ok ? matched.value : null) : o.profile;
    const token: TokenReport['token'] = {
      status: 'pass',
      label: o.tokenLabel,
      slotId: String(ulong(slot)),
      serial: ti.serialNumber.trim(),
      manufacturer: ti.manufacturerID.trim(),
      model: ti.model.trim(),
      pin: {
        initialized: flag(P.CKF_USER_PIN_INITIALIZED),
        countLow: flag(P.CKF_USER_PIN_COUNT_LOW),
        finalTry: flag(P.CKF_USER_PIN_FINAL_TRY),
        locked: flag(P.CKF_USER_PIN_LOCKED),
      },
      tokensPresent: seen,
    };
    const name = tokenDisplayName(profile, ti.model, o.tokenLabel);

    const mech = readMechanisms(mod.lib, slot);
    const requirements = mech.ok ? checkRequirements(mech.value.mechanisms, profile, name) : [];
    const basic = requirements.find((r) => r.requirement === 'signing-key-p256');
    const mechanisms: TokenReport['mechanisms'] = mech.ok
      ? {
          status: !basic?.satisfied ? 'fail' : requirements.every((r) => r.satisfied) ? 'pass' : 'warn',
          listed: mech.value.listed,
          checks: mechanismChecks(mech.value.mechanisms),
        }
      : { status: 'fail', listed: 0, checks: [] };
    const keyProtectionEnforced: TokenReport['keyProtectionEnforced'] = profile
      ? {
          status: profile.keyProtection.enforced ? 'pass' : 'warn',
          enforced: profile.keyProtection.enforced,
          note: profile.keyProtection.note,
        }
      : { status: 'warn', enforced: null, note: 'no token profile matches this module: not known' };

    let login: TokenReport['login'] = { status: 'skip' };
    let keys = skipKeys();
    if (typeof o.pin === 'string' && o.pin.length > 0) {
      const h = await openHsm({
        module: o.module,
        tokenLabel: o.tokenLabel,
        pin: o.pin,
        ...(o.libraryParameters !== undefined ? { libraryParameters: o.libraryParameters } : {}),
        profile,
        ...(o.logger ? { logger: o.logger } : {}),
      });
      if (!h.ok) login = { status: 'fail', error: reportError(h.error) };
      else {
        login = { status: 'pass' };
        keys = [];
        for (const k of o.keys ?? []) {
          const r = await h.value.findKey(k.label);
          if (!r.ok) keys.push({ ...k, status: 'fail', found: false, unprotected: [], error: reportError(r.error) });
          else if (!r.value)
            keys.push({
              ...k,
              status: 'fail',
              found: false,
              unprotected: [],
              error: { code: 'HSM_KEY_NOT_FOUND', message: `no private key labelled "${k.label}" on the token` },
            });
          else {
            const v = r.value;
            const unprotected = v.unprotected ?? [];
            keys.push({
              ...k,
              status: unprotected.length ? 'fail' : 'pass',
              found: true,
              ...(v.keyType !== undefined ? { keyType: v.keyType } : {}),
              ...(v.sensitive !== undefined ? { sensitive: v.sensitive } : {}),
              ...(v.extractable !== undefined ? { extractable: v.extractable } : {}),
              ...(v.alwaysSensitive !== undefined ? { alwaysSensitive: v.alwaysSensitive } : {}),
              ...(v.neverExtractable !== undefined ? { neverExtractable: v.neverExtractable } : {}),
              unprotected,
              ...(unprotected.length
                ? {
                    error: {
                      code: 'HSM_KEY_EXPORTABLE' as const,
                      message: `the key "${k.label}" can leave the token: ${unprotected.join(', ')}`,
                    },
                  }
                : {}),
            });
          }
        }
        await h.value.close();
      }
    }
    const report: Omit<TokenReport, 'status'> = {
      schema: 'line-station/token-report/v1',
      profile: profile ? { id: profile.id, name: profile.name } : null,
      module,
      token,
      login,
      mechanisms,
      requirements,
      keyProtectionEnforced,
      keys,
    };
    return {
      ...report,
      status: worstStatus([
        module.status,
        token.status,
        mechanisms.status,
        login.status === 'skip' ? 'pass' : login.status,
        keyProtectionEnforced.status,
        ...keys.map((k) => (k.status === 'skip' ? 'pass' : k.status)),
      ]),
    };
  } catch (e) {
    const se = mapPkcs11Error(e, 'inspectToken');
    return {
      ...base,
      profile: null,
      module: { status: 'pass', path: o.module },
      token: { status: 'fail', label: o.tokenLabel, tokensPresent: [], error: reportError(se) },
      status: 'fail',
    };
  } finally {
    releaseModule(mod);
  }
}
