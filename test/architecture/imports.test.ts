/**
 * The architecture, checked on the whole import graph in plain Node (docs/architecture.md "Layers"): no cycle
 * between files, none between folders (top-level folders, and their direct subfolders with a folder's own files
 * counted as the folder), no production file kept alive only by tests or scripts, station/ and registry/ never
 * import each other (electron/ and renderer/ never import registry/; test files included), and every import
 * follows the layer table lint uses. Each check is also run on a synthetic graph with the fault it must catch.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  crossings,
  fileCycles,
  folderCycles,
  importSpecifiers,
  packageEntryPoints,
  readGraph,
  subFolder,
  topFolder,
  usedOnlyByTests,
  type Graph,
} from '../../scripts/architecture/graph.js';
import { layerViolation } from '../../scripts/architecture/layers.mjs';

const root = resolve(import.meta.dirname, '../..');
const graph = readGraph(root);
const entryPoints = packageEntryPoints(JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')));

/** The HQ crossings that must not exist: station↔registry both ways, and the desktop into registry/. */
function forbiddenCrossings(g: Graph): string[] {
  return [
    ...crossings(g, ['station', 'electron', 'renderer'], ['registry']),
    ...crossings(g, ['registry'], ['station']),
  ];
}

/** Every import that breaks the layer table of scripts/architecture/layers.mjs. */
function layerViolations(g: Graph): string[] {
  const out: string[] = [];
  for (const [f, targets] of g) for (const t of targets) if (layerViolation(f, t)) out.push(`${f} -> ${t}`);
  return out;
}

/** A graph from `a -> b` lines. */
function synthetic(...edges: string[]): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const e of edges) {
    const [a, b] = e.split(' -> ') as [string, string];
    g.set(a, [...(g.get(a) ?? []), b]);
    if (!g.has(b)) g.set(b, []);
  }
  return g;
}

/** The real graph plus one more import. */
function withImport(from: string, to: string): Map<string, string[]> {
  const g = new Map([...graph].map(([f, t]) => [f, [...t]]));
  g.set(from, [...(g.get(from) ?? []), to]);
  if (!g.has(to)) g.set(to, []);
  return g;
}

describe('the import graph of the repository', () => {
  it('is read from every code folder, with type-only, dynamic and re-export imports', () => {
    for (const f of ['core', 'native', 'station', 'registry', 'electron', 'renderer', 'testkit', 'test', 'scripts'])
      expect(
        [...graph.keys()].some((k) => topFolder(k) === f),
        f,
      ).toBe(true);
    expect(
      importSpecifiers("import type { A } from './a.js';\nexport * from './b.js';\nawait import('./c.js');\n"),
    ).toEqual(['./a.js', './b.js', './c.js']);
    // a comment or a string is not an import
    expect(importSpecifiers("/** import { x } from './no.js' */\nconst s = \"import './no.js'\";\n")).toEqual([]);
  });

  it('has no cycle between files', () => {
    expect(fileCycles(graph)).toEqual([]);
  });

  it('has no cycle between top-level folders', () => {
    expect(folderCycles(graph, topFolder)).toEqual([]);
  });

  it('has no cycle between subfolders (a folder’s own files count as the folder)', () => {
    expect(folderCycles(graph, subFolder)).toEqual([]);
  });

  it('has no production file that only tests or scripts import', () => {
    expect(usedOnlyByTests(graph, entryPoints)).toEqual([]);
  });

  it('has no import of registry/ from station/, electron/ or renderer/, nor of station/ from registry/', () => {
    expect(forbiddenCrossings(graph)).toEqual([]);
  });

  it('follows the layer table (the one lint uses) in every file, tests included', () => {
    expect(layerViolations(graph)).toEqual([]);
  });
});

