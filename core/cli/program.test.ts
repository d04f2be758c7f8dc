import { describe, expect, it } from 'vitest';
import {
  commandUsage,
  exitCodes,
  groupUsage,
  list,
  positiveInt,
  programUsage,
  runProgram,
  str,
  UsageError,
  type Program,
} from './program.js';

interface Ctx {
  calls: string[];
}
const program: Program<Ctx, 'failed'> = {
  name: 'demo',
  summary: 'A demo program.',
  common: { 'data-dir': { type: 'string', arg: 'D', help: 'data directory' } },
  exit: {
    ok: { code: 0, meaning: 'success' },
    failed: { code: 1, meaning: 'it failed' },
    usage: { code: 2, meaning: 'usage error' },
  },
  commands: [
    {
      name: 'copy',
      summary: 'Copy a thing.',
      details: 'Copies FILE to --out.',
      options: {
        out: { type: 'string', arg: 'FILE', help: 'where to', required: true },
        port: { type: 'string', multiple: true, help: 'ports' },
        count: { type: 'string', help: 'how many' },
      },
      positionals: [{ name: 'FILE', help: 'the source', required: true }],
      run(a, ctx) {
        ctx.calls.push(
          `copy ${a.positionals[0]} ${str(a, 'out')} ${list(a, 'port').join(',')} ${positiveInt(a, 'count')}`,
        );
        return 0;
      },
    },
    { name: 'fail', summary: 'Always fails.', options: {}, run: () => 1 },
    {
      name: 'thing add',
      summary: 'Add a thing.',
      synopsis: '--id ID [--tag T]',
      options: { id: { type: 'string', help: 'which' }, tag: { type: 'string', help: 'a tag' } },
      run(a, ctx) {
        ctx.calls.push(`add ${str(a, 'id')}`);
        return 0;
      },
    },
    {
      name: 'thing drop',
      summary: 'Drop a thing.',
      options: { id: { type: 'string', help: 'which', required: true } },
      run(a, ctx) {
        ctx.calls.push(`drop ${str(a, 'id')}`);
        return 0;
      },
    },
    {
      name: 'bad',
      summary: 'Throws a usage error.',
      options: {},
      run: () => {
        throw new UsageError('no good');
      },
    },
  ],
};

function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: Ctx = { calls: [] };
  return runProgram(program, argv, ctx, { out: (s) => out.push(s), err: (s) => err.push(s) }).then((code) => ({
    code,
    out: out.join('\n'),
    err: err.join('\n'),
    calls: ctx.calls,
  }));
}

describe('declarative CLI programs', () => {
  it('runs a command with its options, positionals and common options', async () => {
    const r = await run(['copy', 'a.txt', '--out', 'b.txt', '--port', 'p1', '--port', 'p2', '--data-dir', 'd']);
    expect(r.code).toBe(0);
    expect(r.calls).toEqual(['copy a.txt b.txt p1,p2 undefined']);
  });

  it('prints a command usage on <command> --help and on help <command>, exit 0', async () => {
    for (const argv of [
      ['copy', '--help'],
      ['copy', '-h'],
      ['help', 'copy'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain('usage: demo copy FILE --out FILE [options]');
      expect(r.out).toContain('Copies FILE to --out.');
      expect(r.out).toContain('--data-dir D');
      expect(r.calls).toEqual([]);
    }
  });

  it('prints the program usage with every command and exit code', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/copy\s+Copy a thing\./);
    expect(r.out).toMatch(/ 1 {2}it failed/);
    expect(programUsage(program)).toBe(r.out);
  });

  it('refuses unknown commands, unknown options, missing required options and positionals with the usage code', async () => {
    const cases: [string[], RegExp][] = [
      [[], /usage: demo <command>/],
      [['nope'], /unknown command "nope"/],
      [['copy', 'a', '--out', 'b', '--bogus'], /Unknown option '--bogus'/],
      [['copy', 'a'], /missing --out/],
      [['copy', '--out', 'b'], /missing FILE/],
      [['copy', 'a', 'b', '--out', 'c'], /unexpected argument "b"/],
      [['copy', 'a', '--out', 'b', '--count', '0'], /--count must be a positive integer/],
      [['fail', 'x'], /Unexpected argument 'x'/],
      [['bad'], /demo bad: no good/],
    ];
    for (const [argv, msg] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.calls).toEqual([]);
    }
  });

  it('runs two-word commands; prints their usage and the group usage; refuses an unknown or missing one', async () => {
    expect((await run(['thing', 'add', '--id', 'x'])).calls).toEqual(['add x']);
    expect((await run(['thing', 'drop', '--id', 'y'])).calls).toEqual(['drop y']);
    for (const argv of [
      ['thing', 'add', '--help'],
      ['help', 'thing', 'add'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain('usage: demo thing add --id ID [--tag T]\n\nAdd a thing.');
    }
    for (const argv of [
      ['thing', '--help'],
      ['help', 'thing'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.out).toBe(groupUsage(program, 'thing'));
      expect(r.out).toMatch(/usage: demo thing <add\|drop> \[options\]/);
      expect(r.out).toMatch(/thing drop\s+Drop a thing\./);
    }
    const cases: [string[], RegExp][] = [
      [['thing'], /^demo thing: missing command\n\nusage: demo thing <add\|drop>/],
      [['thing', '--id', 'x'], /^demo thing: missing command/],
      [['thing', 'nope'], /^demo thing: unknown command "thing nope"/],
      [['thing', 'drop'], /^demo thing drop: missing --id\n\nusage: demo thing drop --id VALUE \[options\]/],
      [['thing', 'add', '--bogus'], /^demo thing add: Unknown option '--bogus'/],
    ];
    for (const [argv, msg] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.calls).toEqual([]);
    }
  });

  it('gives the exit codes by name', () => {
    expect(exitCodes(program.exit)).toEqual({ ok: 0, failed: 1, usage: 2 });
  });

  it('returns the handler exit code', async () => {
    expect((await run(['fail'])).code).toBe(1);
    expect(commandUsage(program, program.commands[1]!)).toContain('usage: demo fail [options]');
  });
});
