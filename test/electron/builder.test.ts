/**
 * electron-builder.yml: valid against electron-builder's own schema, and the security-relevant keys
 * are what docs/desktop.md promises (native addons unpacked from asar, udev rules installed by the
 * .deb, no PKCS#11 module bundled or depended on, fuses, per-machine NSIS, no PostgreSQL driver). Packaging itself
 * needs internet and is not run here: the node_modules filter is checked with electron-builder's own matcher.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);
const yaml = require('js-yaml') as { load(s: string): unknown };
type Cfg = Record<string, unknown> & {
  asarUnpack: string[];
  files: string[];
  extraResources: { from: string; to: string }[];
  linux: { target: string[] };
  deb: { depends: string[]; afterInstall: string; afterRemove: string };
  nsis: Record<string, unknown>;
  electronFuses: Record<string, boolean>;
};
const cfg = yaml.load(readFileSync(join(root, 'electron-builder.yml'), 'utf8')) as Cfg;

type LockPackage = { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
const lock = (
  JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> }
).packages;

/** Where npm installed `name` for the package at `from` (a package-lock key; '' is the root): nearest node_modules. */
function installedAt(from: string, name: string): string | undefined {
  for (let base = from; ;) {
    const key = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock[key]) return key;
    if (!base) return undefined;
    const i = base.lastIndexOf('/node_modules/');
    base = i < 0 ? '' : base.slice(0, i);
  }
}

/** The installed packages (package-lock keys) that the named dependencies pull in, with their own dependencies. */
function closure(names: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const todo = names.map((n) => installedAt('', n));
  while (todo.length > 0) {
    const key = todo.pop();
    if (key === undefined || seen.has(key)) continue;
    seen.add(key);
    const p = lock[key]!;
    for (const d of Object.keys({ ...p.dependencies, ...p.optionalDependencies })) todo.push(installedAt(key, d));
  }
  return seen;
}

/** Whether electron-builder would package a file of node_modules (its own matcher, built from this config). */
function packagesModuleFile(file: string): boolean {
  const { getNodeModuleFileMatcher } = require('app-builder-lib/out/fileMatcher.js') as {
    getNodeModuleFileMatcher(
      appDir: string,
      dest: string,
      expand: (s: string) => string,
      platform: unknown,
      packager: unknown,
    ): { createFilter(): (file: string, stat: unknown) => boolean };
  };
  const matcher = getNodeModuleFileMatcher(root, '/app', (s) => s, cfg.linux, {
    config: cfg,
    debugLogger: { isEnabled: false },
  });
  return matcher.createFilter()(join(root, file), { moduleFullFilePath: file, isDirectory: () => false });
}

describe('electron-builder.yml', () => {
  it("is valid against electron-builder's schema", async () => {
    const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
      validateConfiguration(c: unknown, l: unknown): Promise<void>;
    };
    const { DebugLogger } = require('builder-util/out/DebugLogger.js') as { DebugLogger: new (on: boolean) => unknown };
    await expect(validateConfiguration(cfg, new DebugLogger(false))).resolves.toBeUndefined();
    // and the validator does reject a mistake
    await expect(validateConfiguration({ ...cfg, nsis: { oneClik: false } }, new DebugLogger(false))).rejects.toThrow(
      /nsis/,
    );
  });

  it('identifies the product and packages only the built app', () => {
    expect(cfg.appId).toBe('org.linestation.station');
    expect(cfg.productName).toBe('Line Station');
    expect(cfg.files).toEqual(expect.arrayContaining(['dist/electron/**', 'renderer/dist/**', 'resources/**']));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string };
    expect(pkg.main).toBe('dist/electron/main.mjs');
  });

  it('unpacks every native addon and the native packages from the asar', () => {
    expect(cfg.asar).toBe(true);
    expect(cfg.asarUnpack).toContain('**/*.node');
    for (const p of ['pkcs11js', 'better-sqlite3', '@serialport/bindings-cpp', 'usb'])
      expect(cfg.asarUnpack, p).toContain(`node_modules/${p}/**`);
    expect(cfg.npmRebuild).toBe(true); // better-sqlite3 is not N-API: rebuilt for Electron's ABI
  });

  it('builds AppImage and deb; the deb installs the udev rules and bundles no PKCS#11 module', () => {
    expect(cfg.linux.target).toEqual(['AppImage', 'deb']);
    expect(cfg.extraResources).toContainEqual(expect.objectContaining({ from: 'resources/udev', to: 'udev' }));
    expect(cfg.deb.depends.some((d) => /softhsm|pkcs11|opensc/i.test(d))).toBe(false);
    const post = readFileSync(join(root, cfg.deb.afterInstall), 'utf8');
    expect(post).toContain('resources/udev/70-line-station.rules');
    expect(post).toMatch(/install -m 0644 .* "\$RULES_SRC" "\$RULES_DST"/);
    expect(post).toContain("RULES_DST='/etc/udev/rules.d/70-line-station.rules'");
    expect(post).toMatch(/udevadm control --reload-rules/);
    const postrm = readFileSync(join(root, cfg.deb.afterRemove), 'utf8');
    expect(postrm).toContain('rm -f /etc/udev/rules.d/70-line-station.rules');
    for (const f of [cfg.deb.afterInstall, cfg.deb.afterRemove]) {
      execFileSync('bash', ['-n', join(root, f)]); // syntax
      expect(statSync(join(root, f)).mode & 0o111).not.toBe(0);
    }
    expect(statSync(join(root, 'resources/udev/70-line-station.rules')).isFile()).toBe(true);
  });

  it('packages no PostgreSQL driver: pg and every package only pg needs are filtered out, nothing else is', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const production = closure(Object.keys(pkg.dependencies));
    const withoutPg = closure(Object.keys(pkg.dependencies).filter((d) => d !== 'pg'));
    const pgOnly = [...production].filter((k) => !withoutPg.has(k));
    expect(pgOnly).toContain('node_modules/pg');
    expect(pgOnly.length).toBeGreaterThan(5); // pg-pool, pg-protocol, pg-types, ...
    for (const k of pgOnly) expect(packagesModuleFile(`${k}/index.js`), k).toBe(false);
    for (const k of withoutPg) expect(packagesModuleFile(`${k}/index.js`), k).toBe(true);
    for (const k of ['better-sqlite3', 'pkcs11js', 'zod']) expect(withoutPg).toContain(`node_modules/${k}`);
    // the bundles' source maps and esbuild metafiles stay out too
    expect(cfg.files).toEqual(expect.arrayContaining(['!dist/electron/**/*.map', '!dist/electron/**/*.meta.json']));
  });

  it('hardens the Electron binary with fuses', () => {
    expect(cfg.electronFuses).toMatchObject({
      runAsNode: false,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      onlyLoadAppFromAsar: true,
    });
  });

  it('has a per-machine, assisted NSIS installer with a choosable directory', () => {
    expect(cfg.nsis).toMatchObject({ oneClick: false, perMachine: true, allowToChangeInstallationDirectory: true });
  });
});
