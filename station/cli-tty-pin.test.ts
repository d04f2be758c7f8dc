/**
 * PINs typed at a terminal (real `station` processes on a pty made by script(1)): the terminal must not echo them
 * (a PIN on the screen is read over the shoulder and stays in the scrollback), and a second PIN prompt in the same
 * run (`--reprovision --supervisor`) must still read its own line.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { must } from '../testkit/pki/test-util.js';
import { openStationDb } from '../native/store/index.js';
import { createWorld, type World } from '../test/harness.js';
import { addOperators } from '../test/operators-fixture.js';
import { verifyPin } from './service/index.js';

const OP_PIN = '2468';
const SUP_PIN = '135790';
const NEW_SUP_PIN = '97531864';
const WO = 'WO-DEMO-1';
let w: World;

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: OP_PIN },
    { id: 'sup-1', role: 'supervisor', pin: SUP_PIN },
  ]);
  await w.engine.close(); // the station processes open their own
}, 120_000);

afterAll(async () => {
  await w?.reopen();
  await w?.teardown();
});

/**
 * Run `station <args>` with its standard input, output and error on a pseudo-terminal; `answers` are typed (with
 * Enter) one by one, each after the prompt that asks for it appeared. Answers the whole terminal transcript.
 */
async function onTty(
  args: string[],
  answers: { after: RegExp; type: string }[],
): Promise<{ code: number | null; text: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = ['exec', quote(process.execPath), 'bin/station.mjs', ...args.map(quote)].join(' ');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_')));
  // script(1) makes the pty; its own process group, killed as a whole if the test gives up.
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...env, TERM: 'dumb' },
    detached: true,
  });
  let text = '';
  let next = 0;
  const feed = () => {
    const a = answers[next];
    if (a && a.after.test(text.slice(consumed))) {
      consumed = text.length;
      next++;
      child.stdin.write(`${a.type}\r`);
    }
  };
  let consumed = 0;
  child.stdout.on('data', (d: Buffer) => {
    text += d.toString('utf8');
    feed();
  });
  child.stderr.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearTimeout(timer);
  return { code, text };
}

describe('PINs typed at a terminal', () => {
  it('operator add: the new supervisor PIN is not echoed, and is the one stored', async () => {
    const r = await onTty(
      [
        'operator',
        'add',
        '--data-dir',
        w.dataDir,
        '--id',
        'sup-tty',
        '--name',
        'Tty Supervisor',
        '--role',
        'supervisor',
      ],
      [{ after: /PIN/, type: NEW_SUP_PIN }],
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toContain('operator sup-tty (supervisor) saved');
    expect(r.text).not.toContain(NEW_SUP_PIN);
    const db = must(openStationDb(join(w.dataDir, 'station.db')));
    try {
      expect(await verifyPin(NEW_SUP_PIN, db.operators.get('sup-tty')!.pinHash)).toBe(true);
    } finally {
      db.close();
    }
  }, 60_000);

  it('provision --reprovision --supervisor: both PINs typed at the terminal, neither echoed', async () => {
    const base = ['provision', '--data-dir', w.dataDir, '--work-order', WO, '--port', w.sim.ports[0]!];
    const first = await onTty([...base, '--operator', 'op-1'], [{ after: /PIN/, type: OP_PIN }]);
    expect(first.code, first.text).toBe(0);
    expect(first.text).toContain('PASS');
    expect(first.text).not.toContain(OP_PIN);
    const rework = await onTty(
      [...base, '--operator', 'op-1', '--reprovision', '--supervisor', 'sup-1'],
      [
        { after: /operator op-1: PIN/, type: OP_PIN },
        { after: /supervisor sup-1: PIN/, type: SUP_PIN },
      ],
    );
    expect(rework.code, rework.text).toBe(0);
    expect(rework.text).toContain('PASS');
    expect(rework.text).not.toContain(OP_PIN);
    expect(rework.text).not.toContain(SUP_PIN);
  }, 120_000);
});
