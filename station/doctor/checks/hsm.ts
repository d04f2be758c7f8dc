/**
 * The HSM token: the PKCS#11 module loads, the token is present (and its user PIN not about to lock), the user login
 * works (naming the PIN source, never the PIN), and the station's keys are there with their protection attributes
 * (sensitive, never extractable: `HsmKeyInfo.unprotected`, docs/hsm.md "Keys and attributes") on a token that
 * enforces them (its token profile). Module, token and enforcement come from the token inspection (no login,
 * native/hsm `inspectToken`); login and keys from the session. Pure functions over what the token port answered.
 */
import type { DoctorCheck } from '../../../core/api.js';
import type { TokenReport } from '../../../core/hsm/inspection.js';
import type { HsmInfo } from '../../../core/ports.js';
import type { Result } from '../../../core/result.js';
import { check, skipped, splitFix } from '../check.js';
import type { DoctorToken, PinSource, TokenOpenFailure, TokenSession } from '../ports.js';

/** What logging in gave: the session (and its info) or the stage that failed; null: not tried. */
export type TokenOutcome = Result<{ readonly session: TokenSession; readonly info: Result<HsmInfo> }, TokenOpenFailure>;

/** "file secrets/hsm-user.pin", "environment variable LS_PIN", "stdin". */
export function pinSourceText(s: PinSource): string {
  return s.kind === 'env' ? `environment variable ${s.name}` : s.kind === 'file' ? `file ${s.path}` : 'stdin';
}

const NO_CONFIG = 'no valid configuration (see config)';

/** Whether the inspection reached a token that can be logged in to. */
export function tokenReady(r: TokenReport | null): boolean {
  return r !== null && r.module.status === 'pass' && r.token.status === 'pass';
}

/** hsm-module: the PKCS#11 module loads. */
export function checkModule(t: DoctorToken | null, r: TokenReport | null): DoctorCheck {
  if (!t || !r) return skipped('hsm-module', NO_CONFIG);
  if (r.module.status === 'fail')
    return check(
      'hsm-module',
      'fail',
      r.module.error?.message ?? `cannot load ${t.module}`,
      `install the token vendor's PKCS#11 library, or correct hsm.module (and hsm.profile) in config.json (now ${t.module}; check: ls -l ${t.module})`,
      { module: t.module, ...(r.module.error ? { code: r.module.error.code } : {}) },
    );
  const lib = r.module.library;
  return check(
    'hsm-module',
    'pass',
    `PKCS#11 module ${t.module} loads${lib ? ` (${lib.manufacturer} ${lib.description} ${lib.version})` : ''}${r.profile ? `; token profile ${r.profile.id}` : ''}`,
    undefined,
    { module: t.module, profile: r.profile?.id ?? null },
  );
}

/** hsm-token: the configured token is present; its user PIN is not locked or one failure from it. */
export function checkToken(t: DoctorToken | null, r: TokenReport | null): DoctorCheck {
  if (!t || !r) return skipped('hsm-token', NO_CONFIG);
  if (r.module.status !== 'pass') return skipped('hsm-token', 'not looked for: see hsm-module');
  const tk = r.token;
  if (tk.status !== 'pass')
    return check(
      'hsm-token',
      'fail',
      `${tk.error?.message ?? `no token labelled "${t.tokenLabel}"`} (tokens present: ${tk.tokensPresent.length ? tk.tokensPresent.map((x) => `"${x}"`).join(', ') : 'none'})`,
      `connect the HSM, or correct hsm.tokenLabel in config.json; list the tokens: pkcs11-tool --module ${t.module} --list-slots`,
      { tokenLabel: t.tokenLabel, tokensPresent: tk.tokensPresent },
    );
  const text = `token "${t.tokenLabel}" present (slot ${tk.slotId}, serial ${tk.serial}, ${tk.manufacturer} ${tk.model})`;
  const details = { slotId: tk.slotId, tokenSerial: tk.serial, manufacturer: tk.manufacturer, pin: tk.pin };
  const so =
    "the token's security officer must unlock or reset the user PIN (the vendor's tool; SoftHSM2: softhsm2-util --init-pin)";
  if (tk.pin?.locked) return check('hsm-token', 'fail', `${text}: its user PIN is locked`, so, details);
  if (tk.pin?.finalTry)
    return check(
      'hsm-token',
      'warn',
      `${text}: one more wrong user PIN locks it`,
      `make sure of the PIN first; ${so}`,
      details,
    );
  if (tk.pin && !tk.pin.initialized)
    return check('hsm-token', 'fail', `${text}: its user PIN is not initialised`, so, details);
  return check('hsm-token', 'pass', text, undefined, details);
}

