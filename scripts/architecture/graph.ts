/**
 * The import graph of the repository, for the architecture test (test/architecture/) and scripts/arch-graph.ts.
 * Every .ts/.tsx/.mts/.mjs file of the code folders is scanned with TypeScript's own import scanner
 * (`ts.preProcessFile`: static, type-only, re-export, dynamic `import()`, `require()`; comments and strings are not
 * imports) and each relative import is resolved to a file (NodeNext: `./x.js` is `./x.ts` or `./x.tsx`).
 * Pure functions over a `Graph` value, so tests can check the checks on synthetic graphs. Imports: node, typescript.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import ts from 'typescript';
import { CODE_FOLDERS, isTestFile } from './layers.mjs';

/** A file graph: repository-relative, `/`-separated file path -> the files it imports. */
export type Graph = ReadonlyMap<string, readonly string[]>;

const SOURCE = /\.(ts|tsx|mts|mjs)$/;
const SKIP = new Set(['node_modules', 'dist', 'test-results']);

/** Every source file under the code folders of `root`, repository-relative. */
export function sourceFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      if (SKIP.has(e.name)) continue;
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (SOURCE.test(e.name) && !e.name.endsWith('.d.ts') && !e.name.endsWith('.d.mts')) out.push(p);
    }
  };
  for (const f of CODE_FOLDERS) if (existsSync(join(root, f))) walk(f);
  return out.sort();
}

/** The import specifiers of one source text, as TypeScript's scanner sees them. */
export function importSpecifiers(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

/** Resolve a relative specifier of `from` to a file of `files`, or undefined (a package, data, a missing file). */
export function resolveImport(from: string, spec: string, files: ReadonlySet<string>): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const t = posix.normalize(posix.join(dirname(from).split('\\').join('/'), spec));
  const candidates = [
    t,
    t.replace(/\.js$/, '.ts'),
    t.replace(/\.js$/, '.tsx'),
    t.replace(/\.mjs$/, '.mts'),
    `${t}.ts`,
    `${t}/index.ts`,
  ];
  return candidates.find((c) => files.has(c));
}

/** The file graph of the repository at `root`. */
export function readGraph(root: string): Graph {
  const files = sourceFiles(root);
  const set = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const specs = importSpecifiers(readFileSync(join(root, f), 'utf8'));
    const targets = specs.map((s) => resolveImport(f, s, set)).filter((t): t is string => t !== undefined);
    graph.set(
      f,
      [...new Set(targets)].filter((t) => t !== f),
    );
  }
  return graph;
}

/** The top-level folder of a file (`station/sync/x.ts` -> `station`). */
export function topFolder(file: string): string {
  return file.split('/')[0]!;
}

/**
 * The folder of a file at the granularity of top-level folders and their direct subfolders; a folder's own files
 * count as the folder (`station/x.ts` -> `station`, `station/hq/a/b.ts` -> `station/hq`).
 */
export function subFolder(file: string): string {
  const p = file.split('/');
  return p.length > 2 ? `${p[0]}/${p[1]}` : p[0]!;
}

/** Folder edges `from -> to` with the number of file imports behind each, from the files `include` keeps. */
export function folderEdges(
  graph: Graph,
  folderOf: (file: string) => string,
  include: (file: string) => boolean = (f) => !isTestFile(f),
): Map<string, Map<string, number>> {
  const edges = new Map<string, Map<string, number>>();
  for (const [f, targets] of graph) {
    if (!include(f)) continue;
    for (const t of targets) {
      const a = folderOf(f);
      const b = folderOf(t);
      if (a === b) continue;
      const out = edges.get(a) ?? new Map<string, number>();
      out.set(b, (out.get(b) ?? 0) + 1);
      edges.set(a, out);
    }
  }
  return edges;
}

/** The strongly connected components with more than one node (Tarjan): every cycle, as the nodes on it. */
export function cycles(nodes: Iterable<string>, next: (node: string) => Iterable<string>): string[][] {
  let index = 0;
  const ix = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    ix.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!ix.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, ix.get(w)!));
    }
    if (low.get(v) === ix.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) found.push(c.sort());
    }
  };
  for (const v of nodes) if (!ix.has(v)) visit(v);
  return found;
}

/** Cycles between files (every import counts, type-only and tests too). */
export function fileCycles(graph: Graph): string[][] {
  return cycles(graph.keys(), (f) => graph.get(f) ?? []);
}

/** Cycles between folders (at `folderOf` granularity) made by non-test files. */
export function folderCycles(graph: Graph, folderOf: (file: string) => string): string[][] {
  const edges = folderEdges(graph, folderOf);
  return cycles(edges.keys(), (f) => edges.get(f)?.keys() ?? []);
}

/** True for files that are not production code: tests, test support, tooling. */
export function isNonProduction(file: string): boolean {
  return isTestFile(file) || /^(test|testkit|scripts)\//.test(file);
}

/**
 * Production files that something imports, but only tests, test support or scripts: code kept alive by its tests.
 * `entryPoints` (files run directly, e.g. by an npm script) are not counted: running them is their use.
 */
export function usedOnlyByTests(graph: Graph, entryPoints: ReadonlySet<string> = new Set()): string[] {
  const importers = new Map<string, string[]>();
  for (const [f, targets] of graph) for (const t of targets) importers.set(t, [...(importers.get(t) ?? []), f]);
  return [...graph.keys()].filter((f) => {
    if (isNonProduction(f) || entryPoints.has(f)) return false;
    const by = importers.get(f) ?? [];
    return by.length > 0 && by.every(isNonProduction);
  });
}

/** The files an npm script or a `bin` entry of package.json runs directly (`tsx x.ts`, `node x.mjs`). */
export function packageEntryPoints(packageJson: {
  scripts?: Record<string, string>;
  bin?: Record<string, string>;
}): Set<string> {
  const out = new Set(Object.values(packageJson.bin ?? {}).map((b) => posix.normalize(b)));
  for (const cmd of Object.values(packageJson.scripts ?? {}))
    for (const m of cmd.matchAll(/\b(?:tsx|node)\s+([\w./-]+\.(?:ts|mts|mjs))/g)) out.add(posix.normalize(m[1]!));
  return out;
}

/** Imports of `to` folders from files of `from` folders (test files included): the forbidden crossings. */
export function crossings(graph: Graph, from: readonly string[], to: readonly string[]): string[] {
  const out: string[] = [];
  for (const [f, targets] of graph)
    for (const t of targets) if (from.includes(topFolder(f)) && to.includes(topFolder(t))) out.push(`${f} -> ${t}`);
  return out;
}
