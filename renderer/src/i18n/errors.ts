/**
 * Station errors in the UI's language: an ApiError's `code` picks the text and guidance, its `params` fill the
 * text's `{name}` placeholders (core/errors.ts: `text`, `guidance`, `params`). English comes from the station's own
 * catalogue (core/errors.ts), every other language from `errors.<lang>.json` (one entry per code, same placeholders;
 * test/e2e/error-catalogue.test.ts checks both). Pure (no React, no DOM). A code this UI does not know (a newer station), or a text whose
 * params the error lacks, falls back to the station's English `message` and `guidance` as sent.
 */
import type { ApiError } from '../../../core/api.js';
import { ERROR_CATALOGUE, isErrorCode, type ErrorCode, type ErrorParams } from '../../../core/errors.js';
import de from './errors.de.json' with { type: 'json' };
import type { Language } from './languages.js';

/** What the UI shows for one code: one sentence of what happened, and what to do. */
export interface ErrorTexts {
  readonly text: string;
  readonly guidance: string;
}

/** The error texts of every language but English, which is the station's catalogue. */
export const ERROR_LANGUAGES = { de } as const satisfies Record<Exclude<Language, 'en'>, Record<ErrorCode, ErrorTexts>>;

/** The catalogue entry of `code` in `lang` (English: core/errors.ts). */
export function errorCatalogue(lang: Language, code: ErrorCode): ErrorTexts {
  if (lang === 'en') return ERROR_CATALOGUE[code];
  return ERROR_LANGUAGES[lang][code];
}

/** Params that are ISO times are shown in the language's date format. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function paramText(v: string | number, lang: Language): string {
  if (typeof v === 'number') return v.toLocaleString(lang);
  return ISO_TIME.test(v) ? new Date(v).toLocaleString(lang) : v;
}

/** Fills `{name}` from `params`; null when a placeholder has no value. */
export function fillParams(text: string, params: ErrorParams | undefined, lang: Language): string | null {
  let missing = false;
  const out = text.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = params && Object.prototype.hasOwnProperty.call(params, name) ? params[name] : undefined;
    if (v === undefined) {
      missing = true;
      return '';
    }
    return paramText(v, lang);
  });
  return missing ? null : out;
}

/**
 * What happened and what to do, in `lang`. `localised` is false when the station's English texts are shown (unknown
 * code, or params missing).
 */
export function localiseError(
  e: Pick<ApiError, 'code' | 'message' | 'params'> & { readonly guidance?: string },
  lang: Language,
): ErrorTexts & { readonly localised: boolean } {
  if (!isErrorCode(e.code)) return { text: e.message, guidance: e.guidance ?? '', localised: false };
  const c = errorCatalogue(lang, e.code);
  const text = fillParams(c.text, e.params, lang);
  if (text === null) return { text: e.message, guidance: c.guidance, localised: false };
  return { text, guidance: c.guidance, localised: true };
}
