#!/usr/bin/env node
// The `registry` command (headquarters registry service). Runs the TypeScript sources through tsx (no build step needed).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../registry/cli.ts');
const code = await main(process.argv.slice(2));
// The HSM module and database pool are closed by then; exit explicitly so no stray handle keeps us alive.
process.exit(code);
