/**
 * The UI's languages and their catalogues (pure data: no React, no DOM), for i18n/index.ts and for tests that run
 * in plain Node.
 */
import de from './de.json' with { type: 'json' };
import en from './en.json' with { type: 'json' };

export type MessageKey = keyof typeof en;
export const LANGUAGES = { en, de } as const satisfies Record<string, Record<MessageKey, string>>;
export type Language = keyof typeof LANGUAGES;
