/**
 * Object lookup on an open token: one object by class and label, the private key handle cache, key attributes
 * (never values) with the protection the station requires, and the curve + public key of a key pair.
 */
import type { HsmKeyInfo } from '../../core/ports.js';
import { stationError } from '../../core/errors.js';
import { toHex } from '../../core/bytes.js';
import { curveFromEcParams, decodeEcPoint, spkiFromPoint, type CurveSpec } from './ec.js';
import {
  CLASS_NAMES,
  KEY_TYPE_NAMES,
  P,
  StationErrorBox,
  attr,
  findAll,
  tryAttr,
  tryBool,
  ulong,
  type Handle,
  type PKCS11,
} from './pkcs11.js';
import type { TokenSession } from './session.js';

/** The one object of this class and label, or null; more than one is HSM_FAILED (boxed). */
export function findOne(lib: PKCS11, s: Handle, cls: number, label: string): Handle | null {
  const found = findAll(lib, s, [
    { type: P.CKA_CLASS, value: cls },
    { type: P.CKA_LABEL, value: label },
  ]);
  if (found.length > 1) {
    throw new StationErrorBox(
      stationError('HSM_FAILED', `more than one object with label "${label}" on the token`, {
        label,
        count: found.length,
      }),
    );
  }
  return found[0] ?? null;
}

/** The private key labelled `label` (cached per label); HSM_KEY_NOT_FOUND (boxed) when there is none. */
export function privateKeyHandle(t: TokenSession, s: Handle, label: string): Handle {
  const cached = t.keyHandles.get(label);
  if (cached) return cached;
  const h = findOne(t.lib, s, P.CKO_PRIVATE_KEY, label);
  if (!h)
    throw new StationErrorBox(
      stationError('HSM_KEY_NOT_FOUND', `no private key labelled "${label}" on the token`, { label }),
    );
  t.keyHandles.set(label, h);
  return h;
}

/** The protection attributes of a private key, as reported (undefined: not reported). */
export interface ProtectionAttributes {
  readonly sensitive?: boolean;
  readonly extractable?: boolean;
  readonly alwaysSensitive?: boolean;
  readonly neverExtractable?: boolean;
}

export function readProtection(lib: PKCS11, s: Handle, h: Handle): ProtectionAttributes {
  const out: { -readonly [K in keyof ProtectionAttributes]: ProtectionAttributes[K] } = {};
  const sensitive = tryBool(lib, s, h, P.CKA_SENSITIVE);
  const extractable = tryBool(lib, s, h, P.CKA_EXTRACTABLE);
  const alwaysSensitive = tryBool(lib, s, h, P.CKA_ALWAYS_SENSITIVE);
  const neverExtractable = tryBool(lib, s, h, P.CKA_NEVER_EXTRACTABLE);
  if (sensitive !== undefined) out.sensitive = sensitive;
  if (extractable !== undefined) out.extractable = extractable;
  if (alwaysSensitive !== undefined) out.alwaysSensitive = alwaysSensitive;
  if (neverExtractable !== undefined) out.neverExtractable = neverExtractable;
  return out;
}

/**
 * Which protection attributes a private key lacks (empty: sensitive, not extractable, always sensitive, never
 * extractable). An attribute the token does not report counts as missing.
 */
export function unprotectedAttributes(p: ProtectionAttributes): string[] {
  const want: [keyof ProtectionAttributes, string, boolean][] = [
    ['sensitive', 'CKA_SENSITIVE', true],
    ['extractable', 'CKA_EXTRACTABLE', false],
    ['alwaysSensitive', 'CKA_ALWAYS_SENSITIVE', true],
    ['neverExtractable', 'CKA_NEVER_EXTRACTABLE', true],
  ];
  const weak: string[] = [];
  for (const [key, name, value] of want) {
    const v = p[key];
    if (v !== value) weak.push(`${name} ${v === undefined ? 'unknown' : v}`);
  }
  return weak;
}

/** Attributes (never values) of a token object, or null for a class the station does not list. */
export function keyInfo(lib: PKCS11, s: Handle, h: Handle): HsmKeyInfo | null {
  const cls = CLASS_NAMES[ulong(attr(lib, s, h, P.CKA_CLASS))];
  if (!cls) return null;
  const label = tryAttr(lib, s, h, P.CKA_LABEL)?.toString('utf8') ?? '';
  const id = toHex(tryAttr(lib, s, h, P.CKA_ID) ?? Buffer.alloc(0));
  const info: { -readonly [K in keyof HsmKeyInfo]: HsmKeyInfo[K] } = { label, id, class: cls };
  if (cls !== 'certificate') {
    const kt = tryAttr(lib, s, h, P.CKA_KEY_TYPE);
    if (kt) info.keyType = KEY_TYPE_NAMES[ulong(kt)] ?? `0x${ulong(kt).toString(16)}`;
    if (info.keyType === 'EC') {
      const params = tryAttr(lib, s, h, P.CKA_EC_PARAMS);
      const spec = params ? curveFromEcParams(params) : null;
      if (spec) info.keyType = `EC ${spec.curve}`;
    }
  }
  if (cls === 'private' || cls === 'secret') {
    const prot = readProtection(lib, s, h);
    if (prot.sensitive !== undefined) info.sensitive = prot.sensitive;
    if (prot.extractable !== undefined) info.extractable = prot.extractable;
    if (cls === 'private') {
      if (prot.alwaysSensitive !== undefined) info.alwaysSensitive = prot.alwaysSensitive;
      if (prot.neverExtractable !== undefined) info.neverExtractable = prot.neverExtractable;
      info.unprotected = unprotectedAttributes(prot);
    }
  }
  return info;
}

/** Curve and SPKI of the key pair labelled `label` (reads the private key's EC params and the public key's point). */
export function keyMaterial(
  t: TokenSession,
  s: Handle,
  label: string,
): { spec: CurveSpec; spki: Uint8Array; handle: Handle } {
  const lib = t.lib;
  const h = privateKeyHandle(t, s, label);
  const keyType = ulong(attr(lib, s, h, P.CKA_KEY_TYPE));
  if (keyType !== P.CKK_EC) {
    throw new StationErrorBox(
      stationError(
        'HSM_MECHANISM_UNSUPPORTED',
        `key "${label}" is not an EC key; only ECDSA P-256/P-384 is supported`,
        {
          label,
        },
      ),
    );
  }
  const spec = curveFromEcParams(attr(lib, s, h, P.CKA_EC_PARAMS));
  if (!spec) {
    throw new StationErrorBox(
      stationError('HSM_MECHANISM_UNSUPPORTED', `key "${label}" is on an unsupported curve (P-256 and P-384 only)`, {
        label,
      }),
    );
  }
  const pub = findOne(lib, s, P.CKO_PUBLIC_KEY, label);
  if (!pub) {
    throw new StationErrorBox(
      stationError('HSM_KEY_NOT_FOUND', `no public key labelled "${label}" next to the private key`, { label }),
    );
  }
  const point = decodeEcPoint(attr(lib, s, pub, P.CKA_EC_POINT), spec);
  if (!point)
    throw new StationErrorBox(
      stationError('HSM_FAILED', `public key "${label}" has a malformed CKA_EC_POINT`, { label }),
    );
  return { spec, spki: spkiFromPoint(point, spec), handle: h };
}
