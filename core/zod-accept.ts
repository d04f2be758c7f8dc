/**
 * Accept-only validators compiled from zod schemas, for hot paths (the registry validates every record and manifest
 * of a batch): `compileAccept(schema)` walks the schema's definition once and returns a function that answers true
 * only when zod's `safeParse` would succeed AND return the input unchanged (no member stripped, nothing
 * transformed). It answers false whenever it is not sure; the caller then runs `schema.safeParse`, which decides and
 * words the refusal. Refinements see the input where zod gives them its copy (equal in value; refinements compare
 * values, not identities or member order). Checks (length, regex, formats, number bounds, refinements) are zod's own check functions run on
 * the value, in zod's order and with zod's `when` conditions, so their meaning cannot drift from the schema's. A
 * schema with a part it does not know (transforms, defaults, pipes, catch-alls other than strict, key-enum records,
 * ...) does not compile (null). core/zod-accept.test.ts checks it against zod on records and their mutations.
 * Imports zod only.
 */
import type { z } from 'zod';

/** The parts of zod 4's internal schema representation read here (zod/v4/core `$ZodType._zod`). */
interface Internals {
  readonly def: {
    readonly type: string;
    readonly checks?: readonly Check[];
    readonly coerce?: boolean;
    readonly shape?: Record<string, Node>;
    readonly catchall?: Node;
    readonly element?: Node;
    readonly innerType?: Node;
    readonly options?: readonly Node[];
    readonly discriminator?: string;
    readonly unionFallback?: boolean;
    readonly inclusive?: boolean;
    readonly keyType?: Node;
    readonly valueType?: Node;
    readonly mode?: string;
    readonly partial?: boolean;
  };
  readonly traits: Set<string>;
  readonly optin?: string;
  readonly optout?: string;
  readonly values?: Set<unknown>;
  readonly propValues?: Record<string, Set<unknown>>;
}
interface Node {
  readonly _zod: Internals;
}
interface Check {
  readonly _zod: {
    readonly def: { readonly when?: (p: Payload) => boolean };
    readonly check: (p: Payload) => unknown;
  };
}
interface Payload {
  value: unknown;
  issues: unknown[];
}

/** A compiled accept test. */
export type Accept = (value: unknown) => boolean;

class Unsupported extends Error {}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
/** A plain data object (what JSON.parse makes): both zod's isObject and isPlainObject hold for it. */
const isPlain = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  return !own(v, 'constructor') || typeof (v as { constructor: unknown }).constructor !== 'function';
};

/** The checks zod runs for a schema node: the node itself when it is a check (string formats), then its checks. */
function checksOf(n: Node): Check[] {
  const list = [...(n._zod.def.checks ?? [])];
  if (n._zod.traits.has('$ZodCheck')) list.unshift(n as unknown as Check);
  return list;
}

/** zod's runChecks on a value that passed its type: true when no check adds an issue. */
function runChecks(checks: readonly Check[]): Accept | null {
  if (checks.length === 0) return null;
  return (value) => {
    const payload: Payload = { value, issues: [] };
    for (const ch of checks) {
      const when = ch._zod.def.when;
      if (when && !when(payload)) continue;
      const r = ch._zod.check(payload);
      if (r instanceof Promise) return false; // async checks: zod decides
      if (payload.issues.length) return false;
    }
    // An overwriting check (trim, toLowerCase) that changed the value: zod would return another value.
    return payload.value === value;
  };
}

/** The node's own type test and its checks, composed. */
function withChecks(n: Node, type: Accept): Accept {
  const checks = runChecks(checksOf(n));
  return checks ? (v) => type(v) && checks(v) : type;
}

function compileNode(n: Node): Accept {
  const d = n._zod.def;
  if (d.coerce) throw new Unsupported('coerce');
  switch (d.type) {
    case 'string':
      return withChecks(n, (v) => typeof v === 'string');
    case 'number':
      return withChecks(n, (v) => typeof v === 'number' && Number.isFinite(v));
    case 'boolean':
      return withChecks(n, (v) => typeof v === 'boolean');
    case 'null':
      return withChecks(n, (v) => v === null);
    case 'unknown':
    case 'any':
      return withChecks(n, () => true);
    case 'literal':
    case 'enum': {
      const values = n._zod.values;
      if (!values) throw new Unsupported(d.type);
      return withChecks(n, (v) => values.has(v));
    }
    case 'optional': {
      const inner = compileNode(d.innerType!);
      if (d.innerType!._zod.optin === 'defaulted') throw new Unsupported('optional default');
      return withChecks(n, (v) => v === undefined || inner(v));
    }
    case 'nullable': {
      const inner = compileNode(d.innerType!);
      return withChecks(n, (v) => v === null || inner(v));
    }
    case 'array': {
      const el = compileNode(d.element!);
      return withChecks(n, (v) => {
        if (!Array.isArray(v)) return false;
        for (let i = 0; i < v.length; i++) if (!(i in v) || !el(v[i])) return false;
        return true;
      });
    }
    case 'object':
      return withChecks(n, compileObject(n));
    case 'union':
      return withChecks(n, d.discriminator !== undefined ? compileDiscriminated(n) : compileUnion(n));
    case 'record':
      return withChecks(n, compileRecord(n));
    default:
      throw new Unsupported(d.type);
  }
}

