#!/usr/bin/env node
// The `registry` command (headquarters registry service). Runs the TypeScript sources through tsx (no build step needed).
import { register } from 'tsx/esm/api';
import { exitWhenDrained } from './exit.mjs';

// Everything this process (and its children: softhsm2-util, SQLite, the logger) creates is private from the first
// write: folders 0700, files 0600 (docs/architecture.md "Data directory permissions"). Set before any module loads.
process.umask(0o077);
register();
const { main } = await import('../registry/cli.ts');
const code = await main(process.argv.slice(2));
// The HSM module and database pool are closed by then; exit once the output drained (bin/exit.mjs).
await exitWhenDrained(code);
