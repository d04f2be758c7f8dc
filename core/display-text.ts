/**
 * Text that other parties chose (a board's serial number, model, firmware names, error messages; anything from
 * the wire, a file or a peer), shown to people: control and bidirectional formatting characters are made visible
 * as `\uXXXX` instead of being interpreted by a terminal or laid out by a browser. A rogue board cannot paint a
 * fake green "PASS" line, move the cursor, clear the screen or reverse the reading order of what follows.
 *
 * The one escaping function of the product: the CLIs' human output, the log sink's console and file lines, board
 * error texts (core/protocol) and every string the UI receives (renderer/src/api/validate.ts) go through it.
 * The escape form is a JSON string escape, so applied to a JSON document it leaves the parsed values unchanged.
 * Pure.
 */

/**
 * Escaped: C0 controls (U+0000–U+001F, including ESC, CR, LF, TAB), DEL (U+007F), C1 controls (U+0080–U+009F,
 * including the 8-bit CSI U+009B), the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069),
 * the invisible direction marks (U+200E, U+200F, U+061C) and the Unicode line and paragraph separators
 * (U+2028, U+2029).
 */
export const UNSAFE_DISPLAY_CHARS =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_KEEP_LF =
  // eslint-disable-next-line no-control-regex -- the same set without LF
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const visible = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

export interface EscapeOptions {
  /** Keep LF (U+000A) as a line break: for multi-line text the program itself composed (CLI output, PEM). */
  readonly keepLineBreaks?: boolean;
  /** Cut to this many characters (after escaping), marked with "…". */
  readonly max?: number;
}

/** `s` with every control and bidi formatting character replaced by its visible `\uXXXX` escape. */
export function escapeControlChars(s: string, o: EscapeOptions = {}): string {
  const out = s.replace(o.keepLineBreaks ? UNSAFE_KEEP_LF : UNSAFE_DISPLAY_CHARS, visible);
  return o.max !== undefined && out.length > o.max ? `${out.slice(0, o.max)}…` : out;
}

/** Whether `s` holds a character escapeControlChars would escape. */
export function hasUnsafeDisplayChars(s: string): boolean {
  return UNSAFE_ONE.test(s);
}
const UNSAFE_ONE = new RegExp(UNSAFE_DISPLAY_CHARS.source);

/**
 * Escape every string in a JSON-like value (arrays and plain objects, recursively; other values unchanged):
 * for documents received from elsewhere before a view renders them. Line breaks are kept (a browser lays them out
 * as spaces except in preformatted text such as a PEM block).
 */
export function escapeStringsDeep<T>(v: T): T {
  if (typeof v === 'string') return escapeControlChars(v, { keepLineBreaks: true }) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => escapeStringsDeep(x)) as T;
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = escapeStringsDeep(x);
    return out as T;
  }
  return v;
}