describe('the checks catch what they must (synthetic graphs)', () => {
  it('a file cycle, also through three files', () => {
    expect(fileCycles(synthetic('core/a.ts -> core/b.ts', 'core/b.ts -> core/a.ts'))).toEqual([
      ['core/a.ts', 'core/b.ts'],
    ]);
    expect(
      fileCycles(synthetic('core/a.ts -> core/b.ts', 'core/b.ts -> core/c.ts', 'core/c.ts -> core/a.ts')),
    ).toHaveLength(1);
    expect(fileCycles(synthetic('core/a.ts -> core/b.ts', 'core/b.ts -> core/c.ts'))).toEqual([]);
  });

  it('a folder cycle between top-level folders and between a folder and its subfolder', () => {
    const top = synthetic('native/a.ts -> core/x.ts', 'core/x.ts -> native/b.ts');
    expect(folderCycles(top, topFolder)).toEqual([['core', 'native']]);
    const sub = synthetic('station/a.ts -> station/hq/b.ts', 'station/hq/c.ts -> station/d.ts');
    expect(fileCycles(sub)).toEqual([]); // no file cycle, but station and station/hq import each other
    expect(folderCycles(sub, subFolder)).toEqual([['station', 'station/hq']]);
    expect(folderCycles(sub, topFolder)).toEqual([]);
    // tests do not make folder cycles (they are leaves)
    expect(folderCycles(synthetic('core/a.test.ts -> native/b.ts', 'native/b.ts -> core/c.ts'), topFolder)).toEqual([]);
  });

  it('a production file that only tests, test support or scripts import; entry points are used', () => {
    const g = synthetic(
      'station/x.test.ts -> station/only-tested.ts',
      'testkit/a.ts -> core/only-for-testkit.ts',
      'scripts/s.ts -> native/only-for-scripts.ts',
      'station/x.test.ts -> station/used.ts',
      'station/cli.ts -> station/used.ts',
      'test/electron/b.test.ts -> electron/build.ts',
    );
    expect(usedOnlyByTests(g).sort()).toEqual([
      'core/only-for-testkit.ts',
      'electron/build.ts',
      'native/only-for-scripts.ts',
      'station/only-tested.ts',
    ]);
    expect(usedOnlyByTests(g, new Set(['electron/build.ts']))).not.toContain('electron/build.ts');
    expect(
      packageEntryPoints({ scripts: { b: 'tsx electron/build.ts', c: 'bash x.sh' }, bin: { s: 'bin/s.mjs' } }),
    ).toEqual(new Set(['bin/s.mjs', 'electron/build.ts']));
  });

  it('an import of registry/ into station/, electron/ or renderer/, or of station/ into registry/, tests too', () => {
    const reg = [...graph.keys()].find((f) => f.startsWith('registry/') && !f.includes('.test.'))!;
    const sta = [...graph.keys()].find((f) => f.startsWith('station/') && !f.includes('.test.'))!;
    const before = forbiddenCrossings(graph).length;
    for (const from of ['station/sync.ts', 'station/x.test.ts', 'electron/main/index.ts', 'renderer/src/App.tsx']) {
      const found = forbiddenCrossings(withImport(from, reg));
      expect(found, from).toContain(`${from} -> ${reg}`);
      expect(found, from).toHaveLength(before + 1);
    }
    expect(forbiddenCrossings(withImport('registry/x.test.ts', sta))).toContain(`registry/x.test.ts -> ${sta}`);
    // test/integration is where a test that needs both lives
    expect(forbiddenCrossings(withImport('test/integration/x.test.ts', reg))).toHaveLength(before);
  });

  it('an import against the layer table', () => {
    const bad = [
      'core/a.ts -> native/b.ts',
      'native/a.test.ts -> station/b.ts',
      'station/a.ts -> testkit/b.ts',
      'registry/a.ts -> test/b.ts',
      'renderer/src/a.tsx -> electron/main/b.ts',
      'electron/main/a.ts -> registry/b.ts',
      'testkit/a.ts -> test/b.ts',
      'scripts/demo.ts -> testkit/b.ts',
      'bin/x.mjs -> testkit/b.ts',
    ];
    for (const e of bad) expect(layerViolations(synthetic(e)), e).toEqual([e]);
    const good = [
      'native/a.ts -> core/b.ts',
      'station/a.test.ts -> testkit/b.ts',
      'renderer/src/a.tsx -> electron/shared/b.ts',
      'renderer/src/a.tsx -> core/api.ts',
      'electron/engine-host/a.ts -> station/b.ts',
      'scripts/bench.ts -> testkit/b.ts',
      'test/integration/a.test.ts -> registry/b.ts',
      'station/a.ts -> resources/boards/x.json',
    ];
    for (const e of good) expect(layerViolations(synthetic(e)), e).toEqual([]);
  });
});
