/**
 * Playwright helpers for the end-to-end tests: Debian's Chromium, headless, with the flags the
 * sandboxed test machine needs; screenshots under test-results/screenshots/; the built renderer; the station UI
 * opened through the bridge (over a world: `startStationUi`); sign-in and work-order scan as an operator does them;
 * polling until a condition holds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startBridge, type Bridge } from '../../station/bridge/bridge.js';
import { createStationService, type StationService } from '../../station/service/index.js';
import type { World } from '../harness.js';

const ROOT = join(import.meta.dirname, '..', '..');
export const SCREENSHOTS = join(ROOT, 'test-results', 'screenshots');
/** The Vite build of renderer/ that the bridge serves. */
export const RENDERER_DIST = join(ROOT, 'renderer', 'dist');

/** renderer/dist, built with Vite first when it is missing (a worktree that never built it). */
export function builtRenderer(): string {
  if (!existsSync(join(RENDERER_DIST, 'index.html'))) execFileSync('npx', ['vite', 'build', 'renderer'], { cwd: ROOT });
  return RENDERER_DIST;
}

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

/** A station UI over a world: its station service, the bridge, Chromium on the page; `close` stops all three. */
export interface StationUi {
  readonly service: StationService;
  readonly bridge: Bridge;
  readonly browser: Browser;
  readonly page: Page;
  /** Console errors and CSP violations of the page (`watchPage`). */
  readonly problems: string[];
  close(): Promise<void>;
}

/**
 * The station service of `w` (watching the simulator's ports, started), and its UI (the built renderer) opened in
 * Chromium at `viewport`. `service` takes options of the service besides the world's (e.g. a clock).
 */
export async function startStationUi(
  w: World,
  viewport: { readonly width: number; readonly height: number },
  service: Omit<Parameters<typeof createStationService>[0], 'engine' | 'logger' | 'extraPorts'> = {},
): Promise<StationUi> {
  const svc = createStationService({ engine: w.engine, logger: w.logger, extraPorts: w.sim.ports, ...service });
  await svc.start();
  const ui = await openStationUi({ service: svc, staticDir: builtRenderer(), logger: w.logger, viewport });
  return {
    service: svc,
    ...ui,
    async close() {
      await ui.browser.close();
      await ui.bridge.close();
      await svc.stop();
    },
  };
}

/**
 * An e2e file's afterAll: the station UI closed, then the world torn down; either may be unset (its beforeAll
 * failed early).
 */
export async function closeStationUi(
  ui: StationUi | undefined,
  w: { teardown(): Promise<void> } | undefined,
): Promise<void> {
  await ui?.close();
  await w?.teardown();
}

/** Signs in on the sign-in screen (id, PIN, Enter) and waits for the work-order screen. */
export async function signIn(page: Page, operatorId: string, pin: string): Promise<void> {
  await page.locator('#operator-id').fill(operatorId);
  await page.locator('#pin').fill(pin);
  await page.locator('#pin').press('Enter');
  await page.locator('#wo-scan').waitFor();
}

/** Scans the work order `id` (typed and Enter, as a keyboard-wedge scanner does) and waits for the slots view. */
export async function scanWorkOrder(page: Page, id: string): Promise<void> {
  await page.locator('#wo-scan').pressSequentially(`${id}\n`, { delay: 5 });
  await page.locator('.tiles').waitFor();
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
