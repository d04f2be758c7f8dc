// Types of bin/runtime.mjs (plain JavaScript: the bins run before any TypeScript tooling).

/** Why dist/node cannot run (a sentence), or null when it is current. `root`: the package root (tests pass a copy). */
export function staleReason(root?: string): string | null;

/** A CommonJS bundle run with V8's code cache (`cacheFile`, default beside it); `saveCache()` stores it when it was not accepted. */
export function loadBundle(
  file: string,
  cacheFile?: string,
): { exports: unknown; cache: 'accepted' | 'rejected' | 'none'; saveCache(): boolean };

/** What a bin runs: the program's `main`, and `ran()` to call once it returned (stores the code cache). */
export interface Entry {
  main(argv: readonly string[]): Promise<number>;
  ran(): void;
}

/**
 * Load bin `name`'s program: its bundle (dist/node/bin/<name>.cjs), `modules()` (LINE_STATION_RUNTIME=modules: the
 * one-to-one compiled module) or, through tsx, `src()` (its TypeScript source).
 */
export function loadEntry(
  name: string,
  src: () => Promise<{ main: Entry['main'] }>,
  modules: () => Promise<{ main: Entry['main'] }>,
): Promise<Entry>;
