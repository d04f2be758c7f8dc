#!/usr/bin/env node
// The `registry` command (headquarters registry service). Runs the compiled JavaScript in dist/node (npm run build),
// or the TypeScript sources through tsx when that build is missing or older than the sources (bin/runtime.mjs;
// $LINE_STATION_RUNTIME forces either).
import { loadEntry } from './runtime.mjs';
import { exitWhenDrained } from './exit.mjs';

// Everything this process (and its children: softhsm2-util, SQLite, the logger) creates is private from the first
// write: folders 0700, files 0600 (docs/architecture.md "Data directory permissions"). Set before any module loads.
process.umask(0o077);
const entry = await loadEntry(
  'registry',
  () => import('../registry/cli.ts'),
  () => import('../dist/node/registry/cli.js'),
);
const code = await entry.main(process.argv.slice(2));
entry.ran(); // the bundle's code cache, when there was none (bin/runtime.mjs)
// The HSM module and database pool are closed by then; exit once the output drained (bin/exit.mjs).
await exitWhenDrained(code);
