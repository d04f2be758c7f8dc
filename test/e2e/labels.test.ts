/**
 * Labels in the real UI (Vite build of renderer/, station bridge, a real station with SoftHSM2 and a simulator
 * board on a pty, Debian's Chromium) with a raw TCP label printer on loopback: after PASS the tile says the label
 * was printed; in the record view the label preview shows, and the QR decoded (jsqr) from the preview image as
 * Chromium displays it is the record's certificate fingerprint and URN; Reprint prints again (the printer gets the
 * same ZPL) and is audited with the supervisor; with the printer off, Reprint shows PRINTER_UNREACHABLE in place.
 * Screenshot: test-results/screenshots/label-preview.png.
 */
import type { Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQrPayload } from '../../core/labels/payload.js';
import { updateStationConfig } from '../../station/config.js';
import { decodeQr, startLoopbackPrinter, type LoopbackPrinter } from '../../testkit/labels.js';
import { must } from '../../testkit/pki/test-util.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { closeStationUi, scanWorkOrder, screenshot, signIn, startStationUi, until, type StationUi } from './browser.js';

let w: World;
let ui: StationUi;
let page: Page;
let printer: LoopbackPrinter;

beforeAll(async () => {
  printer = await startLoopbackPrinter();
  const port = printer.port;
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  must(
    updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      labels: { size: { widthMm: 57, heightMm: 32, dpi: 300 }, printer: { kind: 'tcp', host: '127.0.0.1', port } },
    })),
  );
  await w.reopen();
  await addOperators(w.dataDir, [{ id: 'sup-1', role: 'supervisor', pin: '987654' }]);
  ui = await startStationUi(w, { width: 1280, height: 900 });
  page = ui.page;
}, 240_000);

afterAll(async () => {
  await closeStationUi(ui, w);
  await printer?.close();
});

describe('label preview and reprint in the UI', () => {
  it('PASS prints the label; the record view previews it (QR decoded from the image) and reprints it, audited', async ({
    onTestFailed,
  }) => {
    onTestFailed(async () => {
      await screenshot(page, 'label-preview-failed').catch(() => undefined);
    });
    await signIn(page, 'sup-1', '987654');
    await scanWorkOrder(page, 'WO-DEMO-1');
    const tile = page.locator(`.tile[data-port="${w.sim.ports[0]}"]`);
    await until('PASS', async () => (await tile.getAttribute('data-state')) === 'pass');
    const printed = tile.locator('[data-label-state="printed"]');
    await printed.waitFor();
    expect(await printed.innerText()).toContain('Label printed (tcp:127.0.0.1:');
    expect(printer.jobs).toHaveLength(1);

    // The record view, from the log.
    await page.locator('nav [data-view="log"]').click();
    await until('one row', async () => (await page.locator('tbody tr').count()) === 1);
    await page.locator('tbody tr button').click();
    const img = page.locator('[data-testid="label-preview"]');
    await img.waitFor();
    await until('preview loaded', () =>
      img.evaluate((e) => (e as unknown as { naturalWidth: number }).naturalWidth > 0),
    );
    // Decode the QR from the image as the browser shows it (an element screenshot), independently of the station.
    const shot = PNG.sync.read(await img.screenshot());
    const text = decodeQr({ data: new Uint8ClampedArray(shot.data), width: shot.width, height: shot.height });
    const rec = w.engine.store.listRecords({ limit: 1 })[0]!;
    const body = JSON.parse(rec.recordJson) as { certificate: { sha256: string }; board: { chipId: string } };
    expect(must(parseQrPayload(text ?? ''))).toEqual({
      certificateSha256: body.certificate.sha256,
      deviceUrn: `urn:line-station:device:LS-SIM-SE:${body.board.chipId}`,
    });
    expect(await page.locator('[data-testid="label-qr"]').innerText()).toBe(text);

    await page.locator('[data-testid="label-reprint"]').click();
    await page.locator('[data-testid="label-reprinted"]').waitFor();
    expect(printer.jobs).toHaveLength(2);
    expect(printer.jobs[1]).toBe(printer.jobs[0]);
    const audit = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'label.reprint');
    expect(audit).toHaveLength(1);
    expect(audit[0]!.payload).toMatchObject({
      recordId: rec.recordId,
      operator: 'sup-1',
      outcome: 'printed',
      via: 'ui',
    });
    await page.locator('#rec-label').scrollIntoViewIfNeeded();
    await screenshot(page, 'label-preview');

    // The printer goes away: Reprint says so where the button is (the board and its record are untouched).
    await printer.close();
    await page.locator('[data-testid="label-reprint"]').click();
    const error = page.locator('[data-testid="label-reprint-error"]');
    await error.waitFor();
    expect(await error.innerText()).toContain('PRINTER_UNREACHABLE');
    expect(w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'label.reprint')).toHaveLength(2);
    expect(w.engine.store.verifyAudit().ok).toBe(true);
    expect(ui.problems).toEqual([]);
  }, 240_000);
});
