/**
 * Deterministic mutations of a JSON text, for the tests of code that reads JSON without parsing it first (the
 * registry's body scans: registry/ingest/batch-body.test.ts, bundle-body.test.ts): each mutation deletes a character,
 * inserts one that matters to JSON (quote, backslash, brackets, comma, colon, space, a letter, a digit, a non-ASCII
 * letter) or repeats a run of up to 20 characters, one to three times. Test support only.
 */

const ALPHABET = ['"', '\\', '[', ']', '{', '}', ',', ':', ' ', 'x', '1', '\u00e9'];

/** `count` mutations of `text`, the same for the same `seed`. */
export function* jsonMutations(text: string, seed: number, count: number): Generator<string> {
  let s = seed;
  const rand = (n: number) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
  for (let k = 0; k < count; k++) {
    let t = text;
    for (let m = 0; m <= rand(3); m++) {
      const at = rand(t.length);
      const op = rand(3);
      if (op === 0) t = t.slice(0, at) + t.slice(at + 1);
      else if (op === 1) t = t.slice(0, at) + ALPHABET[rand(ALPHABET.length)]! + t.slice(at);
      else t = t.slice(0, at) + t.slice(at, at + rand(20)) + t.slice(at);
    }
    yield t;
  }
}
