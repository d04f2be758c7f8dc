/**
 * The error catalogue in every UI language (core/errors.ts for English, renderer/src/i18n/errors.<lang>.json for the
 * others): every code has a text and a guidance in each language; a text uses only the params its code declares; and
 * every producer of a code with params (`fail(...)` / `stationError(...)` with a literal code anywhere in core/,
 * station/, native/, electron/, registry/) passes those params in its `details` object literal. Producers whose code
 * or details are computed cannot be checked here and are counted; the runtime falls back to the English message when
 * a param is missing (checked below, as is the fallback for a code the UI does not know).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ErrorParamsSchema } from '../../core/api.js';
import { ERROR_CATALOGUE, stationError, type ErrorCatalogueEntry, type ErrorCode } from '../../core/errors.js';
import { ERROR_LANGUAGES, errorCatalogue, localiseError } from '../../renderer/src/i18n/errors.js';
import { LANGUAGES } from '../../renderer/src/i18n/languages.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
const placeholders = (s: string) => [...new Set([...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!))].sort();
const declared = (c: ErrorCode) => [...((ERROR_CATALOGUE[c] as ErrorCatalogueEntry).params ?? [])].sort();

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules' || n === 'dist') return [];
    return statSync(p).isDirectory() ? sources(p) : /\.tsx?$/.test(n) && !/\.test\.tsx?$/.test(n) ? [p] : [];
  });
}

interface Producer {
  readonly where: string;
  readonly code: string | null; // null: computed, not checkable
  readonly keys: readonly string[] | null; // null: details computed or spread, not checkable
}

/** Every `fail(code, message, details?)` / `stationError(...)` call in `text`, with its literal code(s) and keys. */
function producers(file: string, text: string): Producer[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Producer[] = [];
  const visit = (n: ts.Node): void => {
    if (
      ts.isCallExpression(n) &&
      ts.isIdentifier(n.expression) &&
      (n.expression.text === 'fail' || n.expression.text === 'stationError') &&
      n.arguments.length >= 2
    ) {
      const where = `${relative(ROOT, file)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
      const d = n.arguments[2];
      let keys: string[] | null = [];
      if (d) {
        if (ts.isObjectLiteralExpression(d) && d.properties.every((p) => !ts.isSpreadAssignment(p) && p.name)) {
          keys = d.properties.map((p) => p.name!.getText(sf).replace(/^['"]|['"]$/g, ''));
        } else keys = null;
      }
      const codes = (e: ts.Expression): (string | null)[] =>
        ts.isStringLiteral(e)
          ? [e.text]
          : ts.isConditionalExpression(e)
            ? [...codes(e.whenTrue), ...codes(e.whenFalse)]
            : ts.isParenthesizedExpression(e)
              ? codes(e.expression)
              : [null];
      for (const code of codes(n.arguments[0]!)) out.push({ where, code, keys });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Producers of codes with params that do not pass one of them. */
function missingParams(ps: readonly Producer[]): string[] {
  const out: string[] = [];
  for (const p of ps) {
    if (p.code === null || p.keys === null || !(p.code in ERROR_CATALOGUE)) continue;
    for (const name of declared(p.code as ErrorCode))
      if (!p.keys.includes(name)) out.push(`${p.where}: ${p.code} without param ${name}`);
  }
  return out;
}

describe('error catalogue: every code in every language', () => {
  it('every code has a text and a guidance in English and in every other UI language, and no other codes', () => {
    expect(CODES.length).toBeGreaterThan(80);
    const langs = Object.keys(LANGUAGES);
    expect(langs.sort()).toEqual(['en', ...Object.keys(ERROR_LANGUAGES)].sort());
    for (const lang of Object.keys(ERROR_LANGUAGES) as (keyof typeof ERROR_LANGUAGES)[])
      expect(Object.keys(ERROR_LANGUAGES[lang]).sort(), lang).toEqual([...CODES].sort());
    for (const lang of langs as (keyof typeof LANGUAGES)[])
      for (const code of CODES) {
        const c = errorCatalogue(lang, code);
        expect(c.text.trim().length, `${lang} ${code} text`).toBeGreaterThan(5);
        expect(c.guidance.trim().length, `${lang} ${code} guidance`).toBeGreaterThan(5);
        // A German entry is not the English one left in place.
        if (lang !== 'en') {
          expect(c.text, `${lang} ${code}`).not.toBe(ERROR_CATALOGUE[code].text);
          expect(c.guidance, `${lang} ${code}`).not.toBe(ERROR_CATALOGUE[code].guidance);
        }
      }
  });

  it('texts use exactly the declared params (the same in every language); guidance uses none', () => {
    for (const code of CODES) {
      const names = declared(code);
      for (const n of names) expect(ErrorParamsSchema.safeParse({ [n]: 'x' }).success, `${code} ${n}`).toBe(true);
      for (const lang of Object.keys(LANGUAGES) as (keyof typeof LANGUAGES)[]) {
        const c = errorCatalogue(lang, code);
        expect(placeholders(c.text), `${lang} ${code} text`).toEqual(names);
        expect(placeholders(c.guidance), `${lang} ${code} guidance`).toEqual([]);
      }
    }
  });

  it('every producer of a code with params passes them in its details (where the call is literal)', () => {
    const all = ['core', 'station', 'native', 'electron', 'registry'].flatMap((d) =>
      sources(join(ROOT, d)).flatMap((f) => producers(f, readFileSync(f, 'utf8'))),
    );
    const withParams = CODES.filter((c) => declared(c).length > 0);
    const checked = all.filter((p) => p.code !== null && p.keys !== null);
    const unknown = all.filter((p) => p.code !== null && !(p.code in ERROR_CATALOGUE));
    console.log(
      `[errors] ${all.length} producers: ${checked.length} checkable, ${all.length - checked.length} computed; ` +
        `${withParams.length} codes with params`,
    );
    expect(all.length).toBeGreaterThan(300);
    expect(unknown.map((p) => `${p.where} ${p.code}`)).toEqual([]);
    expect(missingParams(all)).toEqual([]);
    // Each code with params has at least one producer that was checked (a declared param nobody passes is dead).
    for (const c of withParams)
      expect(
        checked.some((p) => p.code === c),
        c,
      ).toBe(true);
  });

  it('the producer check catches a producer that forgets a param (self-test)', () => {
    const src = `
      fail('FLOW_WORK_ORDER_MISMATCH', 'm', { profile: 'p' });
      stationError(x ? 'FLOW_QUOTA_EXHAUSTED' : 'INTERNAL', 'm');
      fail('BOARD_CERT_MISSING', 'm', { recordId: 'r', chipId: 'c' });
      fail('FLOW_BLOCKED', 'm', { ...d });
    `;
    const ps = producers(join(ROOT, 'selftest.ts'), src);
    expect(ps.map((p) => p.code)).toEqual([
      'FLOW_WORK_ORDER_MISMATCH',
      'FLOW_QUOTA_EXHAUSTED',
      'INTERNAL',
      'BOARD_CERT_MISSING',
      'FLOW_BLOCKED',
    ]);
    expect(missingParams(ps)).toEqual([
      'selftest.ts:2: FLOW_WORK_ORDER_MISMATCH without param workOrder',
      'selftest.ts:3: FLOW_QUOTA_EXHAUSTED without param workOrder',
    ]);
  });
});

describe('localiseError', () => {
  it('fills params from the error (stationError copies them from details) in each language', () => {
    const e = stationError('FLOW_WORK_ORDER_MISMATCH', 'board profile ls-x is not part of work order WO-9', {
      profile: 'ls-x',
      workOrder: 'WO-9',
      other: { nested: true },
    });
    expect(e.params).toEqual({ profile: 'ls-x', workOrder: 'WO-9' });
    expect(localiseError(e, 'de')).toEqual({
      text: 'Board-Profil ls-x gehört nicht zu Auftrag WO-9.',
      guidance: ERROR_LANGUAGES.de.FLOW_WORK_ORDER_MISMATCH.guidance,
      localised: true,
    });
    expect(localiseError(e, 'en').text).toBe('Board profile ls-x is not part of work order WO-9.');
    // An ISO time is shown in the language's format, not as ISO.
    const locked = localiseError(
      stationError('AUTH_LOCKED', 'locked', { lockedUntil: '2026-12-06T10:05:00.000Z' }),
      'de',
    );
    expect(locked.text).toBe(
      `Die Anmeldung ist gesperrt bis ${new Date('2026-12-06T10:05:00.000Z').toLocaleString('de')}.`,
    );
  });

  it('falls back to the English message for an unknown code or a missing param', () => {
    const unknown = { code: 'FUTURE_CODE', message: 'something new happened', guidance: 'do the new thing' };
    expect(localiseError(unknown, 'de')).toEqual({
      text: 'something new happened',
      guidance: 'do the new thing',
      localised: false,
    });
    const noParams = stationError('FLOW_QUOTA_EXHAUSTED', 'work order WO-1: quota used up');
    expect(noParams.params).toBeUndefined();
    const l = localiseError(noParams, 'de');
    expect(l.text).toBe('work order WO-1: quota used up');
    expect(l.guidance).toBe(ERROR_LANGUAGES.de.FLOW_QUOTA_EXHAUSTED.guidance);
    expect(l.localised).toBe(false);
  });

  it('cuts a long param to the schema limit, so the error still crosses the bridge', () => {
    const e = stationError('LINK_OPEN_FAILED', 'open failed', { path: `/dev/${'x'.repeat(2000)}` });
    expect(ErrorParamsSchema.safeParse(e.params).success).toBe(true);
    expect(String(e.params?.['path']).length).toBe(512);
  });
});
