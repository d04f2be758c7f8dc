// Which code bin/station.mjs and bin/registry.mjs run: the compiled JavaScript in dist/node (scripts/build.ts, run by
// `npm ci` and scripts/test.sh), or the TypeScript sources through tsx (development).
//
// $LINE_STATION_RUNTIME chooses: `dist` (compiled only; exit 70 when there is no build), `tsx` (sources), unset or
// `auto`: dist/node while it is current, else the sources. Current means: dist/node/build-stamp.json exists and no
// compiled source (a .ts file, not a test, under the folders the stamp names) has a newer mtime than the stamp, so
// an edited checkout never runs stale output. The check stats each source file once (~300 files, a few ms).
// `modules` runs the one-to-one compiled modules of dist/node instead of the bin's bundle (for comparison: the
// start-up bench; like `dist`, only a current build).
//
// The compiled program is the bin's bundle, dist/node/bin/<bin>.cjs, compiled with V8's code cache (`loadBundle`):
// `<bundle>.<mtime>.cache` beside it holds V8's compiled code from an earlier run, written after a command when
// there was none or V8 rejected it (another Node version or V8 flags), so a bundle is parsed and compiled once, not
// at every start. The bundle's mtime is in the name because V8 checks a cache against the source's length only: a
// rebuilt bundle never meets the cache of the one before (the build also empties dist/node). The cache is only ever
// written beside the bundle (no more writable than the bundle itself); where that folder is not writable, every
// start compiles, as without a cache.
import {
  closeSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

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
    const p = `${dir}/${e.name}`; // not path.join: `dir` is already normal, and this runs ~350 times at every start
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
 * The code cache's bytes, or undefined when there is none or it is not this user's own: V8 runs what a cache holds, so
 * a cache another user wrote (or could have changed: group- or world-writable) is ignored, checked on the open file.
 * @param {string} cacheFile
 * @returns {Buffer | undefined}
 */
function readOwnCache(cacheFile) {
  let fd;
  try {
    fd = openSync(cacheFile, 'r');
    const st = fstatSync(fd);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Run a CommonJS bundle (scripts/build.ts `buildBins`) compiled with V8's code cache `cacheFile` (default: the bundle's
 * path + `.<mtime ms>.cache`) when it is there and V8 accepts it. `cache`: `accepted`, `rejected` (V8 compiled afresh: another
 * Node version or other V8 flags) or `none`. `saveCache()` writes V8's code for the bundle (what ran so far) to the
 * cache file when it was not accepted, atomically (a temporary file renamed); false when it did not (accepted, or
 * the folder is not writable).
 * @param {string} file
 * @param {string} [cacheFile]
 * @returns {{ exports: any, cache: 'accepted' | 'rejected' | 'none', saveCache(): boolean }}
 */
export function loadBundle(file, cacheFile = `${file}.${Math.trunc(statSync(file).mtimeMs)}.cache`) {
  // ASCII only (scripts/build.ts `charset: 'ascii'`): read as Latin-1, which is exact for ASCII and decodes
  // without UTF-8's checks (measured: about half the time for the 2 MB bundle).
  const source = readFileSync(file, 'latin1');
  const cachedData = readOwnCache(cacheFile);
  // The CommonJS module wrapper. The bundle has no import() (scripts/build.ts turns them into require()).
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return {
    exports: module.exports,
    cache,
    saveCache() {
      if (cache === 'accepted') return false;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, script.createCachedData(), { flag: 'wx', mode: 0o600 });
        renameSync(tmp, cacheFile);
        return true;
      } catch {
        rmSync(tmp, { force: true });
        return false;
      }
    },
  };
}

/**
 * What a bin runs: the program's `main`, and `ran()` to call once it returned (stores the code cache).
 * @typedef {{ main(argv: readonly string[]): Promise<number>, ran(): void }} Entry
 */

/**
 * Load the program of bin `name` (`station`, `registry`): its bundle dist/node/bin/<name>.cjs, or with
 * LINE_STATION_RUNTIME=modules `modules()` (its one-to-one compiled module), or through tsx `src()` (its TypeScript
 * source); see the header for the choice. `src` and `modules` are literal `import()`s in the bin.
 * @param {string} name
 * @param {() => Promise<{ main: Entry['main'] }>} src
 * @param {() => Promise<{ main: Entry['main'] }>} modules
 * @returns {Promise<Entry>}
 */
export async function loadEntry(name, src, modules) {
  const mode = process.env.LINE_STATION_RUNTIME ?? 'auto';
  if (mode !== 'tsx') {
    const why = staleReason();
    if (why === null) {
      if (mode === 'modules') return { main: (await modules()).main, ran: () => {} };
      const b = loadBundle(join(ROOT, 'dist', 'node', 'bin', `${name}.cjs`));
      return { main: b.exports.main, ran: () => void b.saveCache() };
    }
    if (mode === 'dist' || mode === 'modules') {
      process.stderr.write(`LINE_STATION_RUNTIME=${mode}: ${why}\n`);
      process.exit(70);
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  return { main: (await src()).main, ran: () => {} };
}
