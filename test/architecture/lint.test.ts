/**
 * Lint's `local/layers` rule (eslint.config.js, table in scripts/architecture/layers.mjs) fires on every kind of
 * import that crosses a layer, in production files and in colocated tests, and stays quiet on allowed ones. Runs
 * ESLint with the project's config on small fixture strings (the files need not exist).
 */
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: resolve(import.meta.dirname, '../..') });

/** The `local/layers` messages for `code` linted as if it were `filePath`. */
async function layers(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return (r?.messages ?? []).filter((m) => m.ruleId === 'local/layers').map((m) => m.message);
}

const FORMS = [
  (s: string) => `import { x } from '${s}';\nexport const y = x;\n`,
  (s: string) => `import type { X } from '${s}';\nexport type Y = X;\n`,
  (s: string) => `export { x } from '${s}';\n`,
  (s: string) => `export * from '${s}';\n`,
  (s: string) => `export const m = () => import('${s}');\n`,
  (s: string) => `export type T = typeof import('${s}');\n`,
  (s: string) => `import '${s}';\n`,
];

describe('lint: local/layers', () => {
  it.each([
    ['station/sync.ts', '../registry/service.js', 'station/ may not import registry/'],
    ['station/hq/client.ts', '../../registry/ingest/routes.js', 'station/ may not import registry/'],
    ['station/x.test.ts', '../registry/service.js', 'station/ may not import registry/'],
    ['registry/ingest/x.ts', '../../station/sync.js', 'registry/ may not import station/'],
    ['registry/x.test.ts', '../station/sync.js', 'registry/ may not import station/'],
    ['native/hsm/x.test.ts', '../../station/init.js', 'native/ may not import station/'],
    ['core/pki/x.ts', '../../native/logger.js', 'core/ may not import native/'],
    ['core/x.ts', './../station/engine.js', 'core/ may not import station/'],
    ['electron/engine-host/x.ts', '../../registry/server.js', 'electron/ may not import registry/'],
    ['renderer/src/x.tsx', '../../electron/main/ipc.js', 'renderer/ may not import electron/'],
    ['renderer/src/x.tsx', '../../station/engine.js', 'renderer/ may not import station/'],
    ['station/x.ts', '../testkit/registry/fixtures.js', 'station/ may not import testkit/'],
    ['native/store/x.ts', '../../test/harness.js', 'native/ may not import test/'],
    ['testkit/x.ts', '../test/harness.js', 'testkit/ may not import test/'],
    ['scripts/demo.ts', '../testkit/hsm.js', 'scripts/ may not import testkit/'],
  ])('%s importing %s: "%s"', async (file, spec, message) => {
    for (const form of FORMS) {
      const found = await layers(file, form(spec));
      expect(found, form(spec)).toHaveLength(1);
      expect(found[0]).toContain(message);
    }
  });

  it('catches require() too', async () => {
    const code =
      "// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const r = require('../registry/x.js');\n";
    expect(await layers('station/x.ts', code)).toHaveLength(1);
  });

  it.each([
    ['native/store/x.ts', '../../core/provisioning/store.js'],
    ['station/x.ts', '../native/store/sqlite-store.js'],
    ['station/x.test.ts', '../testkit/store-fixtures.js'],
    ['registry/ingest/x.ts', '../../core/hq/routes.js'],
    ['electron/engine-host/x.ts', '../../station/engine.js'],
    ['renderer/src/x.tsx', '../../core/api.js'],
    ['renderer/src/x.tsx', '../../electron/shared/channels.js'],
    ['test/integration/x.test.ts', '../../registry/service.js'],
    ['testkit/registry/x.ts', '../../registry/service.js'],
    ['scripts/bench.ts', '../testkit/bench/hsm.js'],
    ['station/x.ts', '../resources/boards/x.json'],
    ['core/x.ts', 'zod'],
  ])('%s may import %s', async (file, spec) => {
    for (const form of FORMS) expect(await layers(file, form(spec)), form(spec)).toEqual([]);
  });
});
