/**
 * Playwright helpers for the end-to-end tests: Debian's Chromium, headless, with the flags the
 * sandboxed test machine needs; screenshots under test-results/screenshots/; the station UI opened through the
 * bridge; polling until a condition holds.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startBridge, type Bridge } from '../../station/bridge/bridge.js';

export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Saves a full-viewport screenshot as test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Collects console errors and CSP violations of a page (printed on failure, asserted empty). */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return problems;
}

/** Polls `fn` every 100 ms until it is true; throws "timed out: <what>" after `ms`. */
export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

/** The UI of a running station service in Chromium: the bridge serving `staticDir`, the page opened on its URL. */
export async function openStationUi(o: {
  readonly service: Parameters<typeof startBridge>[0]['service'];
  readonly staticDir: string;
  readonly logger: Parameters<typeof startBridge>[0]['logger'];
  readonly viewport: { readonly width: number; readonly height: number };
}): Promise<{ bridge: Bridge; browser: Browser; page: Page; problems: string[] }> {
  const bridge = await startBridge({ service: o.service, staticDir: o.staticDir, logger: o.logger });
  const browser = await launchChromium();
  const page = await (await browser.newContext({ viewport: { ...o.viewport } })).newPage();
  const problems = watchPage(page);
  await page.goto(bridge.url);
  return { bridge, browser, page, problems };
}

/** A supervisor confirms with their PIN (Alt+E, the elevation dialog); waits for the supervisor navigation. */
export async function elevate(page: Page, supervisorId: string, pin: string): Promise<void> {
  await page.keyboard.press('Alt+e');
  await page.locator('#sup-id').waitFor();
  await page.locator('#sup-id').fill(supervisorId);
  await page.locator('#sup-pin').fill(pin);
  await page.locator('#sup-pin').press('Enter');
  await page.locator('nav [data-view="log"]').waitFor();
}
