// Lint enforces the architecture (docs/architecture.md "Layers"): the import layers of scripts/architecture/layers.mjs
// (core <- native <- station | registry <- electron; renderer; station and registry never import each other; only
// tests import test support), native packages only in native/, Electron only in electron/, raw IPC in one file a side.
import js from '@eslint/js';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';
import { layerViolation } from './scripts/architecture/layers.mjs';

const ROOT = dirname(fileURLToPath(import.meta.url));

/** The repository-relative, `/`-separated path of an absolute file name. */
const repoPath = (file) => relative(ROOT, file).split(sep).join('/');

/**
 * `local/layers`: every relative import (static, type-only, re-export, dynamic, require, `import('x')` types) is
 * resolved against the importing file and checked against the layer table.
 */
const layersRule = {
  meta: { type: 'problem', schema: [], docs: { description: 'Imports follow the layers of docs/architecture.md' } },
  create(context) {
    const from = repoPath(context.filename);
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const message = layerViolation(from, repoPath(resolve(dirname(context.filename), source)));
      if (message) context.report({ node, message });
    };
    const fromSource = (node) => check(node, node.source?.value);
    return {
      ImportDeclaration: fromSource,
      ExportNamedDeclaration: fromSource,
      ExportAllDeclaration: fromSource,
      ImportExpression: fromSource,
      TSImportType: (node) => check(node, node.argument?.literal?.value ?? node.argument?.value),
      TSExternalModuleReference: (node) => check(node, node.expression?.value),
      CallExpression: (node) => {
        if (node.callee.type === 'Identifier' && node.callee.name === 'require') check(node, node.arguments[0]?.value);
      },
    };
  },
};

// Native packages and database drivers: only native/ (and test support) may import them.
const NATIVE = ['serialport', '@serialport/*', 'usb', 'pkcs11js', 'better-sqlite3', 'pg', 'pg-*'];

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
    plugins: { local: { rules: { layers: layersRule } } },
    rules: {
      'local/layers': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: NATIVE,
              message: 'Native modules and database drivers may only be imported in native/ (docs/architecture.md).',
            },
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
    // Test support may open the station database directly (tamper and crash tests); the CA key extraction attack
    // opens its own raw PKCS#11 session, as an attacker with the user PIN would.
    files: ['native/**', 'testkit/**', 'test/integration/ca-key-extraction.test.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['core/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        // (which of our folders core/ may import is local/layers' job)
        { patterns: [{ group: NATIVE, message: 'core/ is pure: no native modules or database drivers.' }] },
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
