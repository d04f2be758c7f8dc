/**
 * A board that lost the identity it got at this station, at the CLI (issue 13: "a non-zero CLI exit"): the real
 * `station` program (node bin/station.mjs, its own process) with its output piped, as a script runs it. The board
 * was provisioned, then erased by its firmware: `station provision` and `station watch` print IDENTITY LOST with
 * BOARD_CERT_MISSING and its guidance, never PASS, and exit 6 (`identityLost` of `station --help`'s table) through a
 * `| cat` pipeline with pipefail; the refusal is in `station report log` (outcome refused, its code); a supervisor's
 * `--reprovision` gives the board a new identity (exit 0) and the next run finds it already provisioned.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATION_EXIT } from '../../station/cli/exit.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const ROOT = join(import.meta.dirname, '..', '..');
const WO = 'WO-DEMO-1';
const OP_PIN = '1234';
const SUP_PIN = '987654';
let w: World;
let recordId = '';

/** The environment of a shell at the line: no LINE_STATION_* of this process but the runtime choice. */
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_') || k === 'LINE_STATION_RUNTIME'),
);

/**
 * `node bin/station.mjs ARGS 2>&1 | cat` in bash with pipefail: the pipeline's exit code is the station's. Async:
 * the simulator's boards answer from this process.
 */
async function piped(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('bash', ['-o', 'pipefail', '-c', `node bin/station.mjs ${quoted} 2>&1 | cat`], {
    cwd: ROOT,
    env: { ...baseEnv, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
  return { code, out };
}

const provisionArgs = (...extra: string[]) => [
  'provision',
  '--data-dir',
  w.dataDir,
  '--port',
  w.sim.ports[0]!,
  '--work-order',
  WO,
  '--operator',
  'op-1',
  ...extra,
];

beforeAll(async () => {
  w = await createWorld({ boards: [{}] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: OP_PIN },
    { id: 'sup-1', role: 'supervisor', pin: SUP_PIN },
  ]);
  const r = await w.engine.provision({ port: w.sim.ports[0]!, workOrder: WO, operator: 'op-1' });
  if (!r.ok || r.value.status !== 'provisioned') throw new Error(`provision: ${JSON.stringify(r)}`);
  recordId = r.value.record.recordId;
  // The board's firmware erases its identity (key, certificate, lock), as an erase on the bench would.
  const z = await w.engine.zeroize({ port: w.sim.ports[0]!, workOrder: WO });
  if (!z.ok) throw new Error(`zeroize: ${z.error.code} ${z.error.message}`);
}, 120_000);

afterAll(async () => {
  await w?.teardown();
});

describe('a board that lost its identity, at the CLI through a pipe', () => {
  it('station --help documents exit 6; station provision says IDENTITY LOST and exits 6, never PASS', async () => {
    expect(STATION_EXIT.identityLost.code).toBe(6);
    const help = await piped(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain(`   6  ${STATION_EXIT.identityLost.meaning}\n`);

    const r = await piped(provisionArgs(), { LINE_STATION_PIN: OP_PIN });
    expect(r.code, r.out).toBe(6);
    expect(r.out).toContain(`[${w.sim.ports[0]}] IDENTITY LOST  BOARD_CERT_MISSING: `);
    expect(r.out).toContain(recordId);
    expect(r.out).toContain('Set it aside; only a supervisor may re-provision it');
    expect(r.out).not.toMatch(/\bPASS\b/);
    expect(r.out).not.toContain('already provisioned');
  }, 120_000);

  it('station watch --exit-when-done counts it apart and exits 6', async () => {
    const r = await piped(
      [
        'watch',
        '--data-dir',
        w.dataDir,
        '--work-order',
        WO,
        '--operator',
        'op-1',
        '--port',
        w.sim.ports[0]!,
        '--exit-when-done',
      ],
      { LINE_STATION_PIN: OP_PIN },
    );
    expect(r.code, r.out).toBe(6);
    expect(r.out).toContain(`[${w.sim.ports[0]}] IDENTITY LOST  BOARD_CERT_MISSING: `);
    expect(r.out).toContain('0 boards passed, 0 failed, 1 identity lost (set aside)');
    expect(r.out).not.toMatch(/\bPASS\b/);
  }, 120_000);

  it('the log report lists it as refused with its code (not a pass, not a failed run)', async () => {
    const r = await piped(['report', 'log', '--data-dir', w.dataDir, '--outcome', 'refused']);
    expect(r.code, r.out).toBe(0);
    const [header, ...rows] = r.out.trimEnd().split('\n');
    const col = header!.split(',');
    const refused = rows.map((l) => l.split(',')).filter((c) => c[col.indexOf('errorCode')] === 'BOARD_CERT_MISSING');
    expect(refused).toHaveLength(1);
    expect(refused[0]![col.indexOf('serialNumber')]).toBe(w.sim.boards[0]!.serialNumber);
    expect(refused[0]![col.indexOf('outcome')]).toBe('refused');
    // provision and watch refused it twice on the same port within the window: one row, two attempts
    expect(refused[0]![col.indexOf('attempts')]).toBe('2');
  }, 120_000);

  it('a supervisor re-provisions it (exit 0, a new record); then it is already provisioned (exit 0)', async () => {
    const r = await piped(provisionArgs('--reprovision', '--supervisor', 'sup-1'), {
      LINE_STATION_PIN: OP_PIN,
      LINE_STATION_SUPERVISOR_PIN: SUP_PIN,
    });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/\] PASS {2}\S+ provisioned: record /);
    expect(r.out).not.toContain(`record ${recordId},`);
    const again = await piped(provisionArgs(), { LINE_STATION_PIN: OP_PIN });
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('already provisioned');
  }, 180_000);
});
