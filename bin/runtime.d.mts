// Types of bin/runtime.mjs (plain JavaScript: the bins run before any TypeScript tooling).

/** Why dist/node cannot run (a sentence), or null when it is current. `root`: the package root (tests pass a copy). */
export function staleReason(root?: string): string | null;

/** Load an entry module: `dist()` (compiled, dist/node) or, through tsx, `src()` (its TypeScript source). */
export function loadEntry<T>(dist: () => Promise<T>, src: () => Promise<T>): Promise<T>;
