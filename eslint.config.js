// Lint enforces the architecture: native packages only in native/, no Electron in core/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NATIVE = ['serialport', '@serialport/*', 'usb', 'pkcs11js', 'better-sqlite3'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NATIVE, message: 'Native modules may only be imported in native/ (see docs/architecture.md).' },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    files: ['native/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['core/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NATIVE, message: 'core/ is pure: no native modules.' },
            {
              group: ['electron', '**/native/**', '**/station/**', '**/electron/**'],
              message: 'core/ imports nothing of ours but core/.',
            },
          ],
        },
      ],
    },
  },
);
