/**
 * `station provision` / `station watch` sign a registered operator in (simulated board, SoftHSM2, SQLite): an unknown
 * operator, a wrong PIN, a PIN on the command line and `--reprovision` without supervisor credentials are refused
 * with a coded error before any board I/O, and nothing is stored; the CLI's attempts count in the same table as
 * the UI's (a lock from the CLI holds in the UI and the other way round); with a supervisor, re-provisioning works
 * and is in the audit log under the supervisor's name.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../test/harness.js';
import { addOperators } from '../test/operators-fixture.js';
import { main } from './cli/program.js';
import { authPolicy } from './service/auth.js';
import { call, createStationService } from './service/index.js';

const OP_PIN = '2468';
const SUP_PIN = '135790';
const WO = 'WO-DEMO-1';
let w: World;

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; text: string }> {
  const out: string[] = [];
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
    return { code, text: out.join('\n') };
  } finally {
    for (const k of ['LINE_STATION_PIN', 'LINE_STATION_SUPERVISOR_PIN']) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

const base = () => ['--data-dir', w.dataDir, '--work-order', WO];
const provision = () => ['provision', ...base(), '--port', w.sim.ports[0]!];
/** What a refused command must not have left behind. */
function nothingStored(before: { records: number; audit: number }) {
  expect(w.engine.store.countRecords()).toBe(before.records);
  expect(w.engine.store.listAudit(0, 100_000)).toHaveLength(before.audit);
  expect(w.engine.store.findActiveRun(w.sim.boards[0]!.chipId)).toBeNull();
}
const snapshot = () => ({
  records: w.engine.store.countRecords(),
  audit: w.engine.store.listAudit(0, 100_000).length,
});

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: OP_PIN },
    { id: 'sup-1', role: 'supervisor', pin: SUP_PIN },
    { id: 'op-2', role: 'operator', pin: '9753' },
  ]);
}, 120_000);

afterAll(async () => {
  await w?.teardown();
});

