/**
 * `station scrap`: a supervisor scraps the board on a port, as the UI's scrap override does (same role rule: an
 * operator signs in and a supervisor approves, or the operator is one). The board's identity is erased through its
 * driver, the scrap is audited and its signed revocation event queued for the registry (station/scrap.ts).
 * Imports core/, station/ (engine, scrap) and sibling command modules.
 */
import { str, UsageError } from '../../core/cli/program.js';
import { engineCommand, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';
import { authenticateCli, credentials, OPERATOR_OPTIONS, SUPERVISOR_OPTIONS } from './sign-in.js';
import { recordScrap } from '../scrap.js';

/** `station scrap`. */
export const scrapCommand: StationCommand = {
  name: 'scrap',
  summary: 'erase the identity of the board on a port and ask headquarters to revoke its certificate (supervisor)',
  synopsis: '--port P --work-order W --operator O --reason TEXT [--supervisor S] [options]',
  details:
    'The board is identified as for a run of the work order, then zeroized by its driver (a TPM board in its TPM).\n' +
    'The scrap is audited (override.scrap) and a signed scrap event is queued; the next sync sends it. PINs as for\n' +
    '`station provision --reprovision`: never on the command line.',
  options: {
    port: { type: 'string', arg: 'P', help: 'the serial port of the board (required)' },
    'work-order': { type: 'string', arg: 'W', help: 'the work order the board belongs to (required)' },
    reason: { type: 'string', arg: 'TEXT', help: 'why the board is scrapped, 3 to 500 characters (required)' },
    ...OPERATOR_OPTIONS,
    ...SUPERVISOR_OPTIONS,
  },
  run: engineCommand(async (engine, args, o, { logger }) => {
    const port = str(args, 'port');
    const wo = str(args, 'work-order');
    const reason = str(args, 'reason');
    const cred = credentials(args);
    if (!port || !wo || !cred) throw new UsageError('scrap needs --port, --work-order and the --operator who signs in');
    if (!reason || reason.trim().length < 3 || reason.length > 500)
      throw new UsageError('--reason: why the board is scrapped, 3 to 500 characters');
    const who = await authenticateCli(engine, 'scrap', cred, logger);
    if (!who.ok) return reportError(o, who.error);
    const z = await engine.zeroize({ port, workOrder: wo });
    if (!z.ok) return reportError(o, z.error);
    const queued = await recordScrap(
      engine,
      {
        chipId: z.value.chipId,
        serialNumber: z.value.serialNumber,
        port,
        reason: reason.trim(),
        supervisor: who.value.supervisorId ?? who.value.operatorId,
        operator: who.value.operatorId,
      },
      logger,
    );
    o.out(
      `${port} SCRAPPED ${z.value.serialNumber} (chip ${z.value.chipId}): identity erased; ` +
        (queued ? 'revocation queued for headquarters' : 'the revocation event could not be queued: see the log'),
    );
    return EXIT.ok;
  }),
};
