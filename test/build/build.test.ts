/**
 * The compiled JavaScript the `station` and `registry` commands run (issue 12): scripts/build.ts compiles every
 * source file, tests and declarations excepted, one to one (worker entries `*.worker.ts` by the same rule), and
 * bundles each bin's program into one CommonJS file; the compiled program runs and finds its data files
 * (native/package-root.ts); the bundle runs with V8's code cache (written once, accepted after, rewritten when
 * rejected); bin/runtime.mjs runs the build only while no source is newer, else the sources through tsx, and
 * LINE_STATION_RUNTIME=dist refuses a stale build.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staleReason } from '../../bin/runtime.mjs';
import {
  BIN_ENTRIES,
  buildNode,
  isBuildSource,
  OUT_DIR,
  sourceFiles,
  sourceRoots,
  STAMP,
} from '../../scripts/build.js';

const ROOT = join(import.meta.dirname, '..', '..');
// Inside the repository (under the ignored dist/), so that node_modules and package.json resolve as for dist/node.
mkdirSync(join(ROOT, 'dist'), { recursive: true });
const tmp = mkdtempSync(join(ROOT, 'dist', '.test-build-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scripts/build.ts', () => {
  const out = join(tmp, 'node');
  let files: string[];
  beforeAll(async () => {
    files = sourceFiles(ROOT, sourceRoots());
    expect(await buildNode(ROOT, out)).toBe(files.length);
  }, 120_000);

  it('compiles every source file of the folders tsconfig.build.json includes, one to one, tests excepted', () => {
    expect(sourceRoots()).toEqual(['core', 'native', 'station', 'registry']);
    expect(files).toContain(join('station', 'cli', 'program.ts'));
    expect(files.some((f) => f.endsWith('.test.ts'))).toBe(false);
    for (const f of files) expect(existsSync(join(out, f.replace(/\.ts$/, '.js'))), f).toBe(true);
    expect(existsSync(join(out, STAMP))).toBe(true);
    expect(OUT_DIR).toBe(join('dist', 'node'));
  });

  it('takes worker entries by the same rule; not tests or declarations', () => {
    expect(isBuildSource('verify.worker.ts')).toBe(true);
    expect(isBuildSource('verify.worker.test.ts')).toBe(false);
    expect(isBuildSource('types.d.ts')).toBe(false);
    expect(isBuildSource('exit.mjs')).toBe(false);
  });

  it('the compiled station CLI runs and finds the data files from the package root', () => {
    const url = (f: string) => pathToFileURL(join(out, f)).href;
    const script = [
      `const { main } = await import(${JSON.stringify(url('station/cli/program.js'))});`,
      `const { PACKAGE_ROOT } = await import(${JSON.stringify(url('native/package-root.js'))});`,
      `const { DEFAULT_PROFILE_DIR } = await import(${JSON.stringify(url('native/profiles-fs.js'))});`,
      `console.log(JSON.stringify({ root: PACKAGE_ROOT, profiles: DEFAULT_PROFILE_DIR }));`,
      `process.exitCode = await main(['--help']);`,
    ].join('\n');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const paths = JSON.parse(r.stdout.split('\n')[0]!) as { root: string; profiles: string };
    expect(paths).toEqual({ root: ROOT, profiles: join(ROOT, 'resources', 'boards') });
    expect(r.stdout).toContain('usage: station <command>');
    expect(r.stderr).toBe('');
  });
});

describe("the bins' bundles (dist/node/bin/<bin>.cjs) and their code cache", () => {
  const out = join(tmp, 'bundles');
  beforeAll(async () => {
    await buildNode(ROOT, out);
  }, 120_000);

  /** Load a bundle in a fresh process with its code cache, run `argv`; what loadBundle said and the exit code. */
  const run = (bin: string, cacheFile: string, argv: string[]) => {
    const script = [
      `import { loadBundle } from ${JSON.stringify(pathToFileURL(join(ROOT, 'bin', 'runtime.mjs')).href)};`,
      `const b = loadBundle(${JSON.stringify(join(out, 'bin', `${bin}.cjs`))}, ${JSON.stringify(cacheFile)});`,
      `const code = await b.exports.main(${JSON.stringify(argv)});`,
      `process.stderr.write(JSON.stringify({ cache: b.cache, saved: b.saveCache(), code }));`,
    ].join('\n');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return { ...(JSON.parse(r.stderr) as { cache: string; saved: boolean; code: number }), stdout: r.stdout };
  };

  it('bundles each bin into one ASCII CommonJS file: no import.meta, no import() (a vm script cannot run them)', () => {
    expect(Object.keys(BIN_ENTRIES)).toEqual(['station', 'registry']);
    for (const bin of Object.keys(BIN_ENTRIES)) {
      const text = readFileSync(join(out, 'bin', `${bin}.cjs`), 'latin1');
      expect(/[\u0080-\uffff]/.test(text), bin).toBe(false);
      expect(text, bin).not.toContain('import.meta');
      expect(text, bin).not.toMatch(/\bimport\(\s*["'`]/);
      expect(text, bin).toContain('require("better-sqlite3")'); // native packages stay in node_modules
    }
  });

  it('runs each program from its bundle with V8 code cache: none, then written, accepted, rejected and rewritten', () => {
    for (const [bin, usage] of [
      ['station', 'usage: station <command>'],
      ['registry', 'usage: registry <command>'],
    ] as const) {
      const cache = join(out, 'bin', `${bin}.test-cache`);
      const first = run(bin, cache, ['--help']);
      expect(first).toMatchObject({ cache: 'none', saved: true, code: 0 });
      expect(first.stdout).toContain(usage);
      expect(run(bin, cache, ['--help'])).toMatchObject({ cache: 'accepted', saved: false, code: 0 });
      writeFileSync(cache, Buffer.alloc(4096, 7)); // not V8's: compiled afresh, then replaced
      expect(run(bin, cache, ['--help'])).toMatchObject({ cache: 'rejected', saved: true, code: 0 });
      expect(run(bin, cache, ['--help'])).toMatchObject({ cache: 'accepted', saved: false, code: 0 });
      // A cache others could have written is not run (V8 runs what it holds): ignored, then replaced by a private one.
      chmodSync(cache, 0o666);
      expect(run(bin, cache, ['--help'])).toMatchObject({ cache: 'none', saved: true, code: 0 });
      expect(statSync(cache).mode & 0o777).toBe(0o600);
      expect(run(bin, cache, ['--help'])).toMatchObject({ cache: 'accepted', saved: false, code: 0 });
    }
  });

  it('gives each worker entry a module beside the bundles that imports its one-to-one build', async () => {
    const shims = readdirSync(join(out, 'bin')).filter((f) => f.endsWith('.worker.js'));
    expect(shims).toContain('verify.worker.js');
    for (const f of shims) {
      const target = /import '([^']+)'/.exec(readFileSync(join(out, 'bin', f), 'utf8'))?.[1];
      expect(target && existsSync(resolve(join(out, 'bin'), target)), f).toBe(true);
      expect(dirname(resolve(join(out, 'bin'), target!)).startsWith(out)).toBe(true);
    }
    // The record verification worker as the bundled registry starts it: it loads and answers a job (here: refused).
    const worker = new Worker(pathToFileURL(join(out, 'bin', 'verify.worker.js')));
    try {
      const answer = await new Promise((done, failed) => {
        worker.once('message', done);
        worker.once('error', failed);
        worker.postMessage({
          id: 7,
          trustKey: 'k',
          row: {},
          history: [],
          records: [],
          certificates: [],
          base: 0,
          now: '',
        });
      });
      expect(answer).toMatchObject({ id: 7, error: expect.stringMatching(/unreadable/) });
    } finally {
      await worker.terminate();
    }
  });
});

