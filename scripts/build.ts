/**
 * `npm run build` (run by `npm ci` through `prepare`, and by scripts/test.sh): the compiled JavaScript that
 * bin/station.mjs and bin/registry.mjs run, so no TypeScript is compiled at start.
 *
 * Every TypeScript file of the folders tsconfig.build.json includes (core, native, station, registry), except tests
 * and declarations, is transpiled one file to one file with esbuild into dist/node/<same path>.js, with a linked
 * source map. No bundling: the module graph, the lazy `import()`s and every file stay where they were, so each
 * worker entry (`*.worker.ts` -> `*.worker.js`, beside the module that starts it) is built by the same rule as any
 * other file, and paths to data (resources/, renderer/dist) come from native/package-root.ts, not from a module's
 * own location. Type checking is `npm run typecheck`'s job (esbuild only strips types).
 *
 * Last, dist/node/build-stamp.json records the build's start time (also as the file's mtime) and the source folders:
 * bin/runtime.mjs runs dist/node only while no source file is newer than the stamp, else the sources through tsx.
 * Imports: esbuild.
 */
import { build } from 'esbuild';
import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the compiled files go, relative to the package root (bin/runtime.mjs reads it from here too). */
export const OUT_DIR = join('dist', 'node');
/** The stamp file in OUT_DIR (bin/runtime.mjs). */
export const STAMP = 'build-stamp.json';

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
  const stamp = join(out, STAMP);
  writeFileSync(stamp, JSON.stringify({ builtAt: started.toISOString(), roots, files: files.length }) + '\n');
  // The stamp's mtime is the build's start: a source saved while the build ran counts as newer.
  utimesSync(stamp, started, started);
  return files.length;
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
