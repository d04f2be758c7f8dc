/**
 * The HSM token: the PKCS#11 module loads, the token is present, the user login works (naming the PIN source, never
 * the PIN), and the station's keys are there with their protection attributes (sensitive, never extractable:
 * `HsmKeyInfo.unprotected`, docs/hsm.md "Keys and attributes"). Pure functions over what the token port answered.
 */
import type { DoctorCheck } from '../../../core/api.js';
import type { HsmInfo } from '../../../core/ports.js';
import type { Result } from '../../../core/result.js';
import { check, skipped, splitFix } from '../check.js';
import type { DoctorToken, PinSource, TokenOpenFailure, TokenSession } from '../ports.js';

/** What opening the token gave: the session (and its info) or the stage that failed. */
export type TokenOutcome = Result<{ readonly session: TokenSession; readonly info: Result<HsmInfo> }, TokenOpenFailure>;

/** "file secrets/hsm-user.pin", "environment variable LS_PIN", "stdin". */
export function pinSourceText(s: PinSource): string {
  return s.kind === 'env' ? `environment variable ${s.name}` : s.kind === 'file' ? `file ${s.path}` : 'stdin';
}

const NO_CONFIG = 'no valid configuration (see config)';

/** hsm-module: the PKCS#11 module loads. */
export function checkModule(t: DoctorToken | null, o: TokenOutcome | null): DoctorCheck {
  if (!t || !o) return skipped('hsm-module', NO_CONFIG);
  if (!o.ok && o.error.stage === 'module')
    return check(
      'hsm-module',
      'fail',
      o.error.error.message,
      `install the token vendor's PKCS#11 library, or correct hsm.module in config.json (now ${t.module}; check: ls -l ${t.module})`,
      { module: t.module, code: o.error.error.code },
    );
  if (!o.ok && o.error.stage === 'pin')
    return skipped('hsm-module', 'not loaded: the PIN could not be read first (see hsm-login)');
  return check('hsm-module', 'pass', `PKCS#11 module ${t.module} loads`, undefined, { module: t.module });
}

/** hsm-token: the configured token is present. */
export function checkToken(t: DoctorToken | null, o: TokenOutcome | null): DoctorCheck {
  if (!t || !o) return skipped('hsm-token', NO_CONFIG);
  if (!o.ok && (o.error.stage === 'module' || o.error.stage === 'pin'))
    return skipped('hsm-token', `not looked for: see ${o.error.stage === 'module' ? 'hsm-module' : 'hsm-login'}`);
  if (!o.ok && o.error.stage === 'token') {
    const present = (o.error.error.details?.['tokensPresent'] as string[] | undefined) ?? [];
    return check(
      'hsm-token',
      'fail',
      `${o.error.error.message} (tokens present: ${present.length ? present.map((x) => `"${x}"`).join(', ') : 'none'})`,
      `connect the HSM, or correct hsm.tokenLabel in config.json; list the tokens: pkcs11-tool --module ${t.module} --list-slots`,
      { tokenLabel: t.tokenLabel, tokensPresent: present },
    );
  }
  const info = o.ok && o.value.info.ok ? o.value.info.value : null;
  return check(
    'hsm-token',
    'pass',
    info
      ? `token "${t.tokenLabel}" present (slot ${info.slotId}, serial ${info.tokenSerial}, ${info.manufacturer} ${info.model})`
      : `token "${t.tokenLabel}" present`,
    undefined,
    info ? { slotId: info.slotId, tokenSerial: info.tokenSerial, manufacturer: info.manufacturer } : undefined,
  );
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
export function checkLogin(t: DoctorToken | null, o: TokenOutcome | null): DoctorCheck {
  if (!t || !o) return skipped('hsm-login', NO_CONFIG);
  const source = pinSourceText(t.pinSource);
  const details = { pinSource: t.pinSource.kind, ...(t.pinSource.kind === 'env' ? { env: t.pinSource.name } : {}) };
  if (!o.ok && (o.error.stage === 'module' || o.error.stage === 'token'))
    return skipped('hsm-login', `not tried: see ${o.error.stage === 'module' ? 'hsm-module' : 'hsm-token'}`);
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

/** hsm-keys: the issuing CA and station keys are in the token, sensitive and never extractable. */
export function checkKeys(labels: readonly string[], o: TokenOutcome | null): DoctorCheck {
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
  return check('hsm-keys', 'pass', `${found.join(', ')}: sensitive, never extractable`, undefined, { keys: labels });
}
