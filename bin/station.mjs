#!/usr/bin/env node
// The `station` command. Runs the TypeScript sources through tsx (no build step needed).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../station/cli.ts');
const code = await main(process.argv.slice(2));
// Serial ports and discovery timers are closed by then; exit explicitly so no stray handle keeps us alive.
process.exit(code);
