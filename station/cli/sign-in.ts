/**
 * The sign-in of `station provision`, `station watch` and `station scrap`: a registered operator (and for
 * `--reprovision` and `scrap` a supervisor) signs in with the same sessions, attempt accounting, roles and registry policy as the UI. Their
 * options are declared here, once. PINs from station/cli/pin-input.ts, never the command line. Imports core/,
 * native/, station/ (engine, service).
 */
import { str, type OptionTable, type ParsedArgs } from '../../core/cli/program.js';
import type { OperationName } from '../../core/api.js';
import { fail } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import type { Engine } from '../engine.js';
import { readSecret } from './pin-input.js';

/** The operator who signs in (provision, watch). */
export const OPERATOR_OPTIONS = {
  operator: { type: 'string', arg: 'O', help: 'the registered operator who signs in (required)' },
  'pin-file': {
    type: 'string',
    arg: 'F',
    help: "the operator's PIN: first line of F (yours, mode 0600 or 0400); else $LINE_STATION_PIN, else stdin",
  },
} as const satisfies OptionTable;

/** The supervisor who approves what the operator may not do alone (provision --reprovision). */
export const SUPERVISOR_OPTIONS = {
  supervisor: { type: 'string', arg: 'S', help: 'the supervisor who approves, when the operator is not one' },
  'supervisor-pin-file': {
    type: 'string',
    arg: 'F',
    help: "the supervisor's PIN file; else $LINE_STATION_SUPERVISOR_PIN, else the next line of stdin",
  },
} as const satisfies OptionTable;

/** The StationApi operation whose role (core/api.ts OPERATIONS, the UI's role table) each CLI action needs. */
export const CLI_OPERATION = {
  provision: 'retrySlot',
  reprovision: 'approveOverride',
  scrap: 'approveOverride',
  watch: 'selectWorkOrder',
  label: 'reprintLabel',
} as const satisfies Record<string, OperationName>;

/** Who signs in for a CLI action, and where their PINs come from. */
export interface CliCredentials {
  readonly operatorId: string;
  /** PIN file (else $LINE_STATION_PIN, else the first line of stdin). */
  readonly pinFile?: string;
  readonly supervisorId?: string;
  /** Supervisor PIN file (else $LINE_STATION_SUPERVISOR_PIN, else the next line of stdin). */
  readonly supervisorPinFile?: string;
}

/** The operator (and supervisor) of a provision/watch command line; null when --operator is missing. */
export function credentials(args: ParsedArgs): CliCredentials | null {
  const operatorId = str(args, 'operator');
  if (!operatorId) return null;
  const opt = (k: string) => str(args, k);
  return {
    operatorId,
    ...(opt('pin-file') ? { pinFile: opt('pin-file')! } : {}),
    ...(opt('supervisor') ? { supervisorId: opt('supervisor')! } : {}),
    ...(opt('supervisor-pin-file') ? { supervisorPinFile: opt('supervisor-pin-file')! } : {}),
  };
}

/**
 * Sign a registered operator in for a CLI action (same sessions, attempt accounting and registry policy as the
 * UI), and a supervisor too when the action's operation needs one and the operator is not one. Returns who acts.
 */
export async function authenticateCli(
  engine: Engine,
  action: keyof typeof CLI_OPERATION,
  c: CliCredentials,
  logger: Logger,
): Promise<Result<{ operatorId: string; supervisorId: string | null }>> {
  // Loaded when a command signs in, not at start (bin/runtime.mjs: `station --help` loads no schema or service).
  const [{ OPERATIONS }, { authPolicy, createSessions }, { loadBadgeKey }] = await Promise.all([
    import('../../core/api.js'),
    import('../service/auth.js'),
    import('../service/index.js'),
  ]);
  const needs = OPERATIONS[CLI_OPERATION[action]].role;
  const key = loadBadgeKey(engine.config.dataDir);
  if (!key.ok) return key;
  const s = createSessions({
    operators: engine.db.operators,
    attempts: engine.db.attempts,
    badgeKey: key.value,
    clock: engine.clock,
    logger: logger.child('[auth]'),
    policy: authPolicy(engine.config.config.auth),
  });
  const signIn = async (id: string, file: string | undefined, env: string, who: string) => {
    const revoked = engine.lifecycle.checkOperator(id);
    if (!revoked.ok) return revoked;
    const pin = await readSecret(file, env, `${who} ${id}: PIN, then Enter: `);
    if (!pin.ok) return pin;
    if (!/^[0-9]{4,12}$/.test(pin.value))
      return fail('AUTH_INVALID_CREDENTIALS', `${who} ${id}: the PIN must be 4 to 12 digits`);
    return who === 'operator'
      ? s.signIn('cli', { operatorId: id, pin: pin.value })
      : s.elevate('cli', { operatorId: id, pin: pin.value });
  };
  const op = await signIn(c.operatorId, c.pinFile, 'LINE_STATION_PIN', 'operator');
  if (!op.ok) return op;
  if (needs === 'supervisor' && !s.isSupervisor('cli')) {
    if (!c.supervisorId)
      return fail(
        'AUTH_FORBIDDEN',
        `${action} needs a supervisor: --supervisor ID (PIN from --supervisor-pin-file, $LINE_STATION_SUPERVISOR_PIN or stdin)`,
        { operation: CLI_OPERATION[action] },
      );
    const sup = await signIn(c.supervisorId, c.supervisorPinFile, 'LINE_STATION_SUPERVISOR_PIN', 'supervisor');
    if (!sup.ok) return sup;
  }
  return ok({ operatorId: c.operatorId, supervisorId: s.supervisorOf('cli')?.operatorId ?? null });
}
