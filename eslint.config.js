// Lint enforces the architecture: native packages only in native/, no Electron in core/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NATIVE = ['serialport', '@serialport/*', 'usb', 'pkcs11js', 'better-sqlite3'];

// Electron: raw IPC only in its one wrapper file each side; no Electron at all outside electron/.
const IPC_MESSAGE = 'ipcMain/ipcRenderer only in electron/main/ipc.ts and electron/preload/ (docs/desktop.md).';
const IPC_SYNTAX = [
  {
    selector: "ImportDeclaration[source.value='electron'] > ImportSpecifier[imported.name=/^ipc(Main|Renderer)$/]",
    message: IPC_MESSAGE,
  },
  { selector: 'MemberExpression[property.name=/^ipc(Main|Renderer)$/]', message: IPC_MESSAGE },
  { selector: 'ObjectPattern > Property[key.name=/^ipc(Main|Renderer)$/]', message: IPC_MESSAGE },
];
const ELECTRON_MESSAGE =
  'No electron in core/, native/, station/, registry/ or renderer/: they run in plain Node or the DOM.';
const ELECTRON_SOURCE = '/^electron(\\u002F.*)?$/';
const ELECTRON_SYNTAX = [
  ...IPC_SYNTAX,
  ...['ImportDeclaration', 'ImportExpression', 'ExportNamedDeclaration', 'ExportAllDeclaration'].map((n) => ({
    selector: `${n}[source.value=${ELECTRON_SOURCE}]`,
    message: ELECTRON_MESSAGE,
  })),
  {
    selector: `CallExpression[callee.name='require'][arguments.0.value=${ELECTRON_SOURCE}]`,
    message: ELECTRON_MESSAGE,
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test-results/**', 'renderer/dist/**'] },
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
    // Test support may open the station database directly (tamper and crash tests).
    files: ['native/**', 'testkit/**'],
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
  {
    ignores: ['electron/main/ipc.ts', 'electron/preload/**'],
    rules: { 'no-restricted-syntax': ['error', ...IPC_SYNTAX] },
  },
  {
    files: ['core/**', 'native/**', 'station/**', 'registry/**', 'renderer/**'],
    rules: { 'no-restricted-syntax': ['error', ...ELECTRON_SYNTAX] },
  },
);