function pinAction(s: PinSource, code: string, message: string): string {
  if (code === 'HSM_PIN_LOCKED')
    return "the token's security officer must unlock the user PIN (the vendor's tool; SoftHSM2: softhsm2-util --init-pin)";
  if (code === 'CONFIG_INSECURE_PERMISSIONS') return splitFix(message).fix ?? message;
  const where =
    s.kind === 'env'
      ? `export ${s.name}=<the token's user PIN> in the station's environment`
      : s.kind === 'file'
        ? `write the token's user PIN as the first line of ${s.path} (mode 0600)`
        : "give the token's user PIN as the first line of stdin";
  return code === 'HSM_PIN_INCORRECT' ? `${where}; each wrong PIN counts towards the token's lock` : where;
}

/** hsm-login: the user PIN from its source logs in. */
export function checkLogin(t: DoctorToken | null, r: TokenReport | null, o: TokenOutcome | null): DoctorCheck {
  if (!t || !r) return skipped('hsm-login', NO_CONFIG);
  if (!tokenReady(r) || !o)
    return skipped('hsm-login', `not tried: see ${r.module.status !== 'pass' ? 'hsm-module' : 'hsm-token'}`);
  const source = pinSourceText(t.pinSource);
  const details = { pinSource: t.pinSource.kind, ...(t.pinSource.kind === 'env' ? { env: t.pinSource.name } : {}) };
  if (!o.ok) {
    const e = o.error.error;
    const what =
      o.error.stage === 'pin' ? `cannot read the PIN from ${source}: ${splitFix(e.message).finding}` : e.message;
    return check('hsm-login', 'fail', `${what} (PIN from ${source})`, pinAction(t.pinSource, e.code, e.message), {
      ...details,
      code: e.code,
    });
  }
  return check('hsm-login', 'pass', `logged in to "${t.tokenLabel}" with the PIN from ${source}`, undefined, details);
}

/**
 * hsm-keys: the issuing CA and station keys are in the token, sensitive and never extractable; warn when the token
 * profile says the token does not enforce that (NSS softoken wraps such keys anyway) or no profile knows.
 */
export function checkKeys(labels: readonly string[], o: TokenOutcome | null, r: TokenReport | null): DoctorCheck {
  if (!o || !o.ok) return skipped('hsm-keys', 'no token session (see hsm-login)');
  if (!o.value.info.ok) return check('hsm-keys', 'fail', o.value.info.error.message, o.value.info.error.guidance);
  const keys = o.value.info.value.keys;
  const missing: string[] = [];
  const weak: { label: string; attributes: readonly string[] }[] = [];
  const found: string[] = [];
  for (const label of labels) {
    const k = keys.find((x) => x.class === 'private' && x.label === label);
    if (!k) missing.push(label);
    else if (k.unprotected && k.unprotected.length > 0) weak.push({ label, attributes: k.unprotected });
    else found.push(`${label} (${k.keyType ?? 'key'})`);
  }
  if (missing.length)
    return check(
      'hsm-keys',
      'fail',
      `no private key labelled ${missing.map((x) => `"${x}"`).join(', ')} on the token`,
      'correct hsm.keys in config.json, or set the station up again on this token (development: station init; docs/hsm.md "Keys and attributes")',
      { missing },
    );
  if (weak.length)
    return check(
      'hsm-keys',
      'fail',
      weak.map((w) => `key "${w.label}" can leave the token: ${w.attributes.join(', ')}`).join('; '),
      'generate the key again inside the token, sensitive and never extractable (station key: station rotate-key; issuing CA: a new station setup), docs/hsm.md "Keys and attributes"',
      { unprotected: weak },
    );
  const text = `${found.join(', ')}: sensitive, never extractable`;
  const enforced = r?.keyProtectionEnforced;
  if (enforced && enforced.enforced !== true)
    return check(
      'hsm-keys',
      'warn',
      `${text}, but ${enforced.enforced === false ? 'this token does not enforce it' : 'nothing says this token enforces it'}: ${enforced.note}`,
      'for production use a token whose profile (resources/tokens/*.json) says it enforces key protection',
      { keys: labels, enforced: enforced.enforced },
    );
  return check('hsm-keys', 'pass', text, undefined, { keys: labels });
}
