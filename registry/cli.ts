/**
 * The `registry` command line (bin/registry.mjs): one declarative program (core/cli/program.ts) assembled from the
 * features' command tables (registry/<feature>/commands.ts). Here, once: the exit codes, the common options, and
 * what runs around every command (the acting role, opening the data dir, database and HSM as the command declares:
 * registry/cli/open.ts). `registry --help` lists the commands and exit codes; `registry <command> --help` and
 * `registry help <command>` print that command's usage. Imports core/, registry/cli/ and the features' commands.ts;
 * what a command opens (registry/cli/open.ts, role.ts) and registry/http/compose.ts (the ingest hooks the `import`
 * command uses) when it runs, so that `registry --help` loads no package (test/build/build.test.ts).
 */
import {
  commandUsage,
  runProgram,
  type Command,
  type OptionTable,
  type ParsedArgs,
  type Program,
} from '../core/cli/program.js';
import { escapeControlChars } from '../core/display-text.js';
import { restrictUmask } from '../native/data-dir.js';
import {
  TOKEN_ENV,
  type OpenRegistryCommand,
  type Outcome,
  type Out,
  type RegistryCommand,
  type RegistryEnv,
} from './cli/command.js';
import { AUDIT_COMMANDS } from './audit/commands.js';
import { COMMISSIONING_COMMANDS } from './commissioning/commands.js';
import { HTTP_COMMANDS } from './http/commands.js';
import { ingestCommands } from './ingest/commands.js';
import { POLICY_COMMANDS } from './policy/commands.js';
import { REVOCATION_COMMANDS } from './revocation/commands.js';
import { STATION_KEY_COMMANDS } from './station-keys/commands.js';
import { STATION_COMMANDS } from './stations/commands.js';
import { TRANSITION_COMMANDS } from './transitions/commands.js';

/** The exit codes of `registry`, by outcome (registry/cli/command.ts `Outcome`). */
export const EXIT = {
  ok: { code: 0, meaning: 'success' },
  refused: { code: 1, meaning: 'refused (a rejected bundle, an unknown device or station, a finding)' },
  usage: { code: 2, meaning: 'usage error' },
  notReady: { code: 3, meaning: 'registry not ready (configuration, HSM, database)' },
  internal: { code: 70, meaning: 'internal error' },
} as const;

/** Options every command takes. */
const COMMON: OptionTable = {
  'data-dir': {
    type: 'string',
    arg: 'D',
    help: 'the registry data dir (default $LINE_STATION_REGISTRY_DATA_DIR, else ./.data/registry)',
  },
  db: { type: 'string', arg: 'URL', help: 'the database: sqlite:<path> or postgres://... (default: config.json)' },
  as: {
    type: 'string',
    arg: 'ROLE',
    help: 'admin (the default: access to the data dir is the admin) or security-officer',
  },
  'token-file': {
    type: 'string',
    arg: 'FILE',
    help: `the security officer token (or $${TOKEN_ENV}): never on the command line`,
  },
  verbose: { type: 'boolean', help: 'debug lines in the log' },
};

/** Every registry command, feature by feature, in `registry --help` order. */
const COMMANDS: readonly RegistryCommand[] = [
  ...STATION_COMMANDS,
  ...COMMISSIONING_COMMANDS,
  ...HTTP_COMMANDS,
  ...ingestCommands(async () => (await import('./http/compose.js')).lifecycleIngestHooks),
  ...AUDIT_COMMANDS,
  ...TRANSITION_COMMANDS,
  ...REVOCATION_COMMANDS,
  ...POLICY_COMMANDS,
  ...STATION_KEY_COMMANDS,
];

/** The `registry` program: its commands print through the `Out` given to `main`. */
export const REGISTRY: Program<Out, keyof typeof EXIT> = {
  name: 'registry',
  summary:
    "Line Station's headquarters registry: stations' records ingested exactly once, each device's identity lifecycle,\n" +
    'CRLs and OCSP, the signed policy (docs/registry-api.md, docs/lifecycle.md).',
  common: COMMON,
  exit: EXIT,
  commands: COMMANDS.map(programCommand),
};

