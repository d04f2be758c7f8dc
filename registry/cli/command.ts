/**
 * What a `registry` command is (the shared part every feature's commands file imports): its declaration (name,
 * summary, its own options and positionals, what it opens before it runs, which role may run it) and the outcome its
 * handler returns. registry/cli.ts turns the declarations into the program (core/cli/program.ts) and the outcomes
 * into the exit codes, which are defined there once. Imports core/ and the registry services' types only.
 */
import type { OptionSpec, OptionTable, ParsedArgs, PositionalSpec } from '../../core/cli/program.js';
import type { Logger } from '../../core/ports.js';
import type { RegistryConfig } from '../setup/keys.js';
import { type LifecycleContext } from '../common/context.js';

/** How a command ended; registry/cli.ts maps each to its exit code. `{usage}`: a usage error with this message. */
export type Outcome = 'ok' | 'refused' | 'notReady' | 'internal' | { readonly usage: string };

/** A usage error: printed with the command's usage, exit code `usage`. */
export const usage = (message: string): Outcome => ({ usage: message });

/** Where a command prints (already made safe for a terminal by registry/cli.ts). */
export interface Out {
  readonly log: (s: string) => void;
  readonly err: (s: string) => void;
}

/** The acting role of a command (docs/lifecycle.md "Roles"). */
export type Role = 'admin' | 'security-officer';

/** What `init` gets: the data dir (made private when new), its log, the output. */
export interface DirEnv {
  readonly dataDir: string;
  readonly logger: Logger;
  readonly out: Out;
}

/** What `serve` gets: also the data dir's configuration and the database URL (`--db` or config.json). */
export interface ConfigEnv extends DirEnv {
  readonly config: RegistryConfig;
  readonly dbUrl: string;
}

/** What a command on the open registry gets: its context (database; HSM signer when the command declares `hsm`). */
export interface RegistryEnv {
  readonly ctx: LifecycleContext;
  readonly dataDir: string;
  readonly out: Out;
  readonly role: Role;
}

/**
 * Who may run a command: `admin` (the default: whoever can read the data dir; `--as security-officer` is refused
 * before anything is opened), `admin-or-officer` (the lifecycle commands), or the admin only, with the refusal the
 * security officer gets over HTTP too.
 */
export type Acting = 'admin' | 'admin-or-officer' | { readonly adminOnly: string };

interface Declared {
  readonly name: string;
  /** One line, shown in `registry --help`. */
  readonly summary: string;
  /** Further lines shown by `registry <command> --help`. */
  readonly details?: string;
  /** This command's own options (the common ones are registry/cli.ts's). */
  readonly options: OptionTable;
  readonly positionals?: readonly PositionalSpec[];
}

/** A registry command: what it opens decides what its handler gets. */
export type RegistryCommand =
  | (Declared & { readonly opens: 'data-dir'; run(a: ParsedArgs, env: DirEnv): Promise<Outcome> })
  | (Declared & { readonly opens: 'config'; run(a: ParsedArgs, env: ConfigEnv): Promise<Outcome> })
  | (Declared & {
      readonly opens: 'registry';
      /** Opens the registry HSM in this process (signs receipts, re-signs CRLs); otherwise a signer that refuses. */
      readonly hsm: boolean;
      readonly acting?: Acting;
      run(a: ParsedArgs, env: RegistryEnv): Promise<Outcome>;
    });

/** A command that runs on the open registry. */
export type OpenRegistryCommand = Extract<RegistryCommand, { opens: 'registry' }>;

/** Environment variable with the security officer token for `--as security-officer` (or `--token-file`). */
export const TOKEN_ENV = 'LINE_STATION_REGISTRY_TOKEN';

/** `--json`, the option of every command that prints a result. */
export const JSON_OPTION: Readonly<{ json: OptionSpec }> = {
  json: { type: 'boolean', help: 'print the result as JSON' },
};

/** Print `x` as indented JSON. */
export function printJson(out: Out, x: unknown): void {
  out.log(JSON.stringify(x, null, 2));
}

/** A string option, `undefined` when absent or empty (`--reason ''` is no reason). */
export function given(a: ParsedArgs, name: string): string | undefined {
  const v = a.values[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The `code` or message of a failed file operation, for an error line. */
export function fileProblem(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}