/**
 * An object: a plain object whose every shape member passes (an absent member only where zod lets it be absent and
 * adds nothing), and, for a strict object, no other member. A non-strict object would strip unknown members: any
 * member outside the shape answers false, so zod decides.
 */
function compileObject(n: Node): Accept {
  const d = n._zod.def;
  if (d.catchall && d.catchall._zod.def.type !== 'never') throw new Unsupported('object catchall');
  const shape = d.shape ?? {};
  const keys = Object.keys(shape);
  if (Object.getOwnPropertySymbols(shape).length) throw new Unsupported('symbol keys');
  const members = keys.map((k) => {
    const s = shape[k]!;
    return {
      k,
      accept: compileNode(s),
      absentOk: s._zod.optin === 'optional' && s._zod.optout === 'optional',
    };
  });
  const known = new Set(keys);
  return (v) => {
    if (!isPlain(v)) return false;
    for (const m of members) {
      if (m.k === '__proto__') return false;
      if (!own(v, m.k)) {
        if (m.k in v || !m.absentOk) return false;
        continue;
      }
      if (!m.accept(v[m.k])) return false;
    }
    for (const k in v) if (!known.has(k) || !own(v, k)) return false;
    return true;
  };
}

/** A union: the first option that accepts is zod's answer too (no option transforms: each returns its input). */
function compileUnion(n: Node): Accept {
  const d = n._zod.def;
  if (d.inclusive === false) throw new Unsupported('exclusive union');
  const options = (d.options ?? []).map(compileNode);
  return (v) => options.some((o) => o(v));
}

/** A discriminated union: the one option whose discriminator values hold the value's discriminator decides. */
function compileDiscriminated(n: Node): Accept {
  const d = n._zod.def;
  if (d.unionFallback) throw new Unsupported('unionFallback');
  const disc = d.discriminator!;
  const options = (d.options ?? []).map((o) => ({ values: o._zod.propValues?.[disc], accept: compileNode(o) }));
  if (options.some((o) => !o.values)) throw new Unsupported('discriminator values');
  return (v) => {
    if (!isPlain(v) || !own(v, disc)) return false;
    const tag = v[disc];
    if (tag === undefined) return false;
    const match = options.filter((o) => o.values!.has(tag));
    return match.length === 1 && match[0]!.accept(v);
  };
}

/** A record with a key schema that constrains keys (regex, length): every own member's key and value pass. */
function compileRecord(n: Node): Accept {
  const d = n._zod.def;
  if (d.keyType!._zod.values || d.partial || d.mode === 'loose') throw new Unsupported('record keys');
  const key = compileNode(d.keyType!);
  const value = compileNode(d.valueType!);
  return (v) => {
    if (!isPlain(v)) return false;
    if (Object.getOwnPropertySymbols(v).length) return false;
    for (const k of Object.getOwnPropertyNames(v)) {
      if (k === '__proto__' || !Object.prototype.propertyIsEnumerable.call(v, k)) return false;
      if (!key(k) || !value(v[k])) return false;
    }
    return true;
  };
}

/**
 * Compile `schema` to an accept-only test (see the module comment); null when the schema has a part this compiler
 * does not know, so the caller uses `schema.safeParse` alone.
 */
export function compileAccept(schema: z.ZodType): Accept | null {
  try {
    return compileNode(schema as unknown as Node);
  } catch (e) {
    if (e instanceof Unsupported) return null;
    throw e;
  }
}

/**
 * `schema.safeParse(value)`, answered without zod when `accept` (compileAccept of the same schema) accepts: the
 * value is then what zod would return.
 */
export function acceptOrParse<S extends z.ZodType>(
  schema: S,
  accept: Accept | null,
  value: unknown,
): z.ZodSafeParseResult<z.output<S>> {
  let yes = false;
  try {
    yes = accept?.(value) ?? false;
  } catch {
    yes = false; // a refinement that throws: zod runs it again and decides
  }
  if (yes) return { success: true, data: value as z.output<S> };
  return schema.safeParse(value);
}
