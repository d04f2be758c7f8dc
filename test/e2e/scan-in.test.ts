/**
 * Scan-in and refusals through the real UI: the Vite build of renderer/ served by the station bridge over a real
 * station (SoftHSM2, simulator boards on socat ptys, SQLite), in Debian's Chromium, driven with the keyboard as a
 * keyboard-wedge scanner does (the code typed, then Enter).
 *
 * A work order that requires scan-in: attached boards wait (no run) with a scan field on their tile; a barcode that is
 * not the board on that port FAILs the tile before anything is written (FLOW_SCAN_MISMATCH) and is recorded; focus
 * moves to the next waiting tile after each scan; the right scans PASS, also when each scan's answer reaches the page
 * after the events the station sent later (the tile keeps the newest view). A supervisor finds the refusal in the Log
 * (outcome "refused"), and the Yield view counts it.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useWorkOrders } from '../../testkit/work-orders.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import {
  closeStationUi,
  elevate,
  scanWorkOrder,
  screenshot,
  signIn,
  startStationUi,
  until,
  type StationUi,
} from './browser.js';

const WO_SCAN = 'WO-SCAN-1';
const BOARDS = 3;

let w: World;
let ui: StationUi;
let page: Page;

const tile = (i: number) => page.locator(`.tile[data-port="${w.sim.ports[i]}"]`);
const stateOf = (i: number) => tile(i).getAttribute('data-state');
const scanField = (i: number) => page.locator(`input[data-scan-port="${w.sim.ports[i]}"]`);
const focusedScanPort = () =>
  page.evaluate('document.activeElement && document.activeElement.getAttribute("data-scan-port")');

beforeAll(async () => {
  w = await createWorld({ boards: BOARDS });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: '1234', name: 'Olga Operator' },
    { id: 'sup-1', role: 'supervisor', pin: '987654', name: 'Sam Supervisor' },
  ]);
  // The repository's demo work order and one that requires scan-in, in a work-order dir of this station.
  useWorkOrders(w.dataDir, join(w.dir, 'work-orders'), [{ id: WO_SCAN, requireScanIn: true }]);
  await w.reopen();
  ui = await startStationUi(w, { width: 1920, height: 1080 });
  page = ui.page;
}, 240_000);

afterAll(() => closeStationUi(ui, w));

describe('scan-in in the slots view; refusals in the log and yield', () => {
  it('boards wait for their scan; a wrong barcode FAILs before anything is written; the right scans PASS', async () => {
    await signIn(page, 'op-1', '1234');
    await scanWorkOrder(page, WO_SCAN);
    await until('three waiting tiles', async () => (await page.locator('input[data-waiting="1"]').count()) === BOARDS);
    // Nothing starts without a scan.
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < BOARDS; i++) expect(await stateOf(i)).toBe('connected');
    expect(await page.locator('.slots-scan-help').innerText()).toContain('requires scan-in');
    expect(await scanField(0).getAttribute('aria-label')).toContain(w.sim.ports[0]!);
    await screenshot(page, 'scan-in-waiting');

    // Every scan's answer reaches the page 400 ms late, after the events the station sends once the board is refused
    // or provisioned (~20 ms): the tiles show the newest view (SlotView `version`), not the answer's older one.
    await page.route('**/api/scanSlot', async (route) => {
      const answer = await route.fetch();
      await new Promise((r) => setTimeout(r, 400));
      await route.fulfill({ response: answer });
    });
    // The scanner types board 1's barcode into board 0's field: refused, recorded, nothing on the board.
    await scanField(0).focus();
    await page.keyboard.type(`${w.sim.boards[1]!.serialNumber}\n`, { delay: 5 });
    await until('board 0 refused', async () => (await stateOf(0)) === 'fail');
    const failed = await tile(0).innerText();
    expect(failed).toContain('FLOW_SCAN_MISMATCH');
    expect(w.sim.state(0).hasKey).toBe(false);
    expect(w.engine.store.findActiveRun(w.sim.boards[0]!.chipId)).toBeNull();
    // Focus moved to the next tile still waiting for its scan.
    await until('focus on tile 1', async () => (await focusedScanPort()) === w.sim.ports[1]);
    await screenshot(page, 'scan-in-mismatch');

    await page.keyboard.type(`${w.sim.boards[1]!.serialNumber}\n`, { delay: 5 });
    // The focus moves on once the scanned tile has left the waiting state (a render later).
    await until('focus on the next waiting tile', async () => (await focusedScanPort()) === w.sim.ports[2]);
    await page.keyboard.type(`${w.sim.boards[2]!.serialNumber}\n`, { delay: 5 });
    // Board 0 again, with its own barcode ("scan again" on the failed tile).
    await scanField(0).focus();
    await page.keyboard.type(`${w.sim.boards[0]!.serialNumber}\n`, { delay: 5 });
    await until('all passed', async () => (await page.locator('.tile[data-state="pass"]').count()) === BOARDS, 120_000);
    expect(await tile(0).innerText()).toContain(w.sim.boards[0]!.serialNumber);
    // Still so once every late answer has arrived.
    await new Promise((r) => setTimeout(r, 600));
    expect(await page.locator('.tile[data-state="pass"]').count()).toBe(BOARDS);
    await page.unroute('**/api/scanSlot');
    await screenshot(page, 'scan-in-pass');
  }, 240_000);

  it('a supervisor sees the refusal in the Log (outcome refused) and the Yield counts it', async () => {
    await elevate(page, 'sup-1', '987654');
    await page.keyboard.press('Alt+2');
    await page.locator('#log-text').waitFor();
    await page.locator('.filters select').selectOption('refused');
    await page.locator('#log-text').press('Enter');
    // The unfiltered listing already holds the refused row among the passes: wait for the filtered answer (one row).
    await until(
      'only the refused row',
      async () =>
        (await page.locator('tbody tr').count()) === 1 &&
        (await page.locator('tbody tr.outcome-refused').count()) === 1,
    );
    const row = await page.locator('tbody tr').innerText();
    expect(row).toContain('FLOW_SCAN_MISMATCH');
    expect(row).toContain(w.sim.boards[0]!.serialNumber);
    await screenshot(page, 'log-refused');

    await page.keyboard.press('Alt+3');
    await page.locator('[data-testid="refused"]').waitFor();
    await until('refused counted', async () => (await page.locator('[data-testid="refused"]').innerText()) === '1');
    // Three boards, one refused first: first-pass yield 2 of 3.
    await until('first-pass yield 2 of 3', async () =>
      /66[.,]7\s?%/.test(await page.locator('[data-testid="fpy"]').innerText()),
    );
    expect(await page.locator('.charts').innerText()).toContain('FLOW_SCAN_MISMATCH');
    await screenshot(page, 'yield-refused');
  }, 120_000);

  it("a re-provision override that erases the board and then fails: the tile says its old certificate's revocation is queued", async () => {
    const chip = w.sim.boards[1]!.chipId;
    const old = w.engine.store.findCurrentRecord(chip)!.certificateSerial;
    w.sim.setFaults(1, { refuseCert: true });
    await page.keyboard.press('Alt+6');
    const row = page.locator('tbody tr', { hasText: 'board-1' });
    await row.getByRole('button', { name: 'Re-provision' }).press('Enter');
    await page.locator('#ov-reason').fill('rework: reflash and new identity');
    await page.getByRole('button', { name: 'Confirm override' }).press('Enter');
    await page.keyboard.press('Alt+1');
    await until('board 1 failed', async () => (await stateOf(1)) === 'fail', 120_000);
    const note = tile(1).locator('.tile-revocation');
    await note.waitFor();
    expect(await note.innerText()).toContain(old);
    expect(w.engine.lifecycle.db.revocations({ kind: 'scrapped' }).map((q) => q.certificateSerial)).toEqual([old]);
    await screenshot(page, 'rework-failed-revocation');
    expect(ui.problems).toEqual([]);
  }, 180_000);
});