function programCommand(spec: RegistryCommand): Command<Out> {
  const { name, summary, details, options, positionals } = spec;
  return {
    name,
    summary,
    ...(details ? { details } : {}),
    options,
    ...(positionals ? { positionals } : {}),
    run: async (a, out) => exitCode(spec, await runCommand(spec, a, out), out),
  };
}

/** The exit code of an outcome; a usage error is printed with the command's usage, as runProgram prints its own. */
function exitCode(spec: RegistryCommand, outcome: Outcome, out: Out): number {
  if (typeof outcome === 'string') return EXIT[outcome].code;
  const cmd = REGISTRY.commands.find((c) => c.name === spec.name)!;
  out.err(`${REGISTRY.name} ${spec.name}: ${outcome.usage}\n\n${commandUsage(REGISTRY, cmd)}`);
  return EXIT.usage.code;
}

/** Open what the command declares, run it, close. */
async function runCommand(spec: RegistryCommand, a: ParsedArgs, out: Out): Promise<Outcome> {
  const acts = spec.opens === 'registry' && spec.acting !== undefined && spec.acting !== 'admin';
  if (!acts && ((a.values['as'] ?? 'admin') !== 'admin' || a.values['token-file'] !== undefined)) {
    // Only the lifecycle commands act as another role; the others are the data dir's admin.
    out.err(`error AUTH_FORBIDDEN: ${spec.name} is admin-only (--as / --token-file are for the lifecycle commands)`);
    return 'refused';
  }
  // What a command opens is loaded when it runs: `registry --help` loads no package (test/build/build.test.ts).
  const { openConfig, openDataDir, withRegistry } = await import('./cli/open.js');
  const dir = openDataDir(a, spec.opens === 'data-dir', out);
  if ('outcome' in dir) return dir.outcome;
  if (spec.opens === 'data-dir') return spec.run(a, dir.env);
  const cfg = openConfig(a, dir.env);
  if ('outcome' in cfg) return cfg.outcome;
  if (spec.opens === 'config') return spec.run(a, cfg.env);
  return withRegistry(spec, cfg.env, (env) => runOpened(spec, a, env));
}

/** A command on the open registry, as the role `--as` names. */
async function runOpened(spec: OpenRegistryCommand, a: ParsedArgs, env: Omit<RegistryEnv, 'role'>): Promise<Outcome> {
  const { actingRole } = await import('./cli/role.js');
  const acting = actingRole(a, spec.acting ?? 'admin', env);
  if ('outcome' in acting) return acting.outcome;
  return spec.run(a, { ...env, role: acting.role });
}

/**
 * Run a registry command on a registry that is already open (its context, as `serve` or a test holds it), with the
 * options as parsed; returns the exit code. What `main` does once it has opened the data dir's registry.
 */
export async function runOpenCommand(
  name: string,
  positionals: readonly string[],
  values: ParsedArgs['values'],
  env: Omit<RegistryEnv, 'role'>,
): Promise<number> {
  const spec = COMMANDS.find((c) => c.name === name);
  if (spec?.opens !== 'registry') {
    env.out.err(`${REGISTRY.name}: ${name} does not run on an open registry`);
    return EXIT.usage.code;
  }
  return exitCode(spec, await runOpened(spec, { positionals, values }, env), env.out);
}

const stdio: Out = { log: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

/** Run the registry CLI; returns the exit code (`serve` resolves when the server stops on SIGINT/SIGTERM). */
export async function main(argv: readonly string[], raw: Out = stdio): Promise<number> {
  // Private files from the first write; printed text (device serials, models, ...) with control and bidi
  // characters made visible (docs/architecture.md "Data directory permissions", core/display-text.ts).
  restrictUmask();
  const out: Out = {
    log: (s) => raw.log(escapeControlChars(s, { keepLineBreaks: true })),
    err: (s) => raw.err(escapeControlChars(s, { keepLineBreaks: true })),
  };
  return runProgram(REGISTRY, argv, out, { out: out.log, err: out.err });
}
