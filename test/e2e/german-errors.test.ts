/**
 * Station errors in the operator's language, end to end: a real station (SoftHSM2, simulator boards on socat ptys,
 * SQLite) behind the bridge, the built UI in Debian's Chromium at the station window's sizes (1280x800, the default,
 * and 1024x640, the smallest it allows: electron/main/window.ts).
 *
 * Three boards: board 0 was provisioned (already provisioned: PASS), board 1 has a tampered application image
 * (POLICY_VIOLATION at baseline: FAIL), board 2 was provisioned and then zeroized by its firmware (the station has its
 * record, the board no longer holds the certificate: BOARD_CERT_MISSING, whose text names the record id from the
 * error's params). The zeroized board is neither PASS nor FAIL: its tile shows IDENTITY LOST (`identity-lost`, amber,
 * its own icon) with the guidance, and offers re-provisioning to a supervisor only. The operator switches to German
 * before signing in: wrong PINs until sign-in locks (AUTH_LOCKED, its `lockedUntil` param shown in German date
 * format), then the work order; the errors come through the real path (service / flow -> slot -> bridge -> UI) and
 * show German text and guidance from code + params; no step label or error text is cut in either language at either
 * size. The Log view says the zeroized board's refusal in German with its record id (the LogEntry's `errorParams`).
 * Last, the supervisor re-provisions the zeroized board from its tile: PASS.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../core/errors.js';
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
import { cutText } from './layout.js';

const ROOT = join(import.meta.dirname, '..', '..');
const WO = 'WO-DEMO-1';
const GOOD = 0;
const TAMPERED = 1;
const ZEROIZED = 2;
const de = JSON.parse(readFileSync(join(ROOT, 'renderer', 'src', 'i18n', 'errors.de.json'), 'utf8')) as Record<
  string,
  { text: string; guidance: string }
>;
const deUi = JSON.parse(readFileSync(join(ROOT, 'renderer', 'src', 'i18n', 'de.json'), 'utf8')) as Record<
  string,
  string
>;

let w: World;
let ui: StationUi;
let page: Page;
let zeroizedRecordId = '';

const tile = (i: number) => page.locator(`.tile[data-port="${w.sim.ports[i]}"]`);

beforeAll(async () => {
  w = await createWorld({ boards: [{}, { faults: { badFirmware: true } }, {}] });
  // Boards 0 and 2 are provisioned at this station; then board 2's firmware erases its identity (key, certificate,
  // lock), as a reflash or an erase on the bench would.
  for (const i of [GOOD, ZEROIZED]) {
    const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-1' });
    if (!r.ok || r.value.status !== 'provisioned') throw new Error(`provision ${i}: ${JSON.stringify(r)}`);
    if (i === ZEROIZED) zeroizedRecordId = r.value.record.recordId;
  }
  const z = await w.engine.zeroize({ port: w.sim.ports[ZEROIZED]!, workOrder: WO });
  if (!z.ok) throw new Error(`zeroize: ${z.error.code} ${z.error.message}`);
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: '1234', name: 'Olga Operator' },
    { id: 'op-2', role: 'operator', pin: '5678', name: 'Otto Operator' },
    { id: 'sup-1', role: 'supervisor', pin: '987654', name: 'Sam Supervisor' },
  ]);

  ui = await startStationUi(w, { width: 1280, height: 800 });
  page = ui.page;
}, 240_000);

afterAll(() => closeStationUi(ui, w));

describe('station errors in German, from code and params', () => {
  it('switches to German, signs in, scans the work order: the real errors show German text and guidance', async () => {
    await page.locator('#badge').waitFor();
    await page.keyboard.press('Alt+l');
    await until('german', async () => (await page.locator('html').getAttribute('lang')) === 'de');
    // Sign-in errors: wrong PINs for op-2 until sign-in locks (AUTH_LOCKED), whose German text carries the lock's end
    // (the `lockedUntil` param, an ISO time) in German date format.
    const login = page.locator('.banner-error .error-text');
    for (let i = 0; i < 8; i++) {
      await page.locator('#operator-id').fill('op-2');
      await page.locator('#pin').fill('0000');
      await page.locator('#pin').press('Enter');
      // The PIN field is cleared when the answer arrived (docs/ui.md "Sign in").
      await until(`attempt ${i + 1}`, async () => (await page.locator('#pin').inputValue()) === '');
      await until(`answer ${i + 1}`, async () => (await login.count()) === 1);
      if ((await login.getAttribute('data-code')) === 'AUTH_LOCKED') break;
      expect(await login.getAttribute('data-code')).toBe('AUTH_INVALID_CREDENTIALS');
      expect(await login.locator('.error-what').innerText()).toBe(de['AUTH_INVALID_CREDENTIALS']!.text);
    }
    expect(await login.getAttribute('data-code')).toBe('AUTH_LOCKED');
    const lockedText = await login.locator('.error-what').innerText();
    const [before, after] = de['AUTH_LOCKED']!.text.split('{lockedUntil}') as [string, string];
    expect(lockedText.startsWith(before) && lockedText.endsWith(after)).toBe(true);
    const shown = lockedText.slice(before.length, lockedText.length - after.length);
    expect(shown).toMatch(/^\d{1,2}\.\d{1,2}\.\d{4}, \d{1,2}:\d{2}:\d{2}$/); // de-DE, not ISO
    expect(await login.locator('.error-guidance').innerText()).toBe(de['AUTH_LOCKED']!.guidance);
    await signIn(page, 'op-1', '1234');
    await scanWorkOrder(page, WO);
    await until(
      'every board finished',
      async () =>
        (await page.locator('.tile[data-state="fail"]').count()) === 1 &&
        (await page.locator('.tile[data-state="identity-lost"]').count()) === 1 &&
        (await page.locator('.tile[data-state="already"]').count()) === 1,
      120_000,
    );
    expect(await tile(TAMPERED).getAttribute('data-state')).toBe('fail');
    expect(await tile(ZEROIZED).getAttribute('data-state')).toBe('identity-lost');

    // The zeroized board: neither PASS nor FAIL. Its own verdict (amber, an icon), the German summary counts it apart.
    const verdict = tile(ZEROIZED).locator('.verdict');
    expect(await verdict.getAttribute('class')).toBe('verdict verdict-lost');
    expect(await verdict.innerText()).toContain(deUi['slot.lost']!);
    // Its colour is neither the PASS green nor the FAIL red (the root tsconfig has no DOM lib: the page's window).
    type Win = { getComputedStyle(e: unknown, pseudo?: string): { backgroundColor: string; content: string } };
    const background = (sel: string) =>
      page
        .locator(sel)
        .first()
        .evaluate((el) => (globalThis as unknown as Win).getComputedStyle(el).backgroundColor);
    const icon = await verdict
      .locator('.verdict-icon')
      .evaluate((el) => (globalThis as unknown as Win).getComputedStyle(el, '::before').content);
    expect(icon).toBe('"⚠"');
    const colours = {
      lost: await background('.verdict-lost'),
      pass: await background('.verdict-pass'),
      fail: await background('.verdict-fail'),
    };
    expect(new Set([colours.lost, colours.pass, colours.fail]).size).toBe(3);
    expect(await page.locator('.slots-summary').innerText()).toContain(
      deUi['slots.summaryLost']!.replace('{lost}', '1'),
    );
    // An operator is told a supervisor can re-provision it; only a supervisor gets the button.
    expect(await tile(ZEROIZED).locator('.tile-lost-hint').innerText()).toBe(deUi['slot.lostHint']);
    expect(await tile(ZEROIZED).locator('.btn-reprovision').count()).toBe(0);

    // BOARD_CERT_MISSING, the German text with the record id (a param), the German guidance.
    const zero = tile(ZEROIZED).locator('.error-text');
    expect(await zero.getAttribute('data-code')).toBe('BOARD_CERT_MISSING');
    expect(await zero.getAttribute('data-localised')).toBe('true');
    const missing = de['BOARD_CERT_MISSING']!;
    expect(await zero.locator('.error-what').innerText()).toBe(missing.text.replace('{recordId}', zeroizedRecordId));
    expect(zeroizedRecordId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await zero.locator('.error-guidance').innerText()).toBe(missing.guidance);
    expect(await zero.locator('.error-action').innerText()).toBe(deUi['action.set-aside']);
    // Nothing of the station's English text is left in the tile's visible text (the message is behind "Details").
    const zeroText = await tile(ZEROIZED).innerText();
    expect(zeroText).not.toContain(ERROR_CATALOGUE.BOARD_CERT_MISSING.guidance);
    expect(zeroText).not.toContain('does not hold its certificate');
    // No PASS or FAIL verdict on it.
    expect(await tile(ZEROIZED).locator('.verdict-pass, .verdict-fail').count()).toBe(0);
    expect(zeroText).toContain(deUi['slot.lost']!);

    // The tampered board: POLICY_VIOLATION at baseline, in German, the baseline step marked failed.
    const bad = tile(TAMPERED).locator('.error-text');
    expect(await bad.getAttribute('data-code')).toBe('POLICY_VIOLATION');
    expect(await bad.locator('.error-what').innerText()).toBe(de['POLICY_VIOLATION']!.text);
    expect(await bad.locator('.error-guidance').innerText()).toBe(de['POLICY_VIOLATION']!.guidance);
    expect(await tile(TAMPERED).locator('.step-failed').innerText()).toBe(deUi['step.baseline']);
    // The station's own message is still there for the engineer, behind the "Details" disclosure.
    await bad.locator('.error-details summary').click();
    expect(await bad.locator('.error-message').innerText()).toMatch(/application/i);
    await bad.locator('.error-details summary').click();

    expect(await cutText(page)).toEqual([]);
    await screenshot(page, 'german-error');
  }, 180_000);

  it("the failed board's record in German: each baseline violation by its rule, with expected and measured values", async () => {
    await elevate(page, 'sup-1', '987654');
    await page.locator('nav [data-view="log"]').waitFor();
    await page.keyboard.press('Alt+2');
    const serial = w.sim.boards[TAMPERED]!.serialNumber;
    // The zeroized board's refusal, said in German from its code and its params (the record id).
    await page.locator('#log-text').fill(w.sim.boards[ZEROIZED]!.serialNumber);
    await page.locator('#log-text').press('Enter');
    const refused = page.locator('tbody tr.outcome-refused');
    await until(
      'the refusal row',
      async () => (await page.locator('tbody tr').count()) >= 1 && (await refused.count()) === 1,
    );
    const logError = refused.locator('.log-error');
    expect(await logError.getAttribute('data-code')).toBe('BOARD_CERT_MISSING');
    expect(await logError.innerText()).toBe(de['BOARD_CERT_MISSING']!.text.replace('{recordId}', zeroizedRecordId));
    expect(await refused.innerText()).toContain(deUi['log.outcome.refused']!);
    expect(await cutText(page)).toEqual([]);
    await screenshot(page, 'german-log-error');

    // The tampered board's record.
    await page.locator('#log-text').fill(serial);
    await page.locator('#log-text').press('Enter');
    await until('one row', async () => (await page.locator('tbody tr').count()) === 1);
    await page.locator('tbody tr button').press('Enter');
    const v = page.locator('[data-rule="firmware.digest"]');
    await v.waitFor();
    expect(await v.locator('strong').innerText()).toBe(deUi['violation.firmware.digest']);
    const [before] = deUi['record.violation.values']!.split('{expected}') as [string];
    expect(await v.innerText()).toContain(before);
    expect(await v.innerText()).toMatch(/[0-9a-f]{64}/); // the measured digest, a value in any language
    // The station's English message behind "Details".
    await v.locator('.error-details summary').click();
    expect(await v.locator('.error-details p').innerText()).toMatch(/firmware slot application/);
    expect(await cutText(page)).toEqual([]);
    await page.keyboard.press('Escape');
    await page.keyboard.press('Alt+1');
    // Back on the slots, the supervisor is offered to re-provision the zeroized board from its tile (no hint then).
    await tile(ZEROIZED).locator('.btn-reprovision').waitFor();
    expect(await tile(ZEROIZED).locator('.btn-reprovision').innerText()).toBe(deUi['slot.reprovision']);
    expect(await tile(ZEROIZED).locator('.tile-lost-hint').count()).toBe(0);
    expect(await tile(TAMPERED).locator('.btn-reprovision').count()).toBe(0);
  }, 60_000);

  it('no step label or error text is cut at 1024x640 (German and English); the zeroized board in English', async () => {
    for (const lang of ['de', 'en'] as const) {
      if ((await page.locator('html').getAttribute('lang')) !== lang) {
        await page.keyboard.press('Alt+l');
        await until(lang, async () => (await page.locator('html').getAttribute('lang')) === lang);
      }
      for (const [width, height] of [
        [1024, 640],
        [1280, 800],
      ] as const) {
        await page.setViewportSize({ width, height });
        await page.locator('.tile').first().waitFor();
        expect(await cutText(page), `${lang} ${width}x${height}`).toEqual([]);
        // Every step name is one line, as wide as its text (not cut, not broken inside a word).
        const steps = await page
          .locator('.tile .step')
          .evaluateAll((els) => els.map((e) => [e.textContent ?? '', e.scrollWidth <= e.clientWidth] as const));
        expect(steps.length).toBeGreaterThanOrEqual(3 * 7);
        expect(steps.filter(([, fits]) => !fits)).toEqual([]);
      }
    }
    // English: the station's catalogue text with the same param.
    const zero = tile(ZEROIZED).locator('.error-text');
    expect(await zero.locator('.error-what').innerText()).toBe(
      ERROR_CATALOGUE.BOARD_CERT_MISSING.text.replace('{recordId}', zeroizedRecordId),
    );
    expect(await zero.locator('.error-guidance').innerText()).toBe(ERROR_CATALOGUE.BOARD_CERT_MISSING.guidance);
    await page.setViewportSize({ width: 1280, height: 800 });
    await tile(ZEROIZED).scrollIntoViewIfNeeded();
    expect(await tile(ZEROIZED).locator('.verdict').innerText()).toContain('IDENTITY LOST');
    await screenshot(page, 'zeroized-board');
    expect(ui.problems).toEqual([]);
  }, 60_000);

  it('a supervisor re-provisions the zeroized board from its tile: a new identity, PASS', async () => {
    await tile(ZEROIZED).locator('.btn-reprovision').click();
    await page.locator('#ov-reason').fill('board erased on the bench');
    await page.locator('.dialog button[type="submit"]').click();
    await until(
      'the zeroized board passes',
      async () => (await tile(ZEROIZED).getAttribute('data-state')) === 'pass',
      120_000,
    );
    const chipId = w.sim.boards[ZEROIZED]!.chipId;
    const current = w.engine.store.findCurrentRecord(chipId);
    expect(current?.recordId).toBeTruthy();
    expect(current?.recordId).not.toBe(zeroizedRecordId);
    const audit = w.engine.store.listAudit(1, 100_000).filter((e) => e.type === 'override.reprovision');
    expect(audit.at(-1)?.payload).toMatchObject({ supervisor: 'sup-1', reason: 'board erased on the bench' });
    expect(ui.problems).toEqual([]);
  }, 180_000);
});
