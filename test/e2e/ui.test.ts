/**
 * End to end through the real UI: the Vite build of renderer/ served by the station bridge over a real
 * station (SoftHSM2, simulator boards on socat ptys, SQLite), driven in Debian's Chromium with the
 * keyboard like a scanner and an operator would.
 *
 * One world with 16 boards (board 2 has a tampered application image): an operator signs in and
 * scans WO-DEMO-1, the boards provision to PASS (board 2 FAIL with "set aside"), the longest
 * main-thread task during the 16-board run is measured; a supervisor (elevation) finds a record by
 * serial and reads its certificate; the registry comes up and the sync indicator turns to synced.
 */
import { must as unwrap } from '../../testkit/pki/test-util.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { Clock } from '../../core/ports.js';
import { DOCTOR_CHECK_IDS } from '../../core/api.js';
import { ERROR_CATALOGUE } from '../../core/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStationDb } from '../../native/store/index.js';
import type { TestStation } from '../../testkit/registry/fixtures.js';
import { revokeStation } from '../../registry/stations/service.js';
import { startBridge, type Bridge } from '../../station/bridge/bridge.js';
import { main as stationCli } from '../../station/cli/program.js';
import { authPolicy } from '../../station/service/auth.js';
import {
  createStationService,
  hashBadge,
  hashPin,
  loadBadgeKey,
  type StationService,
} from '../../station/service/index.js';
import { createWorld, type World } from '../harness.js';
import { startTestRegistry, type TestRegistry } from '../integration/sync-fixture.js';
import { launchChromium, screenshot, watchPage } from './browser.js';
import { cutText } from './layout.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'renderer', 'dist');
const BOARDS = 16;
const BAD = 2;

let w: World;
/** The service's clock runs `offsetMs` ahead (session timeouts without waiting half an hour). */
let offsetMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + offsetMs), monotonicMs: () => performance.now() };
let registry: TestRegistry;
let service: StationService;
let bridge: Bridge;
let browser: Browser;
let page: Page;
let problems: string[] = [];

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

const tiles = (state: string) => page.locator(`.tile[data-state="${state}"]`).count();
const indicator = () => page.locator('[data-testid="sync-indicator"]').getAttribute('data-sync');

beforeAll(async () => {
  if (!existsSync(join(DIST, 'index.html'))) execFileSync('npx', ['vite', 'build', 'renderer'], { cwd: ROOT });
  w = await createWorld({
    boards: Array.from({ length: BOARDS }, (_, i) => (i === BAD ? { faults: { badFirmware: true } } : {})),
  });
  // The headquarters registry: the station is enrolled, then the registry goes down (the station starts offline).
  const chainPem = join(w.dataDir, 'pki', 'station-chain.pem');
  registry = await startTestRegistry(w.dir, [
    { id: 'test-station', chainPem: readFileSync(chainPem, 'utf8') } as TestStation,
  ]);
  const regPem = join(w.dir, 'registry.pem');
  writeFileSync(regPem, registry.certificatePem);
  await registry.reg.close();
  const lines: string[] = [];
  const code = await stationCli(
    ['enroll', '--registry-cert', regPem, '--registry', registry.url, '--data-dir', w.dataDir],
    { out: (s) => lines.push(s), err: (s) => lines.push(s) },
  );
  if (code !== 0) throw new Error(`station enroll: ${lines.join('\n')}`);
  await w.reopen();

  // Operators: a line operator (PIN and badge) and a supervisor.
  const db = openStationDb(join(w.dataDir, 'station.db'));
  if (!db.ok) throw new Error(db.error.message);
  const now = new Date().toISOString();
  db.value.operators.upsert(
    {
      operatorId: 'op-1',
      name: 'Olga Operator',
      role: 'operator',
      pinHash: await hashPin('1234'),
      badgeHash: hashBadge(unwrap(loadBadgeKey(w.dataDir)), 'BADGE-0001'),
    },
    now,
  );
  db.value.operators.upsert(
    {
      operatorId: 'sup-1',
      name: 'Sam Supervisor',
      role: 'supervisor',
      pinHash: await hashPin('987654'),
      badgeHash: null,
    },
    now,
  );
  db.value.close();

  service = createStationService({ engine: w.engine, logger: w.logger, extraPorts: w.sim.ports, clock });
  await service.start();
  bridge = await startBridge({ service, staticDir: DIST, logger: w.logger });
  browser = await launchChromium();
  const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  page = await ctx.newPage();
  problems = watchPage(page);
  expect(bridge.url).toContain(`#token=${bridge.token}`);
  await page.goto(bridge.url);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await bridge?.close();
  await service?.stop();
  await registry?.close().catch(() => undefined);
  await w?.teardown();
});

