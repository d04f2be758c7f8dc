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

/**
 * zod's runChecks on a value that passed its type: true when no check adds an issue (and none rewrote the value).
 * One payload per node, reused (a check that re-enters the same node gets a fresh one).
 */
function runChecks(checks: readonly Check[]): Accept {
  const shared: Payload = { value: undefined, issues: [] };
  let busy = false;
  return (value) => {
    const payload: Payload = busy ? { value, issues: [] } : shared;
    payload.value = value;
    payload.issues.length = 0;
    const outer = busy;
    busy = true;
    try {
      for (const ch of checks) {
        const when = ch._zod.def.when;
        if (when && !when(payload)) continue;
        const r = ch._zod.check(payload);
        if (r instanceof Promise) return false; // async checks: zod decides
        if (payload.issues.length) return false;
      }
      // An overwriting check (trim, toLowerCase) that changed the value: zod would return another value.
      return payload.value === value;
    } finally {
      busy = outer;
      payload.value = undefined;
    }
  };
}

/**
 * The generated source: one function per schema node (`f0` the root), each answering for one value; children are
 * called by name (monomorphic calls the JIT inlines), constants (check runners, value sets) passed in `K`.
 */
class Gen {
  readonly fns: string[] = [];
  readonly consts: unknown[] = [];

  constant(v: unknown): string {
    this.consts.push(v);
    return `K[${this.consts.length - 1}]`;
  }

  /** The name of the function generated for node `n`. */
  node(n: Node): string {
    const i = this.fns.length;
    this.fns.push(''); // the slot is taken before the children are generated
    const checks = checksOf(n);
    const body = this.body(n);
    const tail = checks.length ? `return ${this.constant(runChecks(checks))}(v);` : 'return true;';
    this.fns[i] = `function f${i}(v){${body}${tail}}`;
    return `f${i}`;
  }

  private body(n: Node): string {
    const d = n._zod.def;
    if (d.coerce) throw new Unsupported('coerce');
    switch (d.type) {
      case 'string':
        return `if(typeof v!=='string')return false;`;
      case 'number':
        return `if(typeof v!=='number'||!Number.isFinite(v))return false;`;
      case 'boolean':
        return `if(typeof v!=='boolean')return false;`;
      case 'null':
        return `if(v!==null)return false;`;
      case 'unknown':
      case 'any':
        return '';
      case 'literal':
      case 'enum':
        if (!n._zod.values) throw new Unsupported(d.type);
        return `if(!${this.constant(n._zod.values)}.has(v))return false;`;
      case 'optional':
        if (d.innerType!._zod.optin === 'defaulted') throw new Unsupported('optional default');
        return `if(v!==undefined&&!${this.node(d.innerType!)}(v))return false;`;
      case 'nullable':
        return `if(v!==null&&!${this.node(d.innerType!)}(v))return false;`;
      case 'array':
        return `if(!Array.isArray(v))return false;for(let i=0;i<v.length;i++)if(!(i in v)||!${this.node(d.element!)}(v[i]))return false;`;
      case 'object':
        return this.object(n);
      case 'union':
        return d.discriminator !== undefined ? this.discriminated(n) : this.union(n);
      case 'record':
        return this.record(n);
      default:
        throw new Unsupported(d.type);
    }
  }

  /**
   * An object: a plain object whose every shape member passes (an absent member only where zod lets it be absent and
   * adds nothing), and no other member: a strict object refuses it, a non-strict one would strip it (zod decides).
   */
  private object(n: Node): string {
    const d = n._zod.def;
    if (d.catchall && d.catchall._zod.def.type !== 'never') throw new Unsupported('object catchall');
    const shape = d.shape ?? {};
    if (Object.getOwnPropertySymbols(shape).length) throw new Unsupported('symbol keys');
    const keys = Object.keys(shape);
    if (keys.includes('__proto__')) throw new Unsupported('__proto__ member');
    let out = 'if(!isPlain(v))return false;';
    for (const k of keys) {
      const s = shape[k]!;
      const absentOk = s._zod.optin === 'optional' && s._zod.optout === 'optional';
      const q = JSON.stringify(k);
      out += `if(hasOwn(v,${q})){if(!${this.node(s)}(v[${q}]))return false;}else if(${absentOk ? `${q} in v` : 'true'})return false;`;
    }
    const cases = keys.map((k) => `case ${JSON.stringify(k)}:`).join('');
    return `${out}for(const k in v){switch(k){${cases}break;default:return false;}}`;
  }

  /** A union: the first option that accepts is zod's answer too (no option transforms: each returns its input). */
  private union(n: Node): string {
    const d = n._zod.def;
    if (d.inclusive === false) throw new Unsupported('exclusive union');
    const options = (d.options ?? []).map((o) => `${this.node(o)}(v)`);
    return options.length ? `if(!(${options.join('||')}))return false;` : 'return false;';
  }

  /** A discriminated union: the one option whose discriminator values hold the value's discriminator decides. */
  private discriminated(n: Node): string {
    const d = n._zod.def;
    if (d.unionFallback) throw new Unsupported('unionFallback');
    const q = JSON.stringify(d.discriminator!);
    const seen = new Set<unknown>();
    let out = `if(!isPlain(v)||!hasOwn(v,${q}))return false;const t=v[${q}];if(t===undefined)return false;`;
    for (const o of d.options ?? []) {
      const values = o._zod.propValues?.[d.discriminator!];
      if (!values) throw new Unsupported('discriminator values');
      for (const x of values) {
        if (seen.has(x)) throw new Unsupported('overlapping discriminator values');
        seen.add(x);
      }
      out += `if(${this.constant(values)}.has(t)){if(!${this.node(o)}(v))return false;}else `;
    }
    return `${out}return false;`;
  }

  /** A record with a key schema that constrains keys (regex, length): every own member's key and value pass. */
  private record(n: Node): string {
    const d = n._zod.def;
    if (d.keyType!._zod.values || d.partial || d.mode === 'loose') throw new Unsupported('record keys');
    const key = this.node(d.keyType!);
    const value = this.node(d.valueType!);
    return `if(!isPlain(v)||Object.getOwnPropertySymbols(v).length)return false;for(const k of Object.getOwnPropertyNames(v))if(k==='__proto__'||!Object.prototype.propertyIsEnumerable.call(v,k)||!${key}(k)||!${value}(v[k]))return false;`;
  }
}

/**
 * Compile `schema` to an accept-only test (see the module comment); null when the schema has a part this compiler
 * does not know, so the caller uses `schema.safeParse` alone.
 */
export function compileAccept(schema: z.ZodType): Accept | null {
  const gen = new Gen();
  try {
    gen.node(schema as unknown as Node);
  } catch (e) {
    if (e instanceof Unsupported) return null;
    throw e;
  }
  // The source is made from this module's templates and JSON.stringify-quoted member names only.
  const make = new Function('K', 'isPlain', 'hasOwn', `${gen.fns.join('\n')}\nreturn f0;`) as (
    k: unknown[],
    isPlain: (v: unknown) => boolean,
    hasOwn: (o: object, k: string) => boolean,
  ) => Accept;
  return make(gen.consts, isPlain, own);
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
