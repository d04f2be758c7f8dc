// Which code bin/station.mjs and bin/registry.mjs run: the compiled JavaScript in dist/node (scripts/build.ts, run by
// `npm ci` and scripts/test.sh), or the TypeScript sources through tsx (development).
//
// $LINE_STATION_RUNTIME chooses: `dist` (compiled only; exit 70 when there is no build), `tsx` (sources), unset or
// `auto`: dist/node while it is current, else the sources. Current means: dist/node/build-stamp.json exists and no
// compiled source (a .ts file, not a test, under the folders the stamp names) has a newer mtime than the stamp, so
// an edited checkout never runs stale output. The check stats each source file once (~300 files, a few ms).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest mtime (ms) of a compiled source file under `dir`, or 0. Mirrors scripts/build.ts isBuildSource. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
      newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}

/**
 * Why dist/node cannot run (a sentence), or null when it is current.
 * @param {string} [root] the package root (tests pass a copy)
 */
export function staleReason(root = ROOT) {
  const out = join(root, 'dist', 'node');
  const stampFile = join(out, 'build-stamp.json');
  let stamp;
  let built;
  try {
    stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
    built = statSync(stampFile).mtimeMs;
  } catch {
    return 'no build (dist/node/build-stamp.json): run npm run build';
  }
  for (const r of stamp.roots ?? []) {
    if (newestSource(join(root, r)) > built) return `sources in ${r}/ are newer than the build: run npm run build`;
  }
  return null;
}

/**
 * Load an entry module: `dist()` (its compiled file in dist/node) or, through tsx, `src()` (its TypeScript source);
 * see the header for the choice. Both are literal `import()`s in the bin, so the import graph sees the entry.
 * @template T
 * @param {() => Promise<T>} dist
 * @param {() => Promise<T>} src
 * @returns {Promise<T>}
 */
export async function loadEntry(dist, src) {
  const mode = process.env.LINE_STATION_RUNTIME ?? 'auto';
  if (mode !== 'tsx') {
    const why = staleReason();
    if (why === null) return dist();
    if (mode === 'dist') {
      process.stderr.write(`LINE_STATION_RUNTIME=dist: ${why}\n`);
      process.exit(70);
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  return src();
}
