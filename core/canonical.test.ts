/**
 * canonicalJson against RFC 8785's own test vectors (test/fixtures/jcs/rfc8785-vectors.json: Appendix B numbers,
 * the section 3.2.2 and 3.2.3 examples), and what JCS refuses. The independent verifier (test/verifier/lsverify.py)
 * runs the same vectors through its own JCS (test/integration/independent-verifier.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson, hasLoneSurrogate } from './canonical.js';

interface Vectors {
  readonly numbers: readonly (readonly [string, string])[];
  readonly documents: readonly { readonly name: string; readonly input: string; readonly output: string }[];
  readonly invalid: readonly { readonly name: string; readonly input: string }[];
}
const V = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'test', 'fixtures', 'jcs', 'rfc8785-vectors.json'), 'utf8'),
) as Vectors;

const fromIeeeHex = (hex: string): number => Buffer.from(hex.padStart(16, '0'), 'hex').readDoubleBE(0);

describe('canonicalJson is RFC 8785 (JCS)', () => {
  it('serialises the numbers of RFC 8785 Appendix B exactly', () => {
    expect(V.numbers.length).toBeGreaterThanOrEqual(26);
    for (const [hex, want] of V.numbers) expect(canonicalJson(fromIeeeHex(hex)), hex).toBe(want);
    expect(canonicalJson([-0, 0])).toBe('[0,0]');
  });

  it('canonicalises the RFC 8785 examples (3.2.2 escaping and numbers, 3.2.3 member order by UTF-16 code units)', () => {
    expect(V.documents.length).toBe(2);
    for (const d of V.documents) {
      const out = canonicalJson(JSON.parse(d.input));
      expect(out, d.name).toBe(d.output);
      expect(Buffer.from(out, 'utf8').equals(Buffer.from(d.output, 'utf8')), d.name).toBe(true);
    }
    // The difference between UTF-16 code unit order and code point order: U+1F600 (D83D DE00) sorts before U+FB33.
    expect(canonicalJson({ '\ufb33': 1, '\u{1F600}': 2 })).toBe('{"\u{1F600}":2,"\ufb33":1}');
  });

  it('escapes exactly the C0 controls, " and \\ (\\u2028, DEL and / stay as they are)', () => {
    const all = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('');
    expect(canonicalJson(all)).toBe(
      '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
        '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"',
    );
    expect(canonicalJson('"\\/\u007f\u2028\u2029é')).toBe('"\\"\\\\/\u007f\u2028\u2029é"');
  });

  it('refuses what JCS refuses: lone surrogates (value or name) and non-finite numbers', () => {
    for (const d of V.invalid) expect(() => canonicalJson(JSON.parse(d.input)), d.name).toThrow(/lone surrogate/);
    expect(() => canonicalJson(Number.NaN)).toThrow(/non-finite/);
    expect(() => canonicalJson({ a: Number.POSITIVE_INFINITY })).toThrow(/non-finite/);
    expect(canonicalJson('\ud83d\ude00')).toBe('"\u{1F600}"'); // a pair is fine
    expect(hasLoneSurrogate({ a: ['x', { b: '\udfff' }] })).toBe(true);
    expect(hasLoneSurrogate({ '\ud800': 1 })).toBe(true);
    expect(hasLoneSurrogate({ a: ['\ud83d\ude00', 1, null, true] })).toBe(false);
  });
});
