import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { boardSpecs, parseArgs, parseFault } from './cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'ls-sim-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Live (not zombie) processes of `program` whose command line mentions `dir` (orphan check). */
function processesFor(program: 'socat' | 'swtpm', dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const zombie = /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (!zombie && cmd.startsWith(`${program}\0`) && cmd.includes(dir)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}
const socatsFor = (dir: string): number[] => processesFor('socat', dir);

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

describe('argument parsing', () => {
  it('parses every option and fault', () => {
    const r = parseArgs([
      '--boards', '3', '--dir', '/x', '--state-dir', '/y', '--latency-keygen', '50', '--latency-flash', '20', '--baud', '9600',
      '--seed', '7', '--fault', '1:dropBytes=0.25', '--fault', '*:stale', '--fault', '2:disconnectOn=installCert',
    ]); // prettier-ignore
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      boards: 3,
      dir: '/x',
      stateDir: '/y',
      baud: 9600,
      seed: 7,
      latency: { keygen: 50, flash: 20 },
    });
    const specs = boardSpecs(r.value);
    expect(specs.map((s) => s.model)).toEqual(['LS-SIM-SE', 'LS-SIM-BASIC', 'LS-SIM-SE']);
    expect(specs[0]!.faults).toEqual({ stale: true });
    expect(specs[1]!.faults).toEqual({ dropBytes: 0.25, stale: true });
    expect(specs[2]!.faults).toEqual({ stale: true, disconnectOn: 'installCert', replugAfterMs: 2000 });
    const basic = parseArgs(['--boards', '2', '--model', 'basic']);
    expect(basic.ok && boardSpecs(basic.value).map((s) => s.model)).toEqual(['LS-SIM-BASIC', 'LS-SIM-BASIC']);
    expect(r.value.trace).toBe(false);
    const traced = parseArgs(['--boards', '1', '--trace']);
    expect(traced.ok && traced.value.trace).toBe(true);
  });

  it('--tpm-boards adds TPM boards after the LS boards; TPM faults by their CLI names', () => {
    const r = parseArgs([
      '--boards', '2', '--tpm-boards', '3', '--fault', '2:tpm-untrusted-ek', '--fault', '3:tpm-rogue-template',
      '--fault', '4:tpm-disconnect-on=Create', '--fault', '*:tpm-stale-quote=false', '--fault', '4:tpm-lockout',
    ]); // prettier-ignore
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const specs = boardSpecs(r.value);
    expect(specs.map((s) => s.model)).toEqual([
      'LS-SIM-SE',
      'LS-SIM-BASIC',
      'LS-SIM-TPM-ECC',
      'LS-SIM-TPM-RSA',
      'LS-SIM-TPM-ECC',
    ]);
    expect(specs[2]!.faults).toEqual({ tpmUntrustedEk: true, tpmStaleQuote: false });
    expect(specs[3]!.faults).toEqual({ tpmRogueTemplate: true, tpmStaleQuote: false });
    expect(specs[4]!.faults).toEqual({
      tpmDisconnectOn: 'Create',
      replugAfterMs: 2000,
      tpmStaleQuote: false,
      tpmLockout: true,
    });
    for (const name of ['tpm-other-tpm', 'tpm-pcr-mismatch']) expect(parseFault(name)).toMatchObject({ ok: true });
    expect(parseArgs(['--boards', '0', '--tpm-boards', '1'])).toMatchObject({ ok: true });
    for (const bad of [
      ['--boards', '0'],
      ['--tpm-boards', '17'],
      ['--tpm-boards', '1', '--fault', '3:tpm-lockout'],
      ['--fault', '0:tpm-disconnect-on=Frobnicate'],
      ['--fault', '0:tpm-lockout=maybe'],
    ])
      expect(parseArgs(bad).ok, bad.join(' ')).toBe(false);
  });

  it('rejects bad input with a message', () => {
    for (const bad of [
      ['--boards', '0'],
      ['--boards', 'x'],
      ['--model', 'FOO'],
      ['--fault', '9:stale'],
      ['--fault', '0:dropBytes=2'],
      ['--fault', '0:disconnectOn=reboot'],
      ['--fault', 'nope'],
      ['--baud', '-1'],
      ['--frobnicate'],
    ]) {
      const r = parseArgs(bad);
      expect(r.ok, bad.join(' ')).toBe(false);
    }
    expect(parseFault('refuseCert=false')).toEqual({ ok: true, value: { refuseCert: false } });
    expect(parseFault('corruptBytes')).toEqual({ ok: true, value: { corruptBytes: 1 } });
  });
});

