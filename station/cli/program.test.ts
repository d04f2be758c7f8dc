/**
 * The `station` program table (station/cli/program.ts) as users meet it: `--help` and `help <command>` of every command in
 * the table (the loop reads the table: a new command is covered without a hand list) print that command's usage
 * and exit 0 without touching a data dir; `station init --help`, an unknown option and `station --help` in a real
 * process (bin/station.mjs); the exit codes `station --help` prints are the table's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, STATION_EXIT, stationProgram } from './program.js';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'station-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `station <argv>` in this process, output captured. */
async function station(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** `station <argv>` as its own process, run from an empty folder (its default data dir would be there). */
function stationProcess(argv: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'station.mjs'), ...argv], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_'))),
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const groups = [
  ...new Set(stationProgram.commands.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]!)),
];

describe('station <command> --help', () => {
  it.each(stationProgram.commands.map((c) => [c.name, c] as const))(
    '%s --help and help %s print its usage, exit 0',
    async (name, cmd) => {
      const dataDir = join(dir, `never-${name.replace(' ', '-')}`);
      const words = name.split(' ');
      const shown: string[] = [];
      for (const argv of [
        [...words, '--help'],
        [...words, '-h'],
        ['help', ...words],
        // --help wins over everything else on the line, even options the command would refuse.
        [...words, '--data-dir', dataDir, '--bogus', '--help'],
      ]) {
        const r = await station(argv);
        expect(r.code, argv.join(' ')).toBe(0);
        expect(r.err).toBe('');
        shown.push(r.out);
      }
      expect(new Set(shown).size).toBe(1);
      const usage = shown[0]!;
      expect(usage.startsWith(`usage: station ${name} `)).toBe(true);
      expect(usage).toContain(cmd.summary);
      for (const option of [...Object.keys(cmd.options), ...Object.keys(stationProgram.common)])
        expect(usage, option).toMatch(new RegExp(`--${option}\\b`));
      for (const p of cmd.positionals ?? []) expect(usage).toContain(`  ${p.name}  ${p.help}`);
      expect(existsSync(dataDir)).toBe(false);
    },
  );

  it.each(groups)('%s --help and help %s list the commands of the group, exit 0', async (group) => {
    const members = stationProgram.commands.filter((c) => c.name.startsWith(`${group} `));
    for (const argv of [
      [group, '--help'],
      ['help', group],
    ]) {
      const r = await station(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out.startsWith(`usage: station ${group} <`)).toBe(true);
      for (const c of members) expect(r.out).toContain(c.name);
    }
    const bare = await station([group]);
    expect(bare.code).toBe(STATION_EXIT.usage.code);
    expect(bare.err).toMatch(new RegExp(`^station ${group}: missing command`));
  });

  it('station with no command prints the usage, exit 2; an unknown command names it', async () => {
    const none = await station([]);
    expect(none.code).toBe(STATION_EXIT.usage.code);
    expect(none.err).toMatch(/^usage: station <command>/);
    const bad = await station(['provison']);
    expect(bad.code).toBe(STATION_EXIT.usage.code);
    expect(bad.err).toMatch(/^station: unknown command "provison"/);
  });
});

describe('the station process', () => {
  it('station init --help prints the usage of init, exit 0, and creates no data dir', () => {
    const r = stationProcess(['init', '--help']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^usage: station init /);
    expect(r.out).toMatch(/--attestation-root FILE/);
    expect(existsSync(join(dir, '.data'))).toBe(false);
  }, 60_000);

  it('an unknown option is a usage error naming it, with the usage of the command, exit 2', () => {
    const r = stationProcess(['records', '--data-dir', join(dir, 'none'), '--bogus']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^station records: Unknown option '--bogus'/);
    expect(r.err).toContain('usage: station records ');
    expect(existsSync(join(dir, 'none'))).toBe(false);
  }, 60_000);

  it('station --help lists every command and exactly the exit codes of the table', () => {
    const r = stationProcess(['--help']);
    expect(r.code).toBe(0);
    for (const c of stationProgram.commands)
      expect(r.out).toMatch(new RegExp(`\\n  ${esc(c.name)} +${esc(c.summary)}\\n`));
    const printed = r.out
      .split('\nexit codes:\n')[1]!
      .trimEnd()
      .split('\n')
      .map((l) => /^ *(\d+) {2}(.*)$/.exec(l)!)
      .map((m) => ({ code: Number(m[1]), meaning: m[2] }));
    expect(printed).toEqual(Object.values(STATION_EXIT).sort((a, b) => a.code - b.code));
  }, 60_000);
});
