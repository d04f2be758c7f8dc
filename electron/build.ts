/**
 * Bundles the Electron side into dist/electron/ with esbuild (`npm run electron:build`):
 * - main.mjs         Electron main (ESM); node_modules stay external (packaged as they are)
 * - engine-host.mjs  the engine host (ESM); native packages load from node_modules (asarUnpack)
 * - preload.cjs      the sandboxed preload: ONE CommonJS file that requires nothing but `electron`,
 *                    with the operation names of core/api.ts injected (no zod in the preload)
 * and, beside them, each bundle's esbuild metafile (`main.meta.json`, `engineHost.meta.json`, `preload.meta.json`:
 * every input file and external import; not packaged). test/architecture/desktop-bundle.test.ts reads them to prove
 * that no registry/ code and no `pg` is in the desktop app. Imports: esbuild, core/api.ts.
 */
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OPERATION_NAMES } from '../core/api.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The three bundles, relative to `outDir`. Exported for the bundle test. */
export function bundleOptions(outDir = join(root, 'dist', 'electron')): Record<string, BuildOptions> {
  const common: BuildOptions = {
    bundle: true,
    sourcemap: 'linked',
    logLevel: 'warning',
    absWorkingDir: root,
    legalComments: 'none',
  };
  return {
    main: {
      ...common,
      entryPoints: [join(root, 'electron/main/index.ts')],
      outfile: join(outDir, 'main.mjs'),
      platform: 'node',
      format: 'esm',
      target: 'node22',
      packages: 'external',
      external: ['electron'],
    },
    engineHost: {
      ...common,
      entryPoints: [join(root, 'electron/engine-host/main.ts')],
      outfile: join(outDir, 'engine-host.mjs'),
      platform: 'node',
      format: 'esm',
      target: 'node22',
      packages: 'external',
    },
    preload: {
      ...common,
      entryPoints: [join(root, 'electron/preload/index.ts')],
      outfile: join(outDir, 'preload.cjs'),
      platform: 'browser',
      format: 'cjs',
      target: 'chrome130',
      external: ['electron'],
      // The StationApi operation names, from core/api.ts, without bundling zod into the preload.
      define: { __STATION_OPERATIONS__: JSON.stringify(OPERATION_NAMES) },
    },
  };
}

/** The name of a bundle's metafile in the output folder. */
export function metafileName(bundle: string): string {
  return `${bundle}.meta.json`;
}

/** Build all three bundles and write their metafiles beside them; returns the metafiles by bundle name. */
export async function buildElectron(outDir = join(root, 'dist', 'electron')): Promise<Record<string, Metafile>> {
  const entries = Object.entries(bundleOptions(outDir));
  const metas = await Promise.all(
    entries.map(async ([name, o]) => {
      const { metafile } = await build({ ...o, metafile: true });
      await writeFile(join(outDir, metafileName(name)), JSON.stringify(metafile));
      return [name, metafile] as const;
    }),
  );
  return Object.fromEntries(metas);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildElectron().then(
    () => process.stdout.write('electron bundles written to dist/electron/\n'),
    (e: unknown) => {
      process.stderr.write(`electron build failed: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
