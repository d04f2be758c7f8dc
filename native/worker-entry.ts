/**
 * How the module that starts a worker thread names its entry file: a `<name>.worker.ts` beside that module in the
 * sources is `<name>.worker.js` beside its compiled file in dist/node (scripts/build.ts compiles every `*.worker.ts`
 * like any other file). From the sources the worker starts with native/worker-tsx.mjs, which registers tsx in the
 * worker thread and imports the entry: neither the bins' tsx `register()` (bin/runtime.mjs) nor `--import tsx` in
 * a worker's execArgv (Node 20) reaches a worker's entry. docs/architecture.md "Compiled JavaScript and start-up".
 * Imports node:url only.
 */

/** What `new Worker(entry.url, { argv: entry.argv, execArgv: entry.execArgv, ... })` needs. */
export interface WorkerEntry {
  /** The file the worker thread starts with. */
  readonly url: URL;
  /** The worker's process.argv additions (from the sources: the entry for native/worker-tsx.mjs). */
  readonly argv: string[];
  /** The parent's Node options, as a worker gets them by default. */
  readonly execArgv: string[];
}

/**
 * The entry `<name>.worker.{js,ts}` beside the module whose `import.meta.url` is `from`: the compiled file when that
 * module is compiled (`.js`), else the source, started through native/worker-tsx.mjs.
 */
export function workerEntry(from: string, name: string): WorkerEntry {
  const execArgv = [...process.execArgv];
  if (/\.[cm]?js$/.test(new URL(from).pathname))
    return { url: new URL(`./${name}.worker.js`, from), argv: [], execArgv };
  const source = new URL(`./${name}.worker.ts`, from);
  return { url: new URL('./worker-tsx.mjs', import.meta.url), argv: [source.href], execArgv };
}
