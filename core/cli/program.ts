/**
 * Declarative command-line programs: each program (station, registry) is one table of commands, each command owns
 * its options, positionals, usage and handler; the exit codes are defined once per program. `prog --help`,
 * `prog help <command>` and `prog <command> --help` print usage and exit 0; a usage error prints the command's usage
 * on stderr and exits with the program's usage code. Parsing is node:util parseArgs in strict mode (unknown options
 * are usage errors). A command name may have two words (`operator add`): `prog operator --help` lists that group.
 * Pure: the caller passes argv, the output sinks and its context.
 */
import { parseArgs } from 'node:util';

/** One option of a command (or common to every command of a program). */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** Shown after the flag in usage: `--data-dir D`. Strings only; default `VALUE`. */
  readonly arg?: string;
  readonly help: string;
  /** A usage error when absent (checked after parsing). */
  readonly required?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** What parsing gives a handler: option values by name, and positionals in order. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | string[] | boolean[] | undefined>>;
  readonly positionals: readonly string[];
}

export interface PositionalSpec {
  readonly name: string;
  readonly help: string;
  readonly required?: boolean;
}

export interface Command<Ctx> {
  /** One word, or a group and a word (`operator add`): `prog operator --help` lists the group's commands. */
  readonly name: string;
  /** One line, shown in the program's command list. */
  readonly summary: string;
  /** Further paragraphs shown by `<command> --help` (plain text, already wrapped). */
  readonly details?: string;
  readonly options: OptionTable;
  readonly positionals?: readonly PositionalSpec[];
  /**
   * What the usage line shows after the command name, for a command whose handler checks its own arguments (in its
   * order, with its messages); default: the required options and positionals, then `[options]`.
   */
  readonly synopsis?: string;
  /** The command's exit code (one of the program's). */
  run(args: ParsedArgs, ctx: Ctx): Promise<number> | number;
}

export interface ExitCode {
  readonly code: number;
  readonly meaning: string;
}

export interface Program<Ctx, E extends string = string> {
  readonly name: string;
  readonly summary: string;
  /** Options every command accepts (for example --data-dir, --verbose). */
  readonly common: OptionTable;
  /** Exit codes, defined once; `usage` is required (usage errors), `ok` is 0. */
  readonly exit: { readonly ok: ExitCode; readonly usage: ExitCode } & Readonly<Record<E, ExitCode>>;
  readonly commands: readonly Command<Ctx>[];
}

export interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /**
   * Resolves once the output buffered so far has been taken by the reader (a pipe that is read slowly holds a long
   * listing back): commands that stream page by page await it between pages, so memory stays bounded. Absent: no
   * buffering to wait for (captured output in tests).
   */
  readonly drain?: () => Promise<void>;
}

/** A usage error a handler can throw (after parsing): printed with the command's usage, exits with `usage`. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function flag(name: string, o: OptionSpec): string {
  const short = o.short ? `-${o.short}, ` : '';
  const arg = o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : '';
  return `${short}--${name}${arg}${o.multiple ? ' ...' : ''}`;
}

function optionLines(table: OptionTable): string[] {
  const entries = Object.entries(table);
  const width = Math.min(34, Math.max(0, ...entries.map(([n, o]) => flag(n, o).length)));
  return entries.map(([n, o]) => {
    const f = flag(n, o);
    const pad = f.length > width ? `\n  ${' '.repeat(width)}` : ' '.repeat(width - f.length);
    return `  ${f}${pad}  ${o.help}${o.required ? ' (required)' : ''}`;
  });
}

function synopsis(program: Program<unknown>, cmd: Command<unknown>): string {
  if (cmd.synopsis !== undefined) return [program.name, cmd.name, cmd.synopsis].join(' ');
  const req = Object.entries(cmd.options)
    .filter(([, o]) => o.required)
    .map(([n, o]) => flag(n, o));
  const pos = (cmd.positionals ?? []).map((p) => (p.required ? p.name : `[${p.name}]`));
  return [program.name, cmd.name, ...pos, ...req, '[options]'].join(' ');
}

/** `prog <command> --help`: synopsis, details, the command's options, the common options. */
export function commandUsage<Ctx>(program: Program<Ctx>, cmd: Command<Ctx>): string {
  const lines = [`usage: ${synopsis(program as Program<unknown>, cmd as Command<unknown>)}`, '', cmd.summary];
  if (cmd.details) lines.push('', cmd.details);
  if (cmd.positionals?.length) {
    lines.push('', 'arguments:');
    for (const p of cmd.positionals) lines.push(`  ${p.name}  ${p.help}`);
  }
  if (Object.keys(cmd.options).length) lines.push('', 'options:', ...optionLines(cmd.options));
  if (Object.keys(program.common).length) lines.push('', 'common options:', ...optionLines(program.common));
  return lines.join('\n');
}

/** `prog --help`: the command list and the exit codes. */
export function programUsage<Ctx>(program: Program<Ctx>): string {
  const width = Math.max(...program.commands.map((c) => c.name.length));
  const exits = Object.values(program.exit as Record<string, ExitCode>).sort((a, b) => a.code - b.code);
  return [
    `usage: ${program.name} <command> [options]`,
    '',
    program.summary,
    '',
    'commands:',
    ...program.commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `${program.name} <command> --help prints that command's usage.`,
    '',
    'common options:',
    ...optionLines(program.common),
    '',
    'exit codes:',
    ...exits.map((e) => `  ${String(e.code).padStart(2)}  ${e.meaning}`),
  ].join('\n');
}

