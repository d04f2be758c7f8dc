/**
 * The desktop app carries no headquarters code: electron/build.ts bundles main, preload and the engine host with
 * esbuild and writes each bundle's metafile; no input of any bundle is under registry/, and no bundle imports or
 * contains the PostgreSQL driver (`pg`, `pg-*`). (electron-builder.yml keeps `pg` out of the packaged
 * node_modules: test/electron/builder.test.ts.) Builds into test-results/, plain Node.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildElectron, metafileName } from '../../electron/build.js';

const root = resolve(import.meta.dirname, '../..');
const out = join(root, 'test-results', `desktop-bundle-${process.pid}`);
let metas: Record<string, Metafile>;

/** True for the PostgreSQL driver and its packages, as an import path or a node_modules input path. */
const isPg = (p: string): boolean => /(^|node_modules\/)(pg|pg-[\w.-]+|pgpass)(\/|$)/.test(p);

/** Every external import of a bundle's outputs (packages left to node_modules). */
function externals(meta: Metafile): string[] {
  return Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
}

beforeAll(async () => {
  mkdirSync(out, { recursive: true });
  metas = await buildElectron(out);
}, 120_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('the desktop bundles', () => {
  it('are main, preload and the engine host, each with its metafile written beside it', () => {
    expect(Object.keys(metas).sort()).toEqual(['engineHost', 'main', 'preload']);
    for (const [name, meta] of Object.entries(metas))
      expect(JSON.parse(readFileSync(join(out, metafileName(name)), 'utf8'))).toEqual(meta);
    // the engine host really is the station: the check below looks at a bundle that has our code in it
    const engineInputs = Object.keys(metas.engineHost!.inputs);
    expect(engineInputs.some((p) => p.startsWith('station/'))).toBe(true);
    expect(engineInputs.some((p) => p.startsWith('native/'))).toBe(true);
  });

  it.each(['main', 'preload', 'engineHost'])('%s has no input under registry/ and no test support', (name) => {
    expect(Object.keys(metas[name]!.inputs).filter((p) => /^(registry|testkit|test)\//.test(p))).toEqual([]);
  });

  it.each(['main', 'preload', 'engineHost'])('%s neither contains nor imports pg', (name) => {
    expect(Object.keys(metas[name]!.inputs).filter(isPg)).toEqual([]);
    expect(externals(metas[name]!).filter(isPg)).toEqual([]);
  });

  it('the pg check recognises the driver (so it can fail)', () => {
    for (const p of ['pg', 'pg-pool', 'pg/lib/client.js', 'node_modules/pg-types/index.js', 'pgpass'])
      expect(isPg(p), p).toBe(true);
    for (const p of ['pkcs11js', 'zod', 'node_modules/pgp/index.js', 'native/registry-store/sqlite.ts'])
      expect(isPg(p), p).toBe(false);
  });
});
