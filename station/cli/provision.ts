/**
 * `station provision`: provision (or resume) the board on one port, after a registered operator signed in; with
 * `--reprovision`, a supervisor approves and the override is audited. Also the progress and outcome lines that
 * `station watch` prints too. Imports core/, station/ (engine) and its sibling command modules.
 */
import { isIdentityLost } from '../../core/boards/lifecycle.js';
import { flagOn, list, str, type Io } from '../../core/cli/program.js';
import type { ProgressEvent } from '../../core/model.js';
import type { FlowOutcome } from '../../core/provisioning/flow.js';
import type { Result } from '../../core/result.js';
import { engineCommand, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor, reportError } from './exit.js';
import { authenticateCli, credentials, OPERATOR_OPTIONS, SUPERVISOR_OPTIONS } from './sign-in.js';
import { printLabelLine } from './label.js';

const ICON: Record<ProgressEvent['status'], string> = {
  pending: '.',
  running: '>',
  done: 'ok',
  failed: 'FAIL',
  skipped: '-',
};

/** Prints each step of a board's provisioning as it ends (a JSON line per event with --json). */
export function progressPrinter(o: Io, json: boolean): (e: ProgressEvent) => void {
  return (e: ProgressEvent) => {
    if (json) return o.out(JSON.stringify({ event: 'progress', ...e }));
    if (e.status === 'running') return;
    const who = e.serialNumber ? ` ${e.serialNumber}` : '';
    o.out(
      `[${e.port}]${who} ${e.step.padEnd(8)} ${ICON[e.status].padEnd(4)} ${String(e.elapsedMs).padStart(6)} ms${e.message ? `  ${e.message}` : ''}`,
    );
  };
}

/**
 * The PASS / FAIL line of a board; `IDENTITY LOST` for a board that no longer holds the identity of its record here
 * (core/boards/lifecycle.ts `isIdentityLost`: neither PASS nor FAIL; exit `identityLost`).
 */
export function outcomeLine(port: string, r: Result<FlowOutcome>): string {
  if (!r.ok) return `[${port}] ${isIdentityLost(r.error.code) ? 'IDENTITY LOST' : 'FAIL'}  ${describeError(r.error)}`;
  const v = r.value;
  if (v.status === 'already-provisioned') {
    return `[${port}] PASS  ${v.identity.serialNumber} already provisioned (record ${v.record.recordId})`;
  }
  return `[${port}] PASS  ${v.identity.serialNumber} provisioned${v.resumed ? ' (resumed)' : ''}: record ${v.record.recordId}, certificate ${v.record.certificateSerial}`;
}

/** `--json` of provision and watch. */
export const JSON_PROGRESS = { type: 'boolean', help: 'progress as JSON lines' } as const;

/** `station provision`. */
export const provisionCommand: StationCommand = {
  name: 'provision',
  summary: 'provision (or resume) the board on one port',
  synopsis:
    '--port P --work-order W --operator O [--pin-file F] [--expect-serial S] [--reprovision [--supervisor S]] [options]',
  details:
    'A registered operator signs in (station operator add): PIN from --pin-file, $LINE_STATION_PIN or stdin, never\n' +
    'the command line; typed at a terminal it is not echoed. --reprovision needs a supervisor: the operator, or\n' +
    '--supervisor with --supervisor-pin-file, $LINE_STATION_SUPERVISOR_PIN or the next line of stdin.\n' +
    "--expect-serial: scan-in, the serial number scanned from the board's own barcode; the board on the port must\n" +
    'identify with it, else FLOW_SCAN_MISMATCH before anything is written (exit 1). Required by a work order with\n' +
    '"requireScanIn": true (FLOW_SCAN_REQUIRED without it).\n' +
    'A board provisioned here that no longer holds its certificate (erased, scrapped, reflashed) is not "already\n' +
    'provisioned": IDENTITY LOST, BOARD_CERT_MISSING, exit 6; set it aside, or re-provision with --reprovision.',
  options: {
    port: { type: 'string', multiple: true, arg: 'P', help: 'the serial port of the board (exactly one; required)' },
    'work-order': { type: 'string', arg: 'W', help: 'the work order (required)' },
    ...OPERATOR_OPTIONS,
    'expect-serial': {
      type: 'string',
      arg: 'S',
      help: "scan-in: the serial number on the board's barcode (checked against identify)",
    },
    reprovision: { type: 'boolean', help: 'provision a board that already has an identity again (supervisor)' },
    ...SUPERVISOR_OPTIONS,
    json: JSON_PROGRESS,
  },
  run: engineCommand(async (engine, args, o, { logger }) => {
    const ports = list(args, 'port');
    const wo = str(args, 'work-order');
    const cred = credentials(args);
    if (ports.length !== 1 || !wo || !cred) {
      o.err('provision needs exactly one --port, a --work-order and the --operator who signs in');
      return EXIT.usage;
    }
    const reprovision = flagOn(args, 'reprovision');
    const expectSerial = str(args, 'expect-serial');
    if (expectSerial !== undefined && !/^[\x21-\x7e]{1,128}$/.test(expectSerial.trim())) {
      o.err('--expect-serial: expected the scanned serial number (1..128 printable characters, no spaces)');
      return EXIT.usage;
    }
    const who = await authenticateCli(engine, reprovision ? 'reprovision' : 'provision', cred, logger);
    if (!who.ok) return reportError(o, who.error);
    if (reprovision)
      engine.store.appendAudit('override.reprovision', {
        supervisor: who.value.supervisorId,
        operator: who.value.operatorId,
        reason: 'station provision --reprovision',
        port: ports[0]!,
        chipId: null,
      });
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    try {
      const r = await engine.provision({
        port: ports[0]!,
        workOrder: wo,
        operator: who.value.operatorId,
        reprovision,
        ...(reprovision && who.value.supervisorId ? { supervisor: who.value.supervisorId } : {}),
        ...(expectSerial !== undefined ? { expectSerial } : {}),
        signal: ac.signal,
        onProgress: progressPrinter(o, flagOn(args, 'json')),
      });
      o.out(outcomeLine(ports[0]!, r));
      if (r.ok && r.value.status === 'provisioned')
        await printLabelLine(engine, logger, o, ports[0]!, r.value.record.recordId);
      return r.ok ? EXIT.ok : exitFor(r.error);
    } finally {
      process.off('SIGINT', onSig);
    }
  }),
};
