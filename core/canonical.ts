/**
 * Canonical JSON: RFC 8785, the JSON Canonicalization Scheme (JCS), for the JSON values we sign and hash (audit
 * chain, record hash, manifests, records, policies): object members sorted by their names' UTF-16 code units, no
 * whitespace, strings and numbers serialised as ECMAScript's JSON.stringify does (which is what JCS specifies:
 * numbers by Number.prototype.toString, `-0` as `0`; strings with `"` `\` and the C0 controls escaped, \b \t \n \f \r
 * by name and the others as lower-case \u00xx, everything else as UTF-8), `undefined` members left out. Input JCS
 * refuses is refused here too (TypeError): non-finite numbers, and strings (values or member names) with a lone
 * surrogate, which JCS's I-JSON subset does not allow. core/canonical.test.ts checks RFC 8785's own test vectors;
 * docs/formats.md "Canonical JSON" says how a verifier in another language reproduces it.
 */

/** A UTF-16 code unit of a surrogate that is not part of a pair (in `u` mode a pair is one code point). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function jcsString(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new TypeError('canonicalJson: string with a lone surrogate (not I-JSON)');
  return JSON.stringify(s);
}

/**
 * Whether a JSON value holds a string (a value or a member name) with a lone surrogate: text that is not Unicode,
 * which canonicalJson refuses. Inputs are checked with it at the boundary (StationApi arguments: INPUT_INVALID).
 */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([k, v]) => LONE_SURROGATE.test(k) || hasLoneSurrogate(v));
  return false;
}

export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'string':
      return jcsString(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
      if (value instanceof Uint8Array) throw new TypeError('canonicalJson: encode bytes as hex or base64url first');
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${jcsString(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
}