describe('operator and supervisor UI end to end', () => {
  it('keeps the token out of the URL and shows the sign-in screen', async () => {
    await page.locator('#badge').waitFor();
    expect(page.url()).not.toContain('token');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('badge');
    await until(
      'station id',
      async () => (await page.locator('[data-testid="station-id"]').innerText()) === 'test-station',
    );
    await screenshot(page, 'login');
  });

  it('an operator signs in, scans WO-DEMO-1; 16 boards provision (PASS), the tampered one FAILs: set aside', async () => {
    await page.locator('#operator-id').fill('op-1');
    await page.locator('#pin').fill('1234');
    await page.locator('#pin').press('Enter');
    await page.locator('#wo-scan').waitFor();
    await screenshot(page, 'work-orders');
    // Long main-thread tasks while 16 boards are in progress.
    await page.evaluate(`
      globalThis.__tasks = [];
      globalThis.__mark = performance.now();
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) globalThis.__tasks.push([e.startTime, e.duration]);
      }).observe({ type: 'longtask', buffered: true });
    `);
    // The scanner types the work order and presses Enter.
    await page.locator('#wo-scan').pressSequentially('WO-DEMO-1\n', { delay: 5 });
    await page.locator('.tiles').waitFor();
    expect(await page.locator('[data-testid="work-order"]').innerText()).toBe('WO-DEMO-1');
    await until('some boards running', async () => (await tiles('running')) + (await tiles('pass')) > 0, 60_000);
    await until('every board finished', async () => (await tiles('pass')) + (await tiles('fail')) === BOARDS, 240_000);
    expect(await tiles('pass')).toBe(BOARDS - 1);
    expect(await tiles('fail')).toBe(1);

    const bad = page.locator(`.tile[data-port="${w.sim.ports[BAD]}"]`);
    expect(await bad.getAttribute('data-state')).toBe('fail');
    const badText = await bad.innerText();
    expect(badText).toContain('FAIL');
    expect(badText).toContain('Set it aside');
    expect(await bad.locator('.action-set-aside').count()).toBe(1);
    const good = await page.locator(`.tile[data-port="${w.sim.ports[0]}"]`).innerText();
    expect(good).toContain('PASS');
    expect(good).toContain(w.sim.boards[0]!.serialNumber);
    expect(await page.locator('[data-testid="announcer"]').innerText()).toMatch(/PASS|FAIL/);

    // All 16 tiles fit a 1920x1080 screen.
    const boxes = await page.locator('.tile').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().bottom));
    expect(Math.max(...boxes)).toBeLessThanOrEqual(1080);
    const lt = (await page.evaluate('({ mark: globalThis.__mark, tasks: globalThis.__tasks })')) as {
      mark: number;
      tasks: [number, number][];
    };
    const during = lt.tasks.filter(([start]) => start >= lt.mark).map(([, d]) => d);
    const before = lt.tasks.filter(([start]) => start < lt.mark).map(([, d]) => d);
    const longest = Math.max(0, ...during);
    console.log(
      `[e2e] 16 boards: longest main-thread task during the run ${longest.toFixed(0)} ms ` +
        `(${during.length} tasks > 50 ms; page load and sign-in before it: ${before.map((d) => d.toFixed(0)).join(', ') || 'none'} ms)`,
    );
    expect(longest).toBeLessThan(500);
    await screenshot(page, 'slots-pass-fail');
  }, 300_000);

  it('a supervisor elevates, finds a record by serial in the log and sees its certificate', async () => {
    await page.keyboard.press('Alt+e');
    await page.locator('#sup-id').waitFor();
    await page.locator('#sup-id').fill('sup-1');
    await page.locator('#sup-pin').fill('987654');
    await page.locator('#sup-pin').press('Enter');
    await page.locator('nav [data-view="log"]').waitFor();
    await page.keyboard.press('Alt+2');
    const serial = w.sim.boards[0]!.serialNumber;
    await page.locator('#log-text').fill(serial);
    await page.locator('#log-text').press('Enter');
    await until('one row', async () => (await page.locator('tbody tr').count()) === 1);
    expect(await page.locator('tbody tr').innerText()).toContain(serial);
    await screenshot(page, 'log');
    await page.locator('tbody tr button').press('Enter');
    await page.locator('[data-testid="cert-subject"]').waitFor();
    expect(await page.locator('[data-testid="rec-serial"]').innerText()).toBe(serial);
    expect(await page.locator('[data-testid="cert-subject"]').innerText()).toContain(serial);
    expect(await page.locator('[data-testid="cert-issuer"]').innerText()).not.toBe('');
    expect(await page.locator('[data-testid="cert-fingerprint"]').innerText()).toMatch(/^[0-9a-f:]{64,}$/i);
    await screenshot(page, 'record-detail');
    await page.keyboard.press('Escape');
    await page.locator('#log-text').waitFor();
    // Export CSV of the log as filtered (one run of that serial): a download with the header and that run.
    const [logCsv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).press('Enter'),
    ]);
    expect(logCsv.suggestedFilename()).toMatch(/^line-station-log-.+\.csv$/);
    const logLines = readFileSync(await logCsv.path(), 'utf8').split('\n');
    expect(logLines[0]).toMatch(/^startedAt,updatedAt,serialNumber,/);
    expect(logLines.filter((l) => l.includes(`,${serial},`))).toHaveLength(1);

    await page.keyboard.press('Alt+3');
    await page.locator('[data-testid="fpy"]').waitFor();
    expect(await page.locator('[data-testid="fpy"]').innerText()).toMatch(/%/);
    expect(await page.locator('svg.chart').count()).toBeGreaterThanOrEqual(2);
    await screenshot(page, 'yield');
    const [yieldCsv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).press('Enter'),
    ]);
    const yieldLines = readFileSync(await yieldCsv.path(), 'utf8').split('\n');
    expect(yieldLines[0]).toBe(
      'workOrder,boards,passedFirstTime,firstPassYield,provisioned,failed,topFailure,cycleTimeP50Ms,cycleTimeP95Ms,refused',
    );
    expect(yieldLines[1]).toMatch(/^WO-DEMO-1,\d+,\d+,/);
    expect(await page.locator('main [role="status"]').innerText()).toContain(yieldCsv.suggestedFilename());

    await page.keyboard.press('Alt+5');
    await page.locator('[data-testid="hsm-present"]').waitFor();
    expect(await page.locator('[data-testid="hsm-present"]').innerText()).toBe('Yes');
    // The station checks (station doctor) run when the view opens: every check shows its status.
    await page.locator('[data-testid="doctor-counts"]').waitFor();
    expect(await page.locator('.doctor-check').count()).toBe(DOCTOR_CHECK_IDS.length);
    for (const id of ['hsm-login', 'hsm-keys', 'certificates'])
      expect(await page.locator(`[data-testid="doctor-${id}"]`).getAttribute('data-status'), id).toBe('pass');
    await screenshot(page, 'doctor');
    await screenshot(page, 'hsm-devices');

    // Override with a confirmation dialog that needs a reason: re-provision the failed board.
    await page.keyboard.press('Alt+6');
    const row = page.locator('tbody tr', { hasText: 'board-2' });
    await row.getByRole('button', { name: 'Re-provision' }).press('Enter');
    await page.locator('#ov-reason').waitFor();
    const confirm = page.getByRole('button', { name: 'Confirm override' });
    expect(await confirm.isDisabled()).toBe(true);
    await page.keyboard.press('Escape');
    await page.locator('#ov-reason').waitFor({ state: 'detached' });
    await row.getByRole('button', { name: 'Re-provision' }).press('Enter');
    await page.locator('#ov-reason').fill('firmware reflashed by engineering');
    await screenshot(page, 'override-dialog');
    await confirm.press('Enter');
    await until('override approved', async () =>
      (await page.locator('main [role="status"]').innerText()).includes('approved'),
    );
  }, 120_000);

  it('the sync indicator goes from offline/queued to synced when the registry comes up', async () => {
    await page.keyboard.press('Alt+4');
    await page.locator('[data-testid="sync-pending"]').waitFor();
    expect(['offline', 'queued']).toContain(await indicator());
    // The last error, said from its code (SYNC_UNREACHABLE has no params), the code beside it.
    const last = page.locator('[data-testid="sync-last-error"]');
    await until('the last sync error', async () => (await last.innerText()).includes('SYNC_UNREACHABLE'));
    expect(await last.innerText()).toContain(ERROR_CATALOGUE.SYNC_UNREACHABLE.text);
    expect(await last.locator('details p').textContent()).toMatch(/not reachable/);
    await screenshot(page, 'sync-offline');
    // Export bundle: a file download with the signed bundle of the queued records.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export bundle' }).press('Enter'),
    ]);
    const file = await download.path();
    expect(readFileSync(file, 'utf8').length).toBeGreaterThan(100);
    expect(await page.locator('main [role="status"]').innerText()).toContain(download.suggestedFilename());
    // Import receipt: a forged file is refused with a clear error (nothing marked).
    await page.locator('#receipt-file').setInputFiles({
      name: 'forged.receipt.jws',
      mimeType: 'application/json',
      buffer: Buffer.from('eyJhbGciOiJFUzI1NiJ9.e30.AAAA'),
    });
    await page.locator('.banner-error').waitFor();
    expect(await page.locator('.banner-error').innerText()).toMatch(/SYNC_RECEIPT_INVALID|INPUT_INVALID/);
    await page.keyboard.press('Escape');
    await page.locator('.banner-error').waitFor({ state: 'detached' });
    await registry.restart();
    // The station's sync loop retries with backoff and pushes `sync` events; "Sync now" sends at once.
    const t0 = Date.now();
    let path = 'sync event';
    try {
      await until('synced by the background loop', async () => (await indicator()) === 'synced', 30_000);
    } catch {
      path = 'Sync now';
      await page.getByRole('button', { name: 'Sync now' }).press('Enter');
      await until('synced', async () => (await indicator()) === 'synced', 30_000);
    }
    console.log(`[e2e] sync indicator: synced ${Date.now() - t0} ms after the registry came up (${path})`);
    expect(await page.locator('[data-testid="sync-acknowledged"]').innerText()).toBe(String(BOARDS - 1));
    await screenshot(page, 'sync');
  }, 120_000);

  it('an operator signs in by scanning a badge', async () => {
    await page.getByRole('button', { name: 'Sign out' }).press('Enter');
    await page.locator('#badge').waitFor();
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('badge');
    await page.keyboard.type('BADGE-0001\n', { delay: 5 });
    await until('signed in', async () => (await page.locator('[data-testid="user"]').innerText()).includes('Olga'));
    expect(await page.locator('nav [data-view="log"]').count()).toBe(0);
  });

  it('switches to German and back; the page had no errors or CSP violations', async () => {
    await page.keyboard.press('Alt+l');
    await until('german', async () => (await page.locator('html').getAttribute('lang')) === 'de');
    expect(await page.locator('nav').innerText()).toContain('Plätze');
    expect(await page.locator('header').innerText()).toContain('Abmelden');
    await page.keyboard.press('Alt+1');
    await screenshot(page, 'slots-de');
    // The dense grid of 16 tiles in German: no step label or error text cut, at this size and at the window's default.
    expect(await cutText(page)).toEqual([]);
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(await cutText(page)).toEqual([]);
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.keyboard.press('Alt+l');
    expect(problems).toEqual([]);
  });

  it('an idle session goes back to the sign-in screen, saying why, while boards pass; signing in again works', async () => {
    expect(await page.locator('[data-testid="user"]').innerText()).toContain('Olga');
    // Attack (review finding): the UI read getSync on its own after every PASS, which kept an absent operator's session
    // alive on a busy line. Boards pass again (unplugged and plugged back) every 5 minutes of station time while
    // nobody touches the screen; the session must still end at the idle timeout after sign-in.
    const slotEvents: { port: string; state: string }[] = [];
    const unsub = service.subscribe((e) => {
      if (e.type === 'slot') slotEvents.push({ port: e.slot.port, state: e.slot.state });
      if (e.type === 'slotRemoved') slotEvents.push({ port: e.port, state: 'removed' });
    });
    const idleMs = authPolicy().sessionIdleMs;
    const port = w.sim.ports[0]!;
    try {
      for (offsetMs = 5 * 60_000; offsetMs < idleMs; offsetMs += 5 * 60_000) {
        const seen = slotEvents.length;
        await w.sim.unplug(0);
        await until('board 0 removed', () => slotEvents.slice(seen).some((e) => e.port === port));
        await w.sim.plug(0);
        await until(
          'board 0 passes again',
          () => slotEvents.slice(seen).some((e) => e.port === port && (e.state === 'already' || e.state === 'pass')),
          30_000,
        ).catch((e: Error) => {
          throw new Error(`${e.message}: ${JSON.stringify(slotEvents.slice(seen))}`);
        });
        await new Promise((r) => setTimeout(r, 1500)); // whatever the UI reads on its own after a PASS goes out
        expect(await page.locator('#session-ended').count()).toBe(0);
      }
      offsetMs = idleMs + 1000; // since sign-in; under 5 minutes since the last PASS

      // The service ends it within its 5 s check and pushes a session event with the reason.
      await until('sign-in screen', async () => (await page.locator('#session-ended').count()) === 1);
      expect(await page.locator('#session-ended').innerText()).toContain('without activity');
      await screenshot(page, 'session-ended');
      await page.locator('#badge').fill('BADGE-0001');
      await page.locator('#badge').press('Enter');
      await until('signed in', async () => (await page.locator('[data-testid="user"]').innerText()).includes('Olga'));
      expect(await page.locator('#session-ended').count()).toBe(0);
    } finally {
      unsub();
      offsetMs = 0;
    }
  }, 180_000);

  it('a station revoked by headquarters shows a persistent red banner with the time (en and de)', async () => {
    // Headquarters revokes the station (as `registry revoke-station`); the station's next pull over HTTP from the
    // running registry gets the signed station-status answer (its policy GET is refused 403) and keeps it.
    expect((await revokeStation(registry.reg.context, 'test-station')).ok).toBe(true);
    const pulled = await w.engine.lifecycle.pull();
    expect(pulled.ok ? 'ok' : pulled.error.code).toBe('FLOW_STATION_REVOKED');
    const revokedAt = w.engine.lifecycle.status().stationRevokedAt!;
    const row = await registry.reg.context.db.getStation('test-station');
    expect(row.ok && row.value?.revokedAt).toBe(revokedAt);
    const banner = page.locator('[data-testid="station-revoked"]');
    // Pushed by the service (`policy` event, checked every 5 s): no reload, no dialog.
    await banner.waitFor({ timeout: 15_000 });
    expect(await banner.getAttribute('class')).toContain('banner-error');
    const en = await banner.innerText();
    expect(en).toContain('This station has been revoked by headquarters');
    expect(en).toContain(String(new Date(revokedAt).getFullYear()));
    expect(en).toContain('signed answer of the registry');
    expect(en).toContain('Contact your supervisor');
    await page.keyboard.press('Escape'); // persistent: not dismissed
    await page.keyboard.press('Alt+l');
    await until('german banner', async () => (await banner.innerText()).includes('von der Zentrale gesperrt'));
    await screenshot(page, 'station-revoked-de');
    await page.keyboard.press('Alt+l');
    await until('english banner', async () => (await banner.innerText()).includes('revoked by headquarters'));
    expect(problems).toEqual([]);
  }, 60_000);
});
