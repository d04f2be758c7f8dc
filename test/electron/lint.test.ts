/**
 * The lint rules that keep Electron in its place fire: raw ipcMain/ipcRenderer only in
 * electron/main/ipc.ts and electron/preload/, no `electron` in core/, native/, station/,
 * registry/ or renderer/. Runs ESLint with the project's config on small fixture strings.
 */
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: resolve(import.meta.dirname, '../..') });
const IPC = 'ipcMain/ipcRenderer only in electron/main/ipc.ts and electron/preload/ (docs/desktop.md).';
const ELECTRON = 'No electron in core/, native/, station/, registry/ or renderer/: they run in plain Node or the DOM.';

async function messages(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return (r?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-syntax').map((m) => m.message);
}

describe('Electron lint rules', () => {
  it('forbid ipcMain outside electron/main/ipc.ts (import, member access, destructuring)', async () => {
    expect(
      await messages('electron/main/index.ts', "import { ipcMain } from 'electron';\nipcMain.on('x', () => 1);\n"),
    ).toContain(IPC);
    expect(
      await messages('electron/main/window.ts', "import * as e from 'electron';\ne.ipcMain.handle('x', () => 1);\n"),
    ).toEqual([IPC]);
    expect(
      await messages(
        'electron/engine-host/host.ts',
        "import e from 'electron';\nconst { ipcRenderer } = e;\nipcRenderer.send('x');\n",
      ),
    ).toContain(IPC);
  });

  it('allow them in the one IPC file and the preload', async () => {
    expect(
      await messages('electron/main/ipc.ts', "import { ipcMain } from 'electron';\nipcMain.handle('x', () => 1);\n"),
    ).toEqual([]);
    expect(
      await messages(
        'electron/preload/index.ts',
        "import { ipcRenderer } from 'electron';\nvoid ipcRenderer.invoke('x');\n",
      ),
    ).toEqual([]);
  });

  it.each(['core/x.ts', 'native/x.ts', 'station/x.ts', 'registry/x.ts', 'renderer/src/x.ts'])(
    'forbid electron in %s (static, type-only, dynamic, re-export, require)',
    async (f) => {
      expect(await messages(f, "import { app } from 'electron';\nexport const a = app;\n")).toContain(ELECTRON);
      expect(await messages(f, "import type { App } from 'electron';\nexport type A = App;\n")).toContain(ELECTRON);
      expect(await messages(f, "export const m = () => import('electron/main');\n")).toContain(ELECTRON);
      expect(await messages(f, "export { app } from 'electron';\n")).toContain(ELECTRON);
      expect(
        await messages(
          f,
          "// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const e = require('electron');\n",
        ),
      ).toContain(ELECTRON);
      expect(await messages(f, "import b from 'electron-builder';\nexport const x = b;\n")).toEqual([]);
    },
  );
});
