/**
 * native/worker-entry.ts: a `*.worker.ts` entry starts from the sources (through tsx) and, compiled by
 * scripts/build.ts's rule to `*.worker.js`, from the compiled module's folder.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { transformSync } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { workerEntry } from './worker-entry.js';

const ROOT = join(import.meta.dirname, '..');
const SOURCE = join(ROOT, 'testkit', 'workers', 'echo.worker.ts');
mkdirSync(join(ROOT, 'dist'), { recursive: true });
const tmp = mkdtempSync(join(ROOT, 'dist', '.test-worker-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function roundTrip(from: string): Promise<{ file: string; answer: unknown }> {
  const entry = workerEntry(from, 'echo');
  const w = new Worker(entry.url, { argv: entry.argv, execArgv: entry.execArgv });
  try {
    const answer = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.postMessage('ping');
    });
    // the file the worker runs: the entry itself, or the entry native/worker-tsx.mjs imports
    return { file: new URL(entry.argv[0] ?? entry.url.href).pathname, answer };
  } finally {
    await w.terminate();
  }
}

describe('workerEntry', () => {
  it('from a source module: the .worker.ts beside it, through native/worker-tsx.mjs (tsx in the worker)', async () => {
    const r = await roundTrip(pathToFileURL(join(ROOT, 'testkit', 'workers', 'starter.ts')).href);
    expect(r.file).toBe(SOURCE);
    expect(r.answer).toEqual({ echo: 'ping', typed: 'typescript syntax: compiled or run through tsx' });
  });

  it('from a compiled module: the .worker.js beside it (what the build makes of the .worker.ts)', async () => {
    const js = transformSync(readFileSync(SOURCE, 'utf8'), { loader: 'ts', format: 'esm' }).code;
    writeFileSync(join(tmp, 'echo.worker.js'), js);
    const r = await roundTrip(pathToFileURL(join(tmp, 'starter.js')).href);
    expect(r.file).toBe(join(tmp, 'echo.worker.js'));
    expect(r.answer).toEqual({ echo: 'ping', typed: 'typescript syntax: compiled or run through tsx' });
  });
});