describe('CLI process', () => {
  it('prints the ready JSON line first, answers stdin commands, and leaves no socat after SIGTERM', async () => {
    const dir = join(tmp, 'run');
    const child = spawn(TSX, ['test/sim/main.ts', '--boards', '3', '--dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const waitFor = async (pred: () => boolean, what: string) => {
      for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(pred(), what).toBe(true);
    };
    await waitFor(() => out.includes('\n'), 'ready line');
    const ready = JSON.parse(out.split('\n')[0]!) as { ready: boolean; ports: string[]; vendorRoot: string };
    expect(ready.ready).toBe(true);
    expect(ready.ports).toEqual([0, 1, 2].map((i) => join(dir, `board-${i}`)));
    expect(readFileSync(ready.vendorRoot, 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(socatsFor(dir)).toHaveLength(3);
    child.stdin.write('unplug 1\n');
    await waitFor(() => !existsSync(ready.ports[1]!), 'unplug via stdin');
    child.stdin.write('fault 0 refuseCert\nstate 0\n');
    await waitFor(() => out.includes('"hasKey":false'), 'state via stdin');
    expect(out).toContain('"refuseCert":true');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(socatsFor(dir)).toEqual([]);
    for (const p of ready.ports) expect(existsSync(p)).toBe(false);
  });

  it('stops cleanly when whoever read its stdout is gone (no EPIPE crash): exit 0, no socat left', async () => {
    const dir = join(tmp, 'reader-gone');
    const child = spawn(TSX, ['test/sim/main.ts', '--boards', '2', '--dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 300 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(socatsFor(dir)).toHaveLength(2);
    child.stdout.destroy(); // the reader goes away: the shutdown's log lines then hit a closed pipe
    child.kill('SIGTERM');
    expect(await exited, err).toBe(0);
    expect(err).not.toContain('EPIPE');
    expect(socatsFor(dir)).toEqual([]);
  });

  it.each(['throw', 'SIGKILL'])(
    'kills its socat children when the process dies (%s) without stopping the simulator',
    async (how) => {
      const dir = join(tmp, `crash-${how}`);
      const script = join(process.cwd(), 'test', 'sim', `.crash-${process.pid}.ts`);
      writeFileSync(
        script,
        `import { startSimulator } from './simulator.js';\n` +
          `const sim = await startSimulator({ dir: ${JSON.stringify(dir)}, boards: 2 });\n` +
          `console.log(sim.ports.length);\n` +
          (how === 'throw' ? `throw new Error('test crashed');\n` : `process.kill(process.pid, 'SIGKILL');\n`),
      );
      try {
        const child = spawn(TSX, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
        expect(out.trim()).toBe('2');
        expect(code).not.toBe(0);
        await new Promise((r) => setTimeout(r, 200));
        expect(socatsFor(dir)).toEqual([]);
      } finally {
        rmSync(script, { force: true });
      }
    },
  );

  it('a simulator with TPM boards killed with SIGKILL leaves no swtpm and no socat behind', async () => {
    const dir = join(tmp, 'tpm-kill');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/sim/main.ts', '--boards', '1', '--tpm-boards', '1', '--dir', dir],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    for (let i = 0; i < 600 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    const ready = JSON.parse(out.split('\n')[0]!) as {
      ports: string[];
      tpmVendorRoot: string;
      tpmVendorIssuer: string;
      boards: { model: string }[];
    };
    expect(ready.boards.map((b) => b.model)).toEqual(['LS-SIM-SE', 'LS-SIM-TPM-ECC']);
    for (const f of [ready.tpmVendorRoot, ready.tpmVendorIssuer])
      expect(readFileSync(f, 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(processesFor('swtpm', dir)).toHaveLength(1);
    expect(socatsFor(dir)).toHaveLength(2);
    child.kill('SIGKILL');
    await exited;
    for (let i = 0; i < 40 && processesFor('swtpm', dir).length + socatsFor(dir).length > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(processesFor('swtpm', dir)).toEqual([]);
    expect(socatsFor(dir)).toEqual([]);
  }, 60_000);
});
