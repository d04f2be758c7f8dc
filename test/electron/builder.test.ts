/**
 * electron-builder.yml: valid against electron-builder's own schema, and the security-relevant keys
 * are what docs/desktop.md promises (native addons unpacked from asar, udev rules installed by the
 * .deb, no PKCS#11 module bundled or depended on, fuses, per-machine NSIS). Packaging itself needs
 * internet and is not run here.
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