describe('bin/runtime.mjs: the build while it is current, else the sources', () => {
  // A package of its own: the real bin/ files, a source entry and a "compiled" one that say which ran.
  const pkg = join(tmp, 'pkg');
  const src = join(pkg, 'station', 'cli', 'program.ts');
  const stamp = join(pkg, 'dist', 'node', STAMP);
  const at = (s: number) => new Date(Date.now() + s * 1000);
  beforeAll(() => {
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    for (const f of ['station.mjs', 'runtime.mjs', 'exit.mjs']) copyFileSync(join(ROOT, 'bin', f), join(pkg, 'bin', f));
    mkdirSync(join(pkg, 'station', 'cli'), { recursive: true });
    mkdirSync(join(pkg, 'dist', 'node', 'station', 'cli'), { recursive: true });
    writeFileSync(src, "export async function main(): Promise<number> { console.log('sources'); return 0; }\n");
    writeFileSync(
      join(pkg, 'dist', 'node', 'station', 'cli', 'program.js'),
      "export async function main() { console.log('compiled'); return 0; }\n",
    );
    mkdirSync(join(pkg, 'dist', 'node', 'bin'), { recursive: true });
    writeFileSync(
      join(pkg, 'dist', 'node', 'bin', 'station.cjs'),
      "exports.main = async () => { console.log('bundle'); return 0; };\n",
    );
    writeFileSync(join(pkg, 'station', 'cli', 'program.test.ts'), '// a test: never compiled, never makes it stale\n');
    writeFileSync(stamp, JSON.stringify({ roots: ['station'] }));
  });
  const station = (env: Record<string, string> = {}) => {
    const e = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_')));
    return spawnSync(process.execPath, [join(pkg, 'bin', 'station.mjs')], { env: { ...e, ...env }, encoding: 'utf8' });
  };

  it('runs the bundle when no source is newer (a newer test file does not count), leaving its code cache', () => {
    utimesSync(src, at(-60), at(-60));
    utimesSync(stamp, at(-30), at(-30));
    expect(staleReason(pkg)).toBeNull();
    expect(station().stdout).toBe('bundle\n');
    expect(
      readdirSync(join(pkg, 'dist', 'node', 'bin')).filter((f) => /^station\.cjs\.\d+\.cache$/.test(f)),
    ).toHaveLength(1);
    expect(station().stdout).toBe('bundle\n');
    expect(station({ LINE_STATION_RUNTIME: 'modules' }).stdout).toBe('compiled\n'); // the one-to-one module
  });

  it('runs the sources through tsx when one is newer, and refuses that build with LINE_STATION_RUNTIME=dist', () => {
    utimesSync(src, at(-10), at(-10));
    expect(staleReason(pkg)).toMatch(/sources in station\/ are newer than the build/);
    expect(station().stdout).toBe('sources\n');
    const r = station({ LINE_STATION_RUNTIME: 'dist' });
    expect(r.status).toBe(70);
    expect(r.stderr).toMatch(/LINE_STATION_RUNTIME=dist: sources in station\/ are newer than the build/);
  });

  it('runs the sources without a build, and always with LINE_STATION_RUNTIME=tsx', () => {
    utimesSync(src, at(-60), at(-60));
    utimesSync(stamp, at(-30), at(-30));
    expect(station({ LINE_STATION_RUNTIME: 'tsx' }).stdout).toBe('sources\n');
    rmSync(stamp);
    expect(staleReason(pkg)).toMatch(/no build/);
    expect(station().stdout).toBe('sources\n');
  });
});

