// The import layers of Line Station, as data: which folders code in each folder may import. One table, read by
// eslint.config.js (the `local/layers` rule, on every save) and by test/architecture/imports.test.ts (on the whole
// graph). docs/architecture.md explains it. Plain JavaScript (ESLint loads it without a TypeScript step); no imports.

/** Every folder that holds our code; an import into anything else (resources/, package.json) is not checked. */
export const CODE_FOLDERS = [
  'core',
  'native',
  'station',
  'registry',
  'electron',
  'renderer',
  'testkit',
  'test',
  'scripts',
  'bin',
];

const ALL = CODE_FOLDERS.map((f) => `${f}/`);
const TEST_SUPPORT = ['testkit/', 'test/'];

/**
 * The zones, most specific first. `may` lists path prefixes (relative to the repository root) that code in `zone`
 * may import. Test files (`*.test.ts`) in a zone may also import test support (testkit/, test/), nothing else more:
 * a test that needs both station/ and registry/ lives in test/integration/.
 */
export const LAYERS = [
  { zone: 'core/', may: ['core/'], why: 'core/ is the pure domain: it imports only core/' },
  { zone: 'native/', may: ['core/', 'native/'], why: 'native/ holds the adapters: it imports core/ and native/' },
  {
    zone: 'station/',
    may: ['core/', 'native/', 'station/'],
    why: 'station/ composes core/ and native/; it never imports registry/ (the contract is core/hq/)',
  },
  {
    zone: 'registry/',
    may: ['core/', 'native/', 'registry/'],
    why: 'registry/ composes core/ and native/; it never imports station/ (the contract is core/hq/)',
  },
  {
    zone: 'electron/',
    may: ['core/', 'native/', 'station/', 'electron/'],
    why: 'electron/ hosts the station: it imports core/, native/, station/ and electron/, never registry/',
  },
  {
    zone: 'renderer/',
    may: ['core/', 'electron/shared/', 'renderer/'],
    why: 'renderer/ runs in the DOM: it imports only core/ (types, pure functions) and electron/shared/',
  },
  {
    zone: 'bin/',
    may: ['core/', 'native/', 'station/', 'registry/', 'bin/'],
    why: 'bin/ starts the station and registry programs; it imports no test support',
  },
  {
    // Benches are tooling, run by hand (`npm run bench`), never shipped: they reuse the test worlds.
    zone: 'scripts/bench.ts',
    may: ALL,
    why: 'scripts/bench.ts runs the benches of testkit/bench',
  },
  {
    // The bench modules scripts/bench.ts runs (one per part of `npm run bench`): tooling like it.
    zone: 'scripts/bench/',
    may: ALL,
    why: 'scripts/bench/ holds the modules of scripts/bench.ts, which run the benches of testkit/bench',
  },
  {
    zone: 'scripts/',
    may: ['core/', 'native/', 'station/', 'registry/', 'electron/', 'scripts/'],
    why: 'scripts/ is tooling: it may import production code, not test support (only scripts/bench.ts and scripts/bench/ may)',
  },
  {
    zone: 'testkit/',
    may: ['core/', 'native/', 'station/', 'registry/', 'electron/', 'testkit/'],
    why: 'testkit/ is test support: it imports production code and testkit/, never the tests in test/',
  },
  { zone: 'test/', may: ALL, why: 'test/ holds the cross-boundary tests: it may import everything' },
];

/** True for a test file (`x.test.ts`, `x.test.tsx`, `x.test.mjs`). */
export function isTestFile(file) {
  return /\.test\.[cm]?[jt]sx?$/.test(file);
}

/** The zone of a repository-relative file path (most specific wins), or undefined outside the layered folders. */
export function zoneOf(file) {
  return LAYERS.find((l) => (l.zone.endsWith('/') ? file.startsWith(l.zone) : file === l.zone));
}

/**
 * Why `from` may not import `to` (both repository-relative, `/`-separated), or undefined when it may.
 * Targets outside CODE_FOLDERS (data in resources/, package.json) are always allowed.
 */
export function layerViolation(from, to) {
  const zone = zoneOf(from);
  if (!zone || !CODE_FOLDERS.includes(to.split('/')[0])) return undefined;
  const may = isTestFile(from) ? [...zone.may, ...TEST_SUPPORT] : zone.may;
  if (may.some((p) => to.startsWith(p))) return undefined;
  const target = to
    .split('/')
    .slice(0, to.startsWith('electron/shared/') ? 2 : 1)
    .join('/');
  return `${from.split('/')[0]}/ may not import ${target}/: ${zone.why} (docs/architecture.md "Layers").`;
}
