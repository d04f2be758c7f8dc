/**
 * `station operator add` and `station operator revoke`: the operators who may sign in at the station (the UI and
 * `station provision|watch`). A new operator's PIN comes from $LINE_STATION_NEW_PIN or stdin (not echoed at a
 * terminal), never the command line; it is stored hashed. Imports core/, native/, station/ (config, service) and
 * sibling command modules.
 */
import { join } from 'node:path';
import { str, UsageError, type Io, type ParsedArgs } from '../../core/cli/program.js';
import type { StationDb } from '../../native/store/index.js';
import type { LoadedConfig } from '../config.js';
import { dataDirOf, type StationCommand } from './context.js';
import { EXIT } from './exit.js';
import { readStdin } from './pin-input.js';

const ID_OPTION = {
  id: { type: 'string', arg: 'ID', help: 'the operator id (A-Z a-z 0-9 . _ -, 1 to 64)', required: true },
} as const;

/**
 * The operator id checked, the station configuration loaded and its database open for `fn` (closed after).
 * A bad id is a usage error; no configuration or database: not ready.
 */
async function withOperators(
  args: ParsedArgs,
  o: Io,
  fn: (db: StationDb, cfg: LoadedConfig, id: string) => Promise<number> | number,
): Promise<number> {
  const id = str(args, 'id')!;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new UsageError('--id: 1 to 64 characters of A-Z a-z 0-9 . _ -');
  // Loaded when the command runs, not at start (`station --help`).
  const [{ loadConfig }, { openStationDb }] = await Promise.all([
    import('../config.js'),
    import('../../native/store/index.js'),
  ]);
  const cfg = loadConfig(dataDirOf(args));
  if (!cfg.ok) {
    o.err(`${cfg.error.code}: ${cfg.error.message}`);
    return EXIT.notReady;
  }
  const db = openStationDb(join(cfg.value.dataDir, 'station.db'));
  if (!db.ok) {
    o.err(`${db.error.code}: ${db.error.message}`);
    return EXIT.notReady;
  }
  try {
    return await fn(db.value, cfg.value, id);
  } finally {
    db.value.close();
  }
}

/** `station operator add`. */
export const operatorAddCommand: StationCommand = {
  name: 'operator add',
  summary: 'add (or update) an operator who may sign in at the station',
  synopsis: '--id ID --name N --role operator|supervisor [--badge CODE] [options]',
  details:
    'The PIN (4 to 12 digits) from $LINE_STATION_NEW_PIN or stdin, never the command line; typed at a terminal it\n' +
    'is not echoed. Supervisors need at least 6 digits (config.json auth.supervisorPinMinLength).',
  options: {
    ...ID_OPTION,
    name: { type: 'string', arg: 'N', help: 'the name shown in the UI, 1 to 128 characters (required)' },
    role: { type: 'string', arg: 'operator|supervisor', help: 'what the operator may do (required)' },
    badge: {
      type: 'string',
      arg: 'CODE',
      help: 'a badge code to sign in with (4 to 128 characters; stored keyed-hashed)',
    },
  },
  run: (args, { io: o }) =>
    withOperators(args, o, async (db, cfg, id) => {
      const now = new Date().toISOString();
      const name = str(args, 'name');
      const role = str(args, 'role');
      const badge = str(args, 'badge');
      if (!name || name.length > 128 || (role !== 'operator' && role !== 'supervisor'))
        throw new UsageError('operator add needs --name (1..128 chars) and --role operator|supervisor');
      if (badge !== undefined && (badge.length < 4 || badge.length > 128)) {
        o.err('--badge: 4 to 128 characters');
        return EXIT.usage;
      }
      const [{ authPolicy, pinLengthError }, { hashBadge, hashPin, loadBadgeKey }, { isStoreError }] =
        await Promise.all([
          import('../service/auth.js'),
          import('../service/index.js'),
          import('../../native/store/index.js'),
        ]);
      const pin = process.env['LINE_STATION_NEW_PIN'] ?? (await readStdin());
      const weak = pinLengthError(role, pin, authPolicy(cfg.config.auth));
      if (weak) {
        o.err(`AUTH_PIN_POLICY: ${weak}`);
        return EXIT.usage;
      }
      const key = badge ? loadBadgeKey(cfg.dataDir) : null;
      if (key && !key.ok) {
        o.err(`${key.error.code}: ${key.error.message}`);
        return EXIT.notReady;
      }
      try {
        db.operators.upsert(
          {
            operatorId: id,
            name,
            role,
            pinHash: await hashPin(pin),
            badgeHash: key ? hashBadge(key.value, badge!) : null,
          },
          now,
        );
      } catch (e) {
        o.err(
          `STORE_FAILED: ${isStoreError(e, 'duplicate-badge') ? 'this badge belongs to another operator' : (e as Error).message}`,
        );
        return EXIT.boardFailed;
      }
      o.out(`operator ${id} (${role}) saved${badge ? ' with a badge' : ''}`);
      return EXIT.ok;
    }),
};

/** `station operator revoke`. */
export const operatorRevokeCommand: StationCommand = {
  name: 'operator revoke',
  summary: 'revoke an operator: no new sign-in, and a running watch starts no new board',
  options: ID_OPTION,
  run: (args, { io: o }) =>
    withOperators(args, o, (db, _cfg, id) => {
      if (!db.operators.setRevoked(id, true, new Date().toISOString())) {
        o.err(`no operator ${id}`);
        return EXIT.boardFailed;
      }
      o.out(`operator ${id} revoked`);
      return EXIT.ok;
    }),
};
