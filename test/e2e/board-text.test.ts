/**
 * Text with control and bidi characters in the real UI (Vite build of renderer/, station bridge, real station with
 * SoftHSM2 and a simulator board on a pty, Debian's Chromium): React escapes HTML, not a right-to-left override or
 * a C1 control, so every string the UI receives is escaped by renderer/src/api/validate.ts (core/display-text.ts).
 *
 * An operator whose name holds a bidi override and an 8-bit CSI signs in: the header shows the `\u202e`/`\u009b`
 * escapes, not the characters. A rogue board (an RTL isolate and "PASS" in its firmware version) is refused at
 * identify: its tile says FAIL, the page holds no raw control or bidi character anywhere.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { closeStationUi, scanWorkOrder, screenshot, signIn, startStationUi, type StationUi } from './browser.js';

const NAME = 'Olga \u202eRotarepo\u202c \x9b31m';
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/; // eslint-disable-line no-control-regex

let w: World;
let ui: StationUi;
let page: Page;

beforeAll(async () => {
  w = await createWorld({ boards: [{ faults: { identity: { firmwareVersion: '1.4.2\u2067 PASS' } } }] });
  await addOperators(w.dataDir, [{ id: 'op-1', name: NAME, role: 'operator', pin: '1234' }]);
  ui = await startStationUi(w, { width: 1280, height: 800 });
  page = ui.page;
}, 240_000);

afterAll(() => closeStationUi(ui, w));

describe('board and operator text in the UI', () => {
  it('shows control and bidi characters as visible escapes; a rogue board is refused', async ({ onTestFailed }) => {
    // On failure: the station's log (its last lines) and a screenshot, to tell a stuck engine from a lost event.
    onTestFailed(async () => {
      process.stderr.write(`--- station log (last 80 lines)\n${w.logText().split('\n').slice(-80).join('\n')}\n`);
      await screenshot(page, 'board-text-failed').catch(() => undefined);
    });
    await signIn(page, 'op-1', '1234');
    const user = await page.locator('[data-testid="user"]').innerText();
    expect(user).toContain('Olga \\u202eRotarepo\\u202c \\u009b31m');
    expect(user).not.toMatch(UNSAFE);

    await scanWorkOrder(page, 'WO-DEMO-1');
    const tile = page.locator(`.tile[data-port="${w.sim.ports[0]}"]`);
    await tile.waitFor();
    const end = Date.now() + 60_000;
    while ((await tile.getAttribute('data-state')) !== 'fail' && Date.now() < end) await page.waitForTimeout(100);
    expect(await tile.getAttribute('data-state')).toBe('fail');
    expect(await tile.innerText()).toContain('FAIL');
    await screenshot(page, 'board-text');
    const body = await page.locator('body').innerText();
    expect(body).not.toMatch(UNSAFE);
    expect(ui.problems).toEqual([]);
  }, 180_000);
});