describe('what a command loads at start (docs/architecture.md "What a command loads")', () => {
  /** The packages the static imports of `entries` reach (esbuild's metafile; dynamic `import()`s not followed). */
  async function staticPackages(entries: string[]): Promise<string[]> {
    const { build } = await import('esbuild');
    const r = await build({
      entryPoints: entries.map((e) => join(ROOT, e)),
      absWorkingDir: ROOT,
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'silent',
      outdir: join(tmp, 'graph'),
    });
    const inputs = r.metafile.inputs;
    const seen = new Set(entries);
    const todo = [...entries];
    const packages = new Set<string>();
    while (todo.length) {
      for (const i of inputs[todo.pop()!]?.imports ?? []) {
        if (i.kind !== 'import-statement') continue;
        if (i.external) {
          if (!i.path.startsWith('node:'))
            packages.add(
              i.path
                .split('/')
                .slice(0, i.path.startsWith('@') ? 2 : 1)
                .join('/'),
            );
        } else if (!seen.has(i.path)) {
          seen.add(i.path);
          todo.push(i.path);
        }
      }
    }
    return [...packages].sort();
  }

  it('`station --help` (station/cli/program.ts) loads no package: every command imports its services in `run`', async () => {
    expect(await staticPackages(['station/cli/program.ts'])).toEqual([]);
  });

  it('`station records` (configuration and database) loads no X.509 stack, HSM, serial, USB or PostgreSQL package', async () => {
    expect(await staticPackages(['station/config.ts', 'native/store/index.ts'])).toEqual(['better-sqlite3', 'zod']);
  });

  it('`registry --help` (registry/cli.ts) loads no package: every command imports its services in `run`', async () => {
    expect(await staticPackages(['registry/cli.ts'])).toEqual([]);
  });

  it('`registry stations` (data dir, configuration, role, database, the list) loads no X.509 stack, HSM or PostgreSQL package', async () => {
    const opened = ['registry/cli.ts', 'registry/cli/open.ts', 'registry/cli/role.ts'];
    expect(await staticPackages([...opened, 'registry/stations/queries.ts'])).toEqual(['better-sqlite3', 'zod']);
  });
});