describe('station provision / watch sign-in', () => {
  it('refuses an unknown operator, a wrong PIN, a missing operator and a PIN on the command line; nothing stored', async () => {
    const before = snapshot();
    const ghost = await cli([...provision(), '--operator', 'ghost'], { LINE_STATION_PIN: OP_PIN });
    expect(ghost.code).toBe(1);
    expect(ghost.text).toContain('AUTH_INVALID_CREDENTIALS');
    const wrong = await cli([...provision(), '--operator', 'op-1'], { LINE_STATION_PIN: '1357' });
    expect(wrong.code).toBe(1);
    expect(wrong.text).toContain('AUTH_INVALID_CREDENTIALS');
    expect((await cli(provision(), { LINE_STATION_PIN: OP_PIN })).code).toBe(2);
    const argv = await cli([...provision(), '--operator', 'op-1', '--pin', OP_PIN]);
    expect(argv.code).toBe(2);
    const watch = await cli(['watch', ...base(), '--operator', 'ghost', '--exit-when-done'], {
      LINE_STATION_PIN: OP_PIN,
    });
    expect(watch.code).toBe(1);
    expect(watch.text).toContain('AUTH_INVALID_CREDENTIALS');
    for (const r of [ghost, wrong, watch]) expect(r.text).not.toContain(OP_PIN);
    nothingStored(before);
  }, 60_000);

  it('provisions as a registered operator (PIN from a file); --reprovision needs supervisor credentials', async () => {
    const pinFile = join(w.dir, 'op-1.pin');
    writeFileSync(pinFile, `${OP_PIN}\n`);
    chmodSync(pinFile, 0o644); // explicitly: main() set umask 077 in this process, so a create mode would not stick
    const open = await cli([...provision(), '--operator', 'op-1', '--pin-file', pinFile]);
    expect(open.code).toBe(3);
    expect(open.text).toMatch(/CONFIG_INSECURE_PERMISSIONS: .*op-1\.pin has mode 0644: group or others can read it/);
    expect(open.text).not.toContain(OP_PIN);
    chmodSync(pinFile, 0o600);
    const ok = await cli([...provision(), '--operator', 'op-1', '--pin-file', pinFile]);
    expect(ok.code, ok.text).toBe(0);
    expect(ok.text).toContain('PASS');
    expect(w.engine.store.listRecords({ limit: 1 })[0]?.operator).toBe('op-1');

    const before = snapshot();
    const noSup = await cli([...provision(), '--operator', 'op-1', '--reprovision'], { LINE_STATION_PIN: OP_PIN });
    expect(noSup.code).toBe(1);
    expect(noSup.text).toContain('AUTH_FORBIDDEN');
    const opAsSup = await cli([...provision(), '--operator', 'op-1', '--reprovision', '--supervisor', 'op-2'], {
      LINE_STATION_PIN: OP_PIN,
      LINE_STATION_SUPERVISOR_PIN: '9753',
    });
    expect(opAsSup.code).toBe(1);
    expect(opAsSup.text).toContain('AUTH_FORBIDDEN');
    const badSup = await cli([...provision(), '--operator', 'op-1', '--reprovision', '--supervisor', 'sup-1'], {
      LINE_STATION_PIN: OP_PIN,
      LINE_STATION_SUPERVISOR_PIN: '000000',
    });
    expect(badSup.code).toBe(1);
    expect(badSup.text).toContain('AUTH_INVALID_CREDENTIALS');
    nothingStored(before);

    const rework = await cli([...provision(), '--operator', 'op-1', '--reprovision', '--supervisor', 'sup-1'], {
      LINE_STATION_PIN: OP_PIN,
      LINE_STATION_SUPERVISOR_PIN: SUP_PIN,
    });
    expect(rework.code, rework.text).toBe(0);
    expect(w.engine.store.countRecords()).toBe(before.records + 1);
    const approvals = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'override.reprovision');
    expect(approvals.at(-1)?.payload).toMatchObject({ supervisor: 'sup-1', operator: 'op-1' });
  }, 90_000);

  it('a real `station provision` process reads the PIN from stdin', async () => {
    await w.engine.close(); // the child opens its own engine
    try {
      const child = spawn(process.execPath, ['bin/station.mjs', ...provision(), '--operator', 'op-1'], {
        cwd: join(import.meta.dirname, '..'),
        stdio: ['pipe', 'pipe', 'pipe'],
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_'))),
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      // The argv the kernel shows for the process (what `ps` prints), read while it waits for the PIN.
      const argv = await new Promise<string>((r) =>
        setTimeout(() => r(readFileSync(`/proc/${child.pid}/cmdline`, 'latin1')), 200),
      );
      child.stdin.end(`${OP_PIN}\n`);
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      expect(code, text).toBe(0);
      expect(text).toContain('PASS');
      expect(argv).toContain('provision');
      expect(argv).not.toContain(OP_PIN);
    } finally {
      await w.reopen();
    }
  }, 90_000);

  it('CLI attempts count with the UI: a lock from the CLI holds in the UI, the right PIN does not lift it', async () => {
    const max = authPolicy().pin.maxAttempts;
    const codes: number[] = [];
    for (let i = 0; i < max; i++)
      codes.push((await cli([...provision(), '--operator', 'op-2'], { LINE_STATION_PIN: String(1000 + i) })).code);
    expect(codes).toEqual(Array(max).fill(1));
    const locked = await cli([...provision(), '--operator', 'op-2'], { LINE_STATION_PIN: '9753' });
    expect(locked.code).toBe(1);
    expect(locked.text).toContain('AUTH_LOCKED');
    const svc = createStationService({ engine: w.engine, logger: w.logger });
    try {
      const r = await call(svc, 'ui', 'signIn', { operatorId: 'op-2', pin: '9753' });
      expect(r.ok ? 'ok' : r.error.code).toBe('AUTH_LOCKED');
    } finally {
      await svc.stop();
    }
  }, 60_000);
});

describe('PIN files are opened once, without following a link, and checked on that descriptor', () => {
  it('refuses a symlinked or group-readable operator PIN file and a symlinked HSM PIN file; nothing stored', async () => {
    const before = snapshot();
    // A private PIN file the attacker cannot read, and a link to it (the swap the old stat-then-read allowed).
    const real = join(w.dir, 'op-1-real.pin');
    writeFileSync(real, `${OP_PIN}\n`, { mode: 0o600 });
    chmodSync(real, 0o600);
    const link = join(w.dir, 'op-1-link.pin');
    symlinkSync(real, link);
    const linked = await cli([...provision(), '--operator', 'op-1', '--pin-file', link]);
    expect(linked.code).toBe(3);
    expect(linked.text).toMatch(/CONFIG_INSECURE_PERMISSIONS: .*op-1-link\.pin is a symbolic link/);

    const group = join(w.dir, 'op-1-group.pin');
    writeFileSync(group, `${OP_PIN}\n`);
    chmodSync(group, 0o640);
    const readable = await cli([...provision(), '--operator', 'op-1', '--pin-file', group]);
    expect(readable.code).toBe(3);
    expect(readable.text).toMatch(/CONFIG_INSECURE_PERMISSIONS: .*op-1-group\.pin has mode 0640/);

    // A FIFO planted at the path is refused at once (no hang waiting for a writer).
    const fifo = join(w.dir, 'op-1-fifo.pin');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    const piped = await cli([...provision(), '--operator', 'op-1', '--pin-file', fifo]);
    expect(piped.code).toBe(3);
    expect(piped.text).toMatch(/CONFIG_INSECURE_PERMISSIONS: .*op-1-fifo\.pin is not a regular file/);

    // The HSM user PIN file of the data dir (config hsm.pin.file) swapped for a link to a private copy.
    const hsmPin = join(w.dataDir, 'secrets', 'hsm-user.pin');
    const moved = join(w.dataDir, 'secrets', 'hsm-user.pin.real');
    renameSync(hsmPin, moved);
    symlinkSync(moved, hsmPin);
    try {
      const hsm = await cli([...provision(), '--operator', 'op-1'], { LINE_STATION_PIN: OP_PIN });
      expect(hsm.code).toBe(3);
      expect(hsm.text).toMatch(/CONFIG_INSECURE_PERMISSIONS: .*hsm-user\.pin is a symbolic link/);
      expect(hsm.text).not.toContain(readFileSync(moved, 'utf8').trim());
    } finally {
      renameSync(moved, hsmPin);
    }
    for (const r of [linked, readable, piped]) expect(r.text).not.toContain(OP_PIN);
    nothingStored(before);
    // The real file, opened directly, still works.
    const good = await cli([...provision(), '--operator', 'op-1', '--pin-file', real]);
    expect(good.text).not.toMatch(/CONFIG_INSECURE_PERMISSIONS|AUTH_INVALID_CREDENTIALS|INPUT_INVALID/);
  }, 60_000);

  it('`station scrap` needs a supervisor, erases the board, audits it and queues the revocation', async () => {
    const chipId = w.sim.boards[0]!.chipId;
    expect(w.engine.store.findCurrentRecord(chipId)).not.toBeNull();
    const scrap = () => ['scrap', ...base(), '--port', w.sim.ports[0]!, '--reason', 'cracked PCB'];
    const before = snapshot();
    const alone = await cli([...scrap(), '--operator', 'op-1'], { LINE_STATION_PIN: OP_PIN });
    expect(alone.code).toBe(1);
    expect(alone.text).toContain('AUTH_FORBIDDEN');
    expect(w.engine.store.listAudit(0, 100_000)).toHaveLength(before.audit);
    expect((await cli([...scrap().slice(0, -2), '--operator', 'op-1'], { LINE_STATION_PIN: OP_PIN })).code).toBe(2);

    const done = await cli([...scrap(), '--operator', 'op-1', '--supervisor', 'sup-1'], {
      LINE_STATION_PIN: OP_PIN,
      LINE_STATION_SUPERVISOR_PIN: SUP_PIN,
    });
    expect(done.code, done.text).toBe(0);
    expect(done.text).toContain(`SCRAPPED ${w.sim.boards[0]!.serialNumber}`);
    const audit = w.engine.store.listAudit(0, 100_000);
    expect(audit.find((e) => e.type === 'override.scrap')?.payload).toMatchObject({
      supervisor: 'sup-1',
      operator: 'op-1',
      reason: 'cracked PCB',
      chipId,
    });
    const scrapped = audit.find((e) => e.type === 'board.scrapped')?.payload;
    expect(scrapped).toMatchObject({
      chipId,
      certificateSerial: w.engine.store.findCurrentRecord(chipId)!.certificateSerial,
    });
    expect(scrapped?.['revocationRequest']).toMatch(/^[0-9a-f-]{36}$/);
    // The board no longer holds the certificate of its record (erased by its firmware): never "already provisioned",
    // and `station provision` says so: IDENTITY LOST, its own exit code (identityLost, 6).
    const again = await cli(['provision', ...base(), '--port', w.sim.ports[0]!, '--operator', 'op-1'], {
      LINE_STATION_PIN: OP_PIN,
    });
    expect(again.code).toBe(6);
    expect(again.text).toContain('IDENTITY LOST  BOARD_CERT_MISSING');
    expect(again.text).not.toContain('PASS');
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  }, 60_000);
});
