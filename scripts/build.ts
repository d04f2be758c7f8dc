/**
 * `npm run build` (run by `npm ci` through `prepare`, and by scripts/test.sh): the compiled JavaScript that
 * bin/station.mjs and bin/registry.mjs run, so no TypeScript is compiled at start.
 *
 * First, every TypeScript file of the folders tsconfig.build.json includes (core, native, station, registry), except
 * tests and declarations, is transpiled one file to one file with esbuild into dist/node/<same path>.js, with a
 * linked source map: the module graph, the lazy `import()`s and every file stay where they were, so each worker
 * entry (`*.worker.ts` -> `*.worker.js`, beside the module that starts it) is built by the same rule as any other
 * file, and paths to data (resources/, renderer/dist) come from native/package-root.ts, not from a module's own
 * location. Type checking is `npm run typecheck`'s job (esbuild only strips types).
 *
 * Then each bin's program is bundled into one CommonJS file, dist/node/bin/<bin>.cjs (BIN_ENTRIES): one file to read
 * and compile instead of ~150-450 modules to resolve and link, and a file V8 can keep a code cache for
 * (bin/runtime.mjs). A lazy `import()` becomes a lazily run part of the bundle, so a command still runs only its own
 * modules. The native and optional-native packages stay outside (BUNDLE_EXTERNAL, loaded from node_modules); the
 * pure JavaScript packages (zod, the X.509 stack) go in. `import.meta.url` is the bundle's own URL (the package root
 * is found from there), and each worker entry gets a one-line module beside the bundles that imports its one-to-one
 * build (a worker is started from `new URL('./x.worker.js', import.meta.url)`).
 *
 * Last, dist/node/build-stamp.json records the build's start time (also as the file's mtime) and the source folders:
 * bin/runtime.mjs runs dist/node only while no source file is newer than the stamp, else the sources through tsx.
 * Imports: esbuild.
 */
import { build } from 'esbuild';
import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the compiled files go, relative to the package root (bin/runtime.mjs reads it from here too). */
export const OUT_DIR = join('dist', 'node');
/** The stamp file in OUT_DIR (bin/runtime.mjs). */
export const STAMP = 'build-stamp.json';

/** The program each bin runs, bundled into dist/node/bin/<bin>.cjs (bin/runtime.mjs `BIN_ENTRIES` names the same). */
export const BIN_ENTRIES = { station: 'station/cli/program.ts', registry: 'registry/cli.ts' } as const;

/**
 * Packages the bundles load from node_modules: native addons (better-sqlite3, pkcs11js, serialport, usb), packages
 * with optional native parts or optional requires (pg, cbor-x), React (the desktop's) and tsx (development only).
 */
export const BUNDLE_EXTERNAL = [
  'better-sqlite3',
  'cbor-x',
  'pg',
  'pkcs11js',
  'react',
  'react-dom',
  'serialport',
  'tsx',
  'usb',
];

/** Whether a file of a source folder is compiled: TypeScript, not a test, not a declaration. */
export function isBuildSource(name: string): boolean {
  return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts');
}

/** The source folders: tsconfig.build.json's `include`. */
export function sourceRoots(dir = root): string[] {
  const cfg = JSON.parse(readFileSync(join(dir, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  return cfg.include;
}

/** Every compiled source file under `dirs` (relative to `base`), sorted. */
export function sourceFiles(base: string, dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(join(base, d), { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isBuildSource(e.name)) out.push(p);
    }
  };
  for (const d of dirs) walk(d);
  return out.sort();
}

/** Build dist/node (or `out`) from scratch; returns the number of files compiled. */
export async function buildNode(base = root, out = join(base, OUT_DIR)): Promise<number> {
  const started = new Date();
  rmSync(out, { recursive: true, force: true });
  const roots = sourceRoots(base);
  const files = sourceFiles(base, roots);
  await build({
    absWorkingDir: base,
    entryPoints: files,
    outdir: out,
    outbase: base,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    tsconfig: join(base, 'tsconfig.build.json'),
    logLevel: 'warning',
  });
  await buildBins(base, out, files);
  const stamp = join(out, STAMP);
  writeFileSync(stamp, JSON.stringify({ builtAt: started.toISOString(), roots, files: files.length }) + '\n');
  // The stamp's mtime is the build's start: a source saved while the build ran counts as newer.
  utimesSync(stamp, started, started);
  return files.length;
}

/**
 * The bins' bundles: `<out>/bin/<bin>.cjs` for each of BIN_ENTRIES, and for each worker entry among `files` a module
 * `<out>/bin/<name>.worker.js` that imports its one-to-one build (what the bundled code starts as its worker).
 */
export async function buildBins(base: string, out: string, files: readonly string[]): Promise<void> {
  const bin = join(out, 'bin');
  await build({
    absWorkingDir: base,
    entryPoints: Object.fromEntries(Object.entries(BIN_ENTRIES)),
    outdir: bin,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: BUNDLE_EXTERNAL,
    // `import()` of an external package becomes `require()` (they are CommonJS): a script compiled with vm (the
    // code cache, bin/runtime.mjs) can import() only through an experimental Node option that prints a warning.
    supported: { 'dynamic-import': false },
    // No comments or indentation, ASCII only: the bundle is read as one string at every start, and a single
    // non-ASCII character (a comment's "§") makes that a slow two-byte decode (~150 ms for 2.6 MB, measured).
    // Names stay (stack traces); the source map maps back to the sources.
    minifyWhitespace: true,
    charset: 'ascii',
    sourcemap: 'linked',
    tsconfig: join(base, 'tsconfig.build.json'),
    // CommonJS has no import.meta: the bundle's own URL (native/package-root.ts, worker entries resolve from it).
    define: { 'import.meta.url': '__bundle_url' },
    banner: { js: "var __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
  const workers = files.filter((f) => f.endsWith('.worker.ts'));
  const names = workers.map((f) => basename(f).replace(/\.ts$/, '.js'));
  if (new Set(names).size !== names.length) throw new Error(`two worker entries share a name: ${workers.join(', ')}`);
  workers.forEach((f, i) => {
    const target = relative(bin, join(out, f.replace(/\.ts$/, '.js')))
      .split(sep)
      .join('/');
    writeFileSync(
      join(bin, names[i]!),
      `// The worker the bundles start: its one-to-one build (scripts/build.ts).\nimport '${target}';\n`,
    );
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t = performance.now();
  buildNode().then(
    (n) =>
      process.stdout.write(
        `built ${n} files into ${relative(process.cwd(), join(root, OUT_DIR)) || '.'} in ${Math.round(performance.now() - t)} ms\n`,
      ),
    (e: unknown) => {
      process.stderr.write(`build failed: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
