/**
 * Sync with real parts end to end: a station (SoftHSM2, simulator boards provisioned through the full flow)
 * and a registry run by its own CLI in separate processes (`registry init`, `enroll-station`, `import`, `serve`).
 * Offline: station export -> registry import -> receipt file -> station import-receipt (modified receipt and
 * bundle refused with the reason, nothing marked). Online: `station sync` to `registry serve`, `station sync
 * --status --json` with the counts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as station } from '../../station/cli/program.js';
import { createWorld, type World } from '../harness.js';

const run = promisify(execFile);
let w: World;
let reg: string;
let serve: ChildProcess | null = null;

/** The registry CLI in its own process (its own SoftHSM2 token), on `dir` (default: the test's registry). */
async function registry(...args: string[]): Promise<{ code: number; out: string }> {
  const at = args[0] === '--at' ? args.splice(0, 2)[1]! : reg;
  try {
    const r = await run(process.execPath, ['bin/registry.mjs', ...args, '--data-dir', at], { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

/** The station CLI in process; output captured. */
async function st(...args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await station([...args, '--data-dir', w.dataDir], {
    out: (s) => lines.push(s),
    err: (s) => lines.push(s),
  });
  return { code, out: lines.join('\n') };
}

const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);

beforeAll(async () => {
  w = await createWorld({
    boards: [{ model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-BASIC' }],
  });
  reg = join(w.dir, 'registry');
  for (const i of [0, 1]) {
    const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText()}`);
  }
  const init = await registry('init', '--registry-id', 'hq-test');
  expect(init.code, init.out).toBe(0);
  const en = await registry(
    'enroll-station',
    '--id',
    'test-station',
    '--chain',
    join(w.dataDir, 'pki/station-chain.pem'),
  );
  expect(en.code, en.out).toBe(0);
}, 120_000);

/** `registry serve` on `dir` in its own process; resolves with its URL. */
async function startServe(dir: string): Promise<string> {
  serve = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--port', '0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: serve!.stdout! });
    rl.on('line', (l) => {
      const m = /listening on (http:\/\/\S+)/.exec(l);
      if (m) resolve(m[1]!);
    });
    serve!.once('exit', (c) => reject(new Error(`registry serve exited with ${c}`)));
  });
}

/** Stop the running `registry serve` (the real node process) and wait for it to exit. */
async function stopServe(): Promise<void> {
  const p = serve;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
}

afterAll(async () => {
  await stopServe();
  await w?.teardown();
});

describe('station sync commands with the registry CLI', () => {
  it('offline: export -> registry import -> import-receipt acknowledges; modified files are refused', async () => {
    // Without a registry section, sync commands explain what to do.
    const none = await st('sync', '--status');
    expect(none.code).toBe(3);
    expect(none.out).toContain('station enroll');

    const en = await st('enroll', '--registry-cert', join(reg, 'registry.pem'));
    expect(en.code, en.out).toBe(0);
    expect(en.out).toContain('registry enroll-station --id test-station');
    const cfg = JSON.parse(readFileSync(join(w.dataDir, 'config.json'), 'utf8')) as { registry: unknown };
    expect(cfg.registry).toEqual({ certificate: 'pki/registry.pem', enabled: true });

    let s = await st('sync', '--status', '--json');
    expect(JSON.parse(s.out)).toMatchObject({ registryUrl: null, pending: 2, sent: 0, acknowledged: 0, failed: 0 });

    const bundle = join(w.dir, 'out.bundle.jws');
    const ex = await st('export', '--out', bundle);
    expect(ex.code, ex.out).toBe(0);
    expect(ex.out).toContain('2 records and 0 revocation events exported');

    // A bundle with one modified byte is refused as a whole; nothing is stored.
    const text = readFileSync(bundle, 'utf8');
    const badBundle = join(w.dir, 'bad.bundle.jws');
    writeFileSync(badBundle, flip(text, Math.floor(text.length / 2)));
    const bad = await registry('import', badBundle);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/BUNDLE_INVALID/);
    expect((await registry('stats')).out).toContain('records 0');

    const receipt = join(w.dir, 'out.receipt.jws');
    const im = await registry('import', bundle, '--out', receipt);
    expect(im.code, im.out).toBe(0);
    expect(im.out).toContain('2 accepted');

    // A receipt with one modified byte (in the payload): refused with the reason, nothing marked.
    const rtext = readFileSync(receipt, 'utf8').trim();
    const dot = rtext.indexOf('.');
    const badReceipt = join(w.dir, 'bad.receipt.jws');
    writeFileSync(badReceipt, flip(rtext, dot + 10));
    const br = await st('import-receipt', badReceipt);
    expect(br.code).toBe(1);
    expect(br.out).toContain('SYNC_RECEIPT_INVALID');
    expect(br.out).toContain('nothing was marked');
    s = await st('sync', '--status', '--json');
    expect(JSON.parse(s.out)).toMatchObject({ pending: 2, acknowledged: 0 });

    const ok = await st('import-receipt', receipt);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain('2 record(s) marked as synced');
    const again = await st('import-receipt', receipt, '--json');
    expect(JSON.parse(again.out)).toMatchObject({ marked: 0, alreadySynced: 2, unknown: 0 });
    s = await st('sync', '--status', '--json');
    expect(JSON.parse(s.out)).toMatchObject({ pending: 0, sent: 0, acknowledged: 2, failed: 0 });
    expect(JSON.parse(s.out).lastReceipt).toMatchObject({ count: 2 });

    // The acknowledgement is in the audit chain, which still verifies.
    const vl = await st('verify-log');
    expect(vl.code, vl.out).toBe(0);
    const eng = await w.reopen();
    const entries = eng.store.listAudit(1, 1000).filter((e) => e.type === 'sync.acknowledged');
    expect(entries).toHaveLength(1);
    expect(entries[0]!.payload).toMatchObject({ count: 2, source: 'import' });
    expect(eng.sync?.outbox.row(eng.store.listRecords()[0]!.recordId)).toMatchObject({ state: 'acknowledged' });
    // Nothing left to export.
    const none2 = await st('export');
    expect(none2.code).toBe(1);
    expect(none2.out).toContain('nothing to export');
  }, 120_000);

  it('online: station sync to registry serve; sync --status --json has the counts', async () => {
    const url = await startServe(reg);
    const en = await st('enroll', '--registry', url, '--registry-cert', join(reg, 'registry.pem'));
    expect(en.code, en.out).toBe(0);
    // One more board, through the engine that now has sync configured.
    const eng = await w.reopen();
    expect(eng.sync?.status()).toMatchObject({ registryUrl: url, pending: 0, acknowledged: 2 });
    const p = await eng.provision({ port: w.sim.ports[2]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
    if (!p.ok) throw new Error(`${p.error.code}: ${p.error.message}`);
    expect(eng.sync?.status()).toMatchObject({ pending: 1 });

    const sy = await st('sync', '--json');
    expect(sy.code, sy.out).toBe(0);
    expect(JSON.parse(sy.out)).toMatchObject({ reachable: true, pending: 0, sent: 0, acknowledged: 3, failed: 0 });
    const s = await st('sync', '--status', '--json');
    const view = JSON.parse(s.out) as Record<string, unknown>;
    expect(view).toMatchObject({ registryUrl: url, reachable: true, pending: 0, acknowledged: 3, lastError: null });
    expect(view['lastReceipt']).toMatchObject({ count: 1 });
    const stats = await registry('stats', '--json');
    expect(JSON.parse(stats.out)).toMatchObject({ records: 3, conflicts: 0 });

    // Registry gone: sync fails with SYNC_UNREACHABLE, the status says so.
    await stopServe();
    const down = await st('sync');
    expect(down.code).toBe(1);
    expect(down.out).toContain('SYNC_UNREACHABLE');
    expect(down.out).toContain('NOT reachable');
  }, 120_000);

  it('a batch the registry refuses at authentication: sync --status says why, and it is retried under its id', async () => {
    // A registry that never enrolled this station refuses the batch before reading it (AUTH_SIGNATURE_INVALID: it does
    // not say whether the station is unknown or the signature wrong).
    const other = join(w.dir, 'registry-other');
    const init = await registry('--at', other, 'init', '--registry-id', 'hq-other');
    expect(init.code, init.out).toBe(0);
    const url = await startServe(other);
    const en = await st('enroll', '--registry', url, '--registry-cert', join(other, 'registry.pem'));
    expect(en.code, en.out).toBe(0);
    const eng = await w.reopen();
    const p = await eng.provision({ port: w.sim.ports[3]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
    if (!p.ok) throw new Error(`${p.error.code}: ${p.error.message}`);
    for (const attempt of [1, 2]) {
      const sy = await st('sync');
      expect(sy.code, sy.out).toBe(1);
      expect(sy.out).toContain('AUTH_SIGNATURE_INVALID');
      const s = await st('sync', '--status', '--json');
      const view = JSON.parse(s.out) as { sent: number; failingBatches: Record<string, unknown>[] };
      expect(view.sent).toBe(1);
      expect(view.failingBatches).toHaveLength(1);
      expect(view.failingBatches[0]).toMatchObject({ records: 1, attempts: attempt, code: 'SYNC_REJECTED' });
      expect(String(view.failingBatches[0]!['message'])).toContain('AUTH_SIGNATURE_INVALID');
    }
    const text = await st('sync', '--status');
    expect(text.out).toMatch(
      /batch \S+ \(1 records, 2 attempts\) not accepted: SYNC_REJECTED: .*AUTH_SIGNATURE_INVALID/,
    );
    await stopServe();
  }, 120_000);
});
