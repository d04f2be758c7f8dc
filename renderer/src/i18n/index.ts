/**
 * i18n: every UI string comes from a catalogue (en.json, de.json) through `t(key, params)`.
 * `{name}` placeholders are replaced by params. The language is kept in localStorage.
 */
import { useSyncExternalStore } from 'react';
import { LANGUAGES, type Language, type MessageKey } from './languages.js';

export { LANGUAGES, type Language, type MessageKey };
const en = LANGUAGES.en;

const STORAGE_KEY = 'lineStation.lang';
let current: Language = initialLanguage();
const listeners = new Set<() => void>();

function initialLanguage(): Language {
  try {
    const saved = globalThis.localStorage?.getItem(STORAGE_KEY);
    if (saved && saved in LANGUAGES) return saved as Language;
  } catch {
    // storage unavailable: default language
  }
  return 'en';
}

/** Translates `key` in the current language. */
export function t(key: MessageKey, params?: Readonly<Record<string, string | number>>): string {
  const text: string = LANGUAGES[current][key] ?? en[key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

/** True when the catalogue has `key` (for codes from the station, e.g. `action.reseat`). */
export function hasKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(en, key);
}

export function language(): Language {
  return current;
}

/** Switches the language (re-renders every component that uses `useLanguage`). */
export function setLanguage(lang: Language): void {
  if (lang === current) return;
  current = lang;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, lang);
  } catch {
    // not persisted
  }
  document.documentElement.lang = lang;
  for (const l of [...listeners]) l();
}

/** Subscribes a component to language changes; returns the current language. */
export function useLanguage(): Language {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => current,
  );
}
