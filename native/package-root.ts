/**
 * The package's root folder (the one holding package.json, resources/ and renderer/dist), found from this module's
 * own location by walking up to the first folder with a package.json. The same answer whether this module runs from
 * the sources (native/), the compiled output (dist/node/native/, scripts/build.ts) or a desktop bundle
 * (dist/electron/, inside app.asar when packaged): data files are found from here, never relative to the location
 * of the module that needs them (which differs between those three). Imports node:fs, node:path, node:url only.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return join(from, '..'); // no package.json above: the source layout (native/..)
  }
}

/** The package root (absolute). */
export const PACKAGE_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the package, e.g. `packagePath('resources', 'boards')`. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
