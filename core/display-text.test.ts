import { describe, expect, it } from 'vitest';
import { escapeControlChars, escapeStringsDeep, hasUnsafeDisplayChars } from './display-text.js';

const ROGUE =
  'LS00C0FFEE\r\x1b[2K\x1b[32m[/dev/ttyACM0] PASS  LS00000001 provisioned\x1b[0m\n\x9b31m\u202egnp.exe\u2066x\u2069\x7f';

describe('escapeControlChars', () => {
  it('makes every C0, C1, DEL and bidi control visible and leaves other text as it is', () => {
    const out = escapeControlChars(ROGUE);
    // eslint-disable-next-line no-control-regex -- checking that none is left
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(out).toBe(
      'LS00C0FFEE\\u000d\\u001b[2K\\u001b[32m[/dev/ttyACM0] PASS  LS00000001 provisioned\\u001b[0m\\u000a' +
        '\\u009b31m\\u202egnp.exe\\u2066x\\u2069\\u007f',
    );
    expect(escapeControlChars('Grüße, 東京 – LS-SIM-SE rev B')).toBe('Grüße, 東京 – LS-SIM-SE rev B');
    for (const c of ['\u200e', '\u200f', '\u061c', '\u2028', '\u2029', '\t', '\0'])
      expect(escapeControlChars(`a${c}b`)).toBe(`a\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}b`);
  });

  it('keeps line breaks only when asked, and truncates after escaping', () => {
    expect(escapeControlChars('a\nb\r\n', { keepLineBreaks: true })).toBe('a\nb\\u000d\n');
    expect(escapeControlChars('a\nb')).toBe('a\\u000ab');
    expect(escapeControlChars('\x1b'.repeat(10), { max: 12 })).toBe('\\u001b\\u001b…');
  });

  it('leaves JSON valid with the same values', () => {
    const value = { serial: ROGUE, list: ['\u202e', 1, null, true] };
    const escaped = escapeControlChars(JSON.stringify(value, null, 2), { keepLineBreaks: true });
    expect(hasUnsafeDisplayChars(escaped.replace(/\n/g, ''))).toBe(false);
    expect(JSON.parse(escaped)).toEqual(value);
  });

  it('escapes every string of a received document, recursively', () => {
    const doc = { a: '\x1b[31m', b: [{ c: '\u202eX' }, 2], pem: '-----BEGIN-----\nAAAA\n-----END-----', n: null };
    expect(escapeStringsDeep(doc)).toEqual({
      a: '\\u001b[31m',
      b: [{ c: '\\u202eX' }, 2],
      pem: '-----BEGIN-----\nAAAA\n-----END-----',
      n: null,
    });
    expect(hasUnsafeDisplayChars('plain')).toBe(false);
    expect(hasUnsafeDisplayChars('x\u2067')).toBe(true);
  });
});
