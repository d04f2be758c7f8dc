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

/** String.prototype.isWellFormed (ES2024; Node >= 20): true when the string has no lone surrogate. */
const isWellFormed = (String.prototype as unknown as { isWellFormed?: (this: string) => boolean }).isWellFormed;

function jcsString(s: string): string {
  if (isWellFormed ? !isWellFormed.call(s) : LONE_SURROGATE.test(s))
    throw new TypeError('canonicalJson: string with a lone surrogate (not I-JSON)');
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
  return canonical(value, undefined, 0);
}

/**
 * Called by canonicalJsonWith for every object and array (`keys`: an object's member names, sorted; null for an
 * array) at nesting `depth` (the top value is 0) before it is serialised: a value to serialise in its place, or
 * undefined to serialise it as it is. It may throw to refuse the input.
 */
export type CanonicalVisit = (value: object, keys: readonly string[] | null, depth: number) => unknown;

/**
 * canonicalJson of `value` with some objects replaced on the way (`visit`), without building the replaced value
 * first: core/hq/pack.ts rebuilds a record's signed payload from its packed form with it.
 */
export function canonicalJsonWith(value: unknown, visit: CanonicalVisit): string {
  return canonical(value, visit, 0);
}

function canonical(value: unknown, visit: CanonicalVisit | undefined, depth: number): string {
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
      // One pass with string concatenation (records are canonicalised thousands of times a second at ingest).
      if (Array.isArray(value)) {
        if (visit) {
          const r = visit(value, null, depth);
          if (r !== undefined) return canonical(r, undefined, depth);
        }
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          out += (i === 0 ? '' : ',') + canonical(v === undefined ? null : v, visit, depth + 1);
        }
        return out + ']';
      }
      if (value instanceof Uint8Array) throw new TypeError('canonicalJson: encode bytes as hex or base64url first');
      const o = value as Record<string, unknown>;
      // The default sort compares UTF-16 code units, as JCS orders member names.
      const keys = Object.keys(o).sort();
      if (visit) {
        const r = visit(o, keys, depth);
        if (r !== undefined) return canonical(r, undefined, depth);
      }
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = o[k];
        if (v === undefined) continue;
        out += (first ? '' : ',') + jcsString(k) + ':' + canonical(v, visit, depth + 1);
        first = false;
      }
      return out + '}';
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
}