/** `prog <group> --help`: the commands of a group (`operator add`, `operator revoke`). */
export function groupUsage<Ctx>(program: Program<Ctx>, group: string): string {
  const cmds = groupCommands(program, group);
  const width = Math.max(...cmds.map((c) => c.name.length));
  return [
    `usage: ${program.name} ${group} <${cmds.map((c) => c.name.slice(group.length + 1)).join('|')}> [options]`,
    '',
    'commands:',
    ...cmds.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `${program.name} ${group} <command> --help prints that command's usage.`,
  ].join('\n');
}

function groupCommands<Ctx>(program: Program<Ctx>, group: string): Command<Ctx>[] {
  return program.commands.filter((c) => c.name.startsWith(`${group} `));
}

/** The command the leading words of `argv` name (the longest name that matches), and the arguments after it. */
function findCommand<Ctx>(
  program: Program<Ctx>,
  argv: readonly string[],
): { cmd: Command<Ctx>; rest: string[] } | undefined {
  let best: { cmd: Command<Ctx>; words: number } | undefined;
  for (const cmd of program.commands) {
    const words = cmd.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && words.length > (best?.words ?? 0)) best = { cmd, words: words.length };
  }
  return best && { cmd: best.cmd, rest: argv.slice(best.words) };
}

function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Parse `argv` (without node and the script) and run the command it names. Returns the exit code. */
export async function runProgram<Ctx>(
  program: Program<Ctx>,
  argv: readonly string[],
  ctx: Ctx,
  io: Io,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(programUsage(program));
    return program.exit.usage.code;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const target = findCommand(program, rest)?.cmd;
    const group = rest[0] !== undefined && groupCommands(program, rest[0]).length > 0 ? rest[0] : undefined;
    io.out(target ? commandUsage(program, target) : group ? groupUsage(program, group) : programUsage(program));
    return program.exit.ok.code;
  }
  const found = findCommand(program, argv);
  if (!found) {
    if (groupCommands(program, name).length === 0) {
      io.err(`${program.name}: unknown command "${name}"\n\n${programUsage(program)}`);
      return program.exit.usage.code;
    }
    if (wantsHelp(rest)) {
      io.out(groupUsage(program, name));
      return program.exit.ok.code;
    }
    const what =
      rest[0] === undefined || rest[0].startsWith('-') ? 'missing command' : `unknown command "${name} ${rest[0]}"`;
    io.err(`${program.name} ${name}: ${what}\n\n${groupUsage(program, name)}`);
    return program.exit.usage.code;
  }
  const { cmd } = found;
  const args = found.rest;
  if (wantsHelp(args)) {
    io.out(commandUsage(program, cmd));
    return program.exit.ok.code;
  }
  const options = { ...program.common, ...cmd.options };
  let parsed: ParsedArgs;
  try {
    const p = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(options).map(([n, o]) => [
          n,
          { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) },
        ]),
      ),
      allowPositionals: (cmd.positionals?.length ?? 0) > 0,
      strict: true,
    });
    parsed = { values: p.values as ParsedArgs['values'], positionals: p.positionals };
  } catch (e) {
    io.err(`${program.name} ${cmd.name}: ${(e as Error).message}\n\n${commandUsage(program, cmd)}`);
    return program.exit.usage.code;
  }
  const missing = Object.entries(cmd.options)
    .filter(([n, o]) => o.required && parsed.values[n] === undefined)
    .map(([n]) => `--${n}`);
  const maxPos = cmd.positionals?.length ?? 0;
  const minPos = (cmd.positionals ?? []).filter((p) => p.required).length;
  const posProblem =
    parsed.positionals.length > maxPos
      ? `unexpected argument "${parsed.positionals[maxPos]}"`
      : parsed.positionals.length < minPos
        ? `missing ${(cmd.positionals ?? [])[parsed.positionals.length]!.name}`
        : undefined;
  if (missing.length || posProblem) {
    const msg = [missing.length ? `missing ${missing.join(', ')}` : '', posProblem ?? ''].filter(Boolean).join('; ');
    io.err(`${program.name} ${cmd.name}: ${msg}\n\n${commandUsage(program, cmd)}`);
    return program.exit.usage.code;
  }
  try {
    return await cmd.run(parsed, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`${program.name} ${cmd.name}: ${e.message}\n\n${commandUsage(program, cmd)}`);
      return program.exit.usage.code;
    }
    throw e;
  }
}

/** The exit table as numbers by name, for handlers: `EXIT.notReady` is 3 when `notReady` is `{ code: 3, ... }`. */
export function exitCodes<K extends string>(exit: Readonly<Record<K, ExitCode>>): { readonly [N in K]: number } {
  return Object.fromEntries(Object.entries<ExitCode>(exit).map(([n, e]) => [n, e.code])) as { [N in K]: number };
}

/** Typed accessors for handlers: `str(args, 'data-dir')`, `flagOn(args, 'json')`, `list(args, 'port')`. */
export const str = (a: ParsedArgs, n: string): string | undefined => {
  const v = a.values[n];
  return typeof v === 'string' ? v : undefined;
};
export const flagOn = (a: ParsedArgs, n: string): boolean => a.values[n] === true;
export const list = (a: ParsedArgs, n: string): string[] => {
  const v = a.values[n];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
};
/** A positive integer option, or a UsageError naming it. */
export function positiveInt(a: ParsedArgs, n: string): number | undefined {
  const v = str(a, n);
  if (v === undefined) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(v)) throw new UsageError(`--${n} must be a positive integer`);
  return Number(v);
}
