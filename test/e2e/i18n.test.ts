/**
 * i18n checks over the renderer sources: both catalogues have the same keys and placeholders, every
 * `t('key')` used exists, and no UI text escapes i18n (JSX text nodes and user-visible attributes
 * must come from `t(...)`, not string literals).
 */
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..', 'renderer');
const SRC = join(ROOT, 'src');
const en = JSON.parse(readFileSync(join(SRC, 'i18n', 'en.json'), 'utf8')) as Record<string, string>;
const de = JSON.parse(readFileSync(join(SRC, 'i18n', 'de.json'), 'utf8')) as Record<string, string>;

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p, ext) : ext.test(n) ? [p] : [];
  });
}
const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

/** Attributes a person reads or hears. */
const TEXT_ATTRS = new Set(['aria-label', 'title', 'placeholder', 'alt', 'label', 'aria-description']);
/** Static text with words in it (two letters or more). */
const WORDY = /\p{L}{2,}/u;

function scan(file: string): { problems: string[]; keys: string[] } {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TSX);
  const problems: string[] = [];
  const keys: string[] = [];
  const where = (n: ts.Node) => `${relative(ROOT, file)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  const visit = (n: ts.Node): void => {
    if (ts.isJsxText(n) && n.text.trim() !== '') problems.push(`${where(n)} JSX text "${n.text.trim()}"`);
    if (ts.isJsxExpression(n) && n.expression && (ts.isJsxElement(n.parent) || ts.isJsxFragment(n.parent))) {
      const e = n.expression;
      if (ts.isStringLiteral(e) && WORDY.test(e.text)) problems.push(`${where(n)} literal child "${e.text}"`);
      if (ts.isTemplateExpression(e) || ts.isNoSubstitutionTemplateLiteral(e)) {
        const parts = ts.isTemplateExpression(e)
          ? [e.head.text, ...e.templateSpans.map((s) => s.literal.text)]
          : [e.text];
        for (const p of parts) if (WORDY.test(p)) problems.push(`${where(n)} template text "${p}"`);
      }
    }
    if (ts.isJsxAttribute(n) && TEXT_ATTRS.has(n.name.getText()) && n.initializer) {
      const init = n.initializer;
      if (ts.isStringLiteral(init) && WORDY.test(init.text)) problems.push(`${where(n)} attribute "${init.text}"`);
    }
    if (
      ts.isCallExpression(n) &&
      ts.isIdentifier(n.expression) &&
      n.expression.text === 't' &&
      n.arguments[0] &&
      ts.isStringLiteral(n.arguments[0])
    ) {
      keys.push(n.arguments[0].text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { problems, keys };
}

describe('renderer i18n', () => {
  it('en and de have the same keys, non-empty texts and the same placeholders', () => {
    expect(Object.keys(de).sort()).toEqual(Object.keys(en).sort());
    expect(Object.keys(en).length).toBeGreaterThan(150);
    for (const [k, v] of Object.entries(en)) {
      expect(v.trim(), k).not.toBe('');
      expect(de[k]?.trim(), k).not.toBe('');
      expect(placeholders(de[k] ?? ''), k).toEqual(placeholders(v));
    }
  });

  it('every literal t() key exists and no UI text escapes i18n in renderer/src', () => {
    const sources = files(SRC, /\.tsx?$/);
    expect(sources.length).toBeGreaterThan(10);
    const problems: string[] = [];
    const missing: string[] = [];
    for (const f of sources) {
      const r = scan(f);
      problems.push(...r.problems);
      for (const k of r.keys) if (!(k in en)) missing.push(`${relative(ROOT, f)}: ${k}`);
    }
    expect(missing).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('the checker catches a hard-coded string (self-test)', () => {
    const dir = join(import.meta.dirname, '..', '..', 'test-results');
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, 'i18n-selftest.tsx');
    const src = 'export const A = () => <p title="Hello there">Hard coded {"Literal words"}{`Tpl ${1} text`}</p>;\n';
    ts.sys.writeFile(tmp, src);
    const r = scan(tmp);
    expect(r.problems.length).toBe(5); // attribute, JSX text, literal child, two template parts
  });
});
