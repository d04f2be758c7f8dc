/**
 * Text with control and bidi characters in the real UI (Vite build of renderer/, station bridge, real station with
 * SoftHSM2 and a simulator board on a pty, Debian's Chromium): React escapes HTML, not a right-to-left override or
 * a C1 control, so every string the UI receives is escaped by renderer/src/api/validate.ts (core/display-text.ts).
 *
 * An operator whose name holds a bidi override and an 8-bit CSI signs in: the header shows the `\u202e`/`\u009b`
 * escapes, not the characters. A rogue board (an RTL isolate and "PASS" in its firmware version) is refused at
 * identify: its tile says FAIL, the page holds no raw control or bidi character anywhere.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../station/bridge/bridge.js';
import { createStationService, type StationService } from '../../station/service/index.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { launchChromium, screenshot, watchPage } from './browser.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'renderer', 'dist');
const NAME = 'Olga \u202eRotarepo\u202c \x9b31m';
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/; // eslint-disable-line no-control-regex

let w: World;
let service: StationService;
let bridge: Bridge;
let browser: Browser;
let page: Page;
let problems: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(DIST, 'index.html'))) execFileSync('npx', ['vite', 'build', 'renderer'], { cwd: ROOT });
  w = await createWorld({ boards: [{ faults: { identity: { firmwareVersion: '1.4.2\u2067 PASS' } } }] });
  await addOperators(w.dataDir, [{ id: 'op-1', name: NAME, role: 'operator', pin: '1234' }]);
  service = createStationService({ engine: w.engine, logger: w.logger, extraPorts: w.sim.ports });
  await service.start();
  bridge = await startBridge({ service, staticDir: DIST, logger: w.logger });
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  problems = watchPage(page);
  await page.goto(bridge.url);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await bridge?.close();
  await service?.stop();
  await w?.teardown();
});

describe('board and operator text in the UI', () => {
  it('shows control and bidi characters as visible escapes; a rogue board is refused', async ({ onTestFailed }) => {
    // On failure: the station's log (its last lines) and a screenshot, to tell a stuck engine from a lost event.
    onTestFailed(async () => {
      process.stderr.write(`--- station log (last 80 lines)\n${w.logText().split('\n').slice(-80).join('\n')}\n`);
      await screenshot(page, 'board-text-failed').catch(() => undefined);
    });
    await page.locator('#operator-id').fill('op-1');
    await page.locator('#pin').fill('1234');
    await page.locator('#pin').press('Enter');
    await page.locator('#wo-scan').waitFor();
    const user = await page.locator('[data-testid="user"]').innerText();
    expect(user).toContain('Olga \\u202eRotarepo\\u202c \\u009b31m');
    expect(user).not.toMatch(UNSAFE);

    await page.locator('#wo-scan').pressSequentially('WO-DEMO-1\n', { delay: 5 });
    const tile = page.locator(`.tile[data-port="${w.sim.ports[0]}"]`);
    await tile.waitFor();
    const end = Date.now() + 60_000;
    while ((await tile.getAttribute('data-state')) !== 'fail' && Date.now() < end) await page.waitForTimeout(100);
    expect(await tile.getAttribute('data-state')).toBe('fail');
    expect(await tile.innerText()).toContain('FAIL');
    await screenshot(page, 'board-text');
    const body = await page.locator('body').innerText();
    expect(body).not.toMatch(UNSAFE);
    expect(problems).toEqual([]);
  }, 180_000);
});
