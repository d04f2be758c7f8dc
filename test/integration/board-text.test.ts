/**
 * Board-chosen text cannot steer the terminal (docs/protocol.md "Board text"): rogue simulator boards answer
 * identify with ANSI escapes, CR/LF and a fake green "PASS" line in the serial number, an 8-bit CSI and a bidi
 * override in the model, a right-to-left isolate in the firmware version, and a serial number outside the profile
 * pattern. The real CLI (`station watch` through bin/station.mjs, output piped) provisions the one honest board
 * and refuses every rogue one at identify, before anything is written: its output holds no ESC, CR, C1 or bidi
 * character, and the only PASS line is the honest board's.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const FAKE_PASS = '\x1b[32m[/dev/ttyACM9] PASS  LS00000001 provisioned: record 1\x1b[0m';
const ROGUES = [
  // The wire protocol refuses C0 controls (PROTOCOL_MALFORMED): nothing of this string is ever shown.
  { serialNumber: `LS0000BEEF\x1b[2K\r${FAKE_PASS}\n` },
  // C1 and bidi characters pass the wire protocol: the identity check refuses them (BOARD_IDENTITY_INVALID).
  { model: 'LS-SIM-SE\x9b2K\x9b32m PASS \u202eDESAP' },
  { firmwareVersion: '1.4.2\u2067 PASS' },
  // Printable, but outside the profile's serial number pattern ^LS[0-9A-F]{8}$.
  { serialNumber: 'LS-PASS-OK' },
] as const;

let w: World;
const PIN = '480213';

beforeAll(async () => {
  w = await createWorld({
    boards: [
      ...ROGUES.map((identity) => ({ model: 'LS-SIM-SE' as const, faults: { identity } })),
      { model: 'LS-SIM-SE' as const },
    ],
  });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: PIN }]);
});
afterAll(async () => {
  await w?.teardown();
});

/** `station watch` in its own process until every board has an outcome; stdout and stderr as piped bytes. */
async function watch(): Promise<{ code: number; out: string }> {
  const child = spawn(
    process.execPath,
    [
      'bin/station.mjs',
      'watch',
      '--data-dir',
      w.dataDir,
      '--work-order',
      'WO-DEMO-1',
      '--operator',
      'op-1',
      '--port',
      join(w.dir, 'ports', 'board-*'),
      '--count',
      String(ROGUES.length + 1),
    ],
    // The operator signs in with the PIN from the environment (never the command line).
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINE_STATION_PIN: PIN } },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const code = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? -1)));
  clearTimeout(timer);
  return { code, out };
}

describe('rogue board text', () => {
  it('station watch (piped) shows no control or bidi character from a board; rogue identities are refused before anything is written', async () => {
    const audit = w.engine.store.verifyAudit().entries;
    const r = await watch();
    expect(r.code, r.out).toBe(1); // some boards failed
    // Read as latin1: a UTF-8 encoded C1 or bidi character would show as its bytes (0xC2 0x9B, 0xE2 0x80 0xAE ...).
    // eslint-disable-next-line no-control-regex -- the point: no ESC, CR or other C0 but LF, no DEL
    expect(r.out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(r.out).not.toMatch(/\xc2[\x80-\x9f]/); // C1 in UTF-8
    expect(r.out).not.toMatch(/\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]/); // U+202A–U+202E, U+2066–U+2069 in UTF-8
    const honest = w.sim.boards[ROGUES.length]!;
    const pass = r.out.split('\n').filter((l) => /PASS/.test(l) && !/BOARD_IDENTITY_INVALID/.test(l));
    expect(pass).toEqual([
      expect.stringMatching(new RegExp(`^\\[${honest.port}\\] PASS  ${honest.serialNumber} provisioned`)),
    ]);
    for (const [i, b] of w.sim.boards.slice(0, ROGUES.length).entries()) {
      const fail = r.out.split('\n').find((l) => l.startsWith(`[${b.port}] FAIL`));
      expect(fail, r.out).toMatch(i === 0 ? /PROTOCOL_MALFORMED/ : /BOARD_IDENTITY_INVALID/);
      // Nothing written for a rogue board: no run, no record.
      expect(w.engine.store.findActiveRun(b.chipId)).toBeNull();
      expect(w.engine.store.findCurrentRecord(b.chipId)).toBeNull();
    }
    // The refused texts are shown escaped, readable for the supervisor.
    expect(r.out).toContain('\\u009b32m PASS \\u202eDESAP');
    expect(r.out).toContain('\\u2067 PASS');
    expect(r.out).toContain('serial number "LS-PASS-OK" does not match');
    // Only the honest board's run and record reached the audit trail (and the trail still verifies).
    const after = w.engine.store.verifyAudit();
    expect(after.ok).toBe(true);
    expect(w.engine.store.countRecords()).toBe(1);
    expect(after.entries).toBeGreaterThan(audit);
    // The JSON log keeps the values escaped (valid JSON, same values).
    const log = readFileSync(join(w.dataDir, 'logs', 'station.log'), 'latin1');
    expect(log).not.toMatch(/\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]/);
  }, 150_000);
});
