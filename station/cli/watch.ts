/**
 * `station watch`: provision boards as they appear, several at once (one per port), for one signed-in operator;
 * records reach the registry in the background. The operator is re-checked before each new board and every 5 s:
 * once revoked, no new board starts. Each port follows the per-board lifecycle of core/boards/lifecycle.ts (the UI
 * slots' rules). Imports core/, native/, station/ (engine, service) and sibling command modules.
 */
import { flagOn, list, str, type Io } from '../../core/cli/program.js';
import {
  isFinished,
  isPaused,
  mayStart,
  reduce,
  RELINK_DELAY_MS,
  wantsRelink,
  type BoardPosition,
  type PositionEvent,
} from '../../core/boards/lifecycle.js';
import { stationError, type StationError } from '../../core/errors.js';
import type { DetectedPort, Logger } from '../../core/ports.js';
import type { Engine } from '../engine.js';
import { engineCommand, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor, reportError } from './exit.js';
import { JSON_PROGRESS, outcomeLine, progressPrinter } from './provision.js';
import { printLabelLine } from './label.js';
import { authenticateCli, credentials, OPERATOR_OPTIONS } from './sign-in.js';

/** `station watch`. */
export const watchCommand: StationCommand = {
  name: 'watch',
  summary: 'provision boards as they appear, several at once, one per port',
  synopsis:
    '--work-order W --operator O [--pin-file F] [--port PATH|GLOB ...] [--exit-when-done] [--count N] [options]',
  details:
    'A registered operator signs in as for provision. A running watch re-checks the operator before each new board\n' +
    'and every 5 s: once revoked (station operator revoke, or the registry policy) it starts no new board, lets the\n' +
    'boards in progress finish and exits 1. Ctrl-C stops at the next checkpoint of the boards in progress.\n' +
    'A board unplugged mid-run, or that stops answering (PROTOCOL_TIMEOUT), is PAUSED: its run stays open and\n' +
    're-plugging or re-seating it resumes the run. --count counts passed and failed boards; for --exit-when-done a\n' +
    'board that stopped answering has ended (exit 1). A board that lost the identity it got here (BOARD_CERT_MISSING)\n' +
    'is IDENTITY LOST: counted on its own, exit 6 unless a board failed (exit 1).',
  options: {
    'work-order': { type: 'string', arg: 'W', help: 'the work order (required)' },
    ...OPERATOR_OPTIONS,
    port: {
      type: 'string',
      multiple: true,
      arg: 'PATH|GLOB',
      help: "watch these ports besides the detected ones (instead of config.json's ports.extra)",
    },
    'exit-when-done': { type: 'boolean', help: 'exit once every attached board has finished' },
    count: { type: 'string', arg: 'N', help: 'exit after N boards passed or failed' },
    json: JSON_PROGRESS,
  },
  run: engineCommand(async (engine, args, o, { logger }) => {
    const wo = str(args, 'work-order');
    const cred = credentials(args);
    if (!wo || !cred) {
      o.err('watch needs --work-order and the --operator who signs in');
      return EXIT.usage;
    }
    const who = await authenticateCli(engine, 'watch', cred, logger);
    if (!who.ok) return reportError(o, who.error);
    const w = engine.workOrder(wo);
    if (!w.ok) {
      o.err(describeError(w.error));
      return EXIT.usage;
    }
    // Scan-in pairs one scanned barcode with one port: the UI's slots or `station provision --expect-serial`.
    if (w.value.requireScanIn === true) {
      o.err(
        `work order ${wo} requires scan-in (requireScanIn): scan each board in the UI's slots, or use station provision --expect-serial`,
      );
      return EXIT.usage;
    }
    const revoked = engine.lifecycle.checkStation();
    if (!revoked.ok) return reportError(o, revoked.error);
    // Records reach the registry in the background while boards are provisioned (when a registry is configured).
    engine.sync?.start();
    engine.lifecycle.start();
    const countArg = str(args, 'count');
    return watchBoards({
      engine,
      o,
      logger,
      wo,
      operator: who.value.operatorId,
      extra: list(args, 'port'),
      count: countArg ? Number(countArg) : undefined,
      exitWhenDone: flagOn(args, 'exit-when-done'),
      json: flagOn(args, 'json'),
    });
  }),
};

/** What a signed-in watch runs with. */
interface WatchRun {
  readonly engine: Engine;
  readonly o: Io;
  readonly logger: Logger;
  readonly wo: string;
  readonly operator: string;
  /** --port: watched besides the detected ports, instead of config.json's ports.extra. */
  readonly extra: readonly string[];
  readonly count: number | undefined;
  readonly exitWhenDone: boolean;
  readonly json: boolean;
}

/** Provision boards as they attach until done (--count, --exit-when-done), Ctrl-C, or the operator is revoked. */
async function watchBoards(w: WatchRun): Promise<number> {
  const { engine, o, logger, wo, operator, extra, count, exitWhenDone, json } = w;
  const { operatorRevoked } = await import('../service/auth.js');
  const disco = extra.length
    ? (await import('../../native/discovery.js')).createDiscovery({ extraPorts: extra, pollMs: 200 })
    : engine.discovery();
  /** Each port's lifecycle (core/boards/lifecycle.ts, the UI slots' rules); finished boards wait for a detach. */
  const positions = new Map<string, BoardPosition>();
  const running = new Map<string, AbortController>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let passed = 0;
  let failed = 0;
  /** Boards that lost the identity they got here (`identity-lost`): neither passed nor failed. */
  let lost = 0;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const ac = new AbortController();
  const apply = (path: string, ev: PositionEvent): BoardPosition | null => {
    const next = reduce(positions.get(path) ?? null, ev);
    if (next) positions.set(path, next);
    else positions.delete(path);
    return next;
  };
  /**
   * Boards attached but silent (PROTOCOL_TIMEOUT): their runs stay active until a re-seat resumes them, which no
   * waiting brings. They end --exit-when-done like a finished board and make the exit code 1, but do not count
   * toward --count (a re-seat may still pass them). An unplugged board is waited for (its re-plug resumes it).
   */
  const interrupted = () => [...positions.values()].filter((p) => p.state === 'interrupted').length;
  const exitCode = () => (failed || interrupted() ? EXIT.boardFailed : lost ? EXIT.identityLost : EXIT.ok);
  const onSig = () => {
    o.out('stopping: waiting for boards in progress to reach a checkpoint');
    ac.abort();
    for (const c of running.values()) c.abort();
    if (running.size === 0) resolveDone(exitCode());
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  /** Set once the operator is found revoked: no new board starts; the exit code once boards in progress end. */
  let revokedError: StationError | null = null;
  const checkDone = () => {
    if (revokedError && running.size === 0) resolveDone(exitFor(revokedError));
    if (count !== undefined && passed + failed + lost >= count && running.size === 0) resolveDone(exitCode());
    const ended = [...positions.values()].filter((p) => isFinished(p) || p.state === 'interrupted').length;
    if (exitWhenDone && running.size === 0 && ended > 0) resolveDone(exitCode());
    if (ac.signal.aborted && running.size === 0) resolveDone(exitCode());
  };
  // Re-checked before each new board and every 5 s (the UI service's rule, operatorRevoked): a revocation here
  // (`station operator revoke` from any process) or in the registry policy stops new boards.
  const checkRevoked = (): boolean => {
    if (revokedError) return true;
    if (!operatorRevoked(engine.lifecycle, engine.db.operators, operator)) return false;
    revokedError = stationError(
      'AUTH_REVOKED',
      `operator ${operator} has been revoked: no new boards are started${running.size ? ` (${running.size} in progress finish first)` : ''}`,
      { operatorId: operator },
    );
    logger.log('warn', 'watch: operator revoked, no new boards are started', { operatorId: operator });
    o.err(describeError(revokedError));
    checkDone();
    return true;
  };
  const recheck = setInterval(checkRevoked, 5000);
  recheck.unref();
  /** A board whose link dropped while discovery still sees it resumes by itself after a moment (as in the UI). */
  const relinkLater = (port: DetectedPort) => {
    if (ac.signal.aborted || !wantsRelink(positions.get(port.path) ?? null)) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (running.has(port.path) || !wantsRelink(positions.get(port.path) ?? null)) return;
      apply(port.path, { type: 'relinked' });
      start(port);
    }, RELINK_DELAY_MS);
    timers.add(t);
  };
  const start = (port: DetectedPort) => {
    if (ac.signal.aborted || running.has(port.path) || !mayStart(positions.get(port.path) ?? null)) return;
    if (checkRevoked()) {
      o.err(`[${port.path}] not started: AUTH_REVOKED (operator ${operator} has been revoked)`);
      return;
    }
    const c = new AbortController();
    running.set(port.path, c);
    apply(port.path, { type: 'started', at: engine.clock.now().toISOString(), monoMs: engine.clock.monotonicMs() });
    o.out(`[${port.path}] board attached`);
    const print = progressPrinter(o, json);
    void engine
      .provision({
        port,
        workOrder: wo,
        operator,
        signal: c.signal,
        onProgress: (e) => {
          apply(port.path, { type: 'progress', event: e });
          print(e);
        },
      })
      .then(async (r) => {
        const p = apply(port.path, { type: 'outcome', outcome: r, monoMs: engine.clock.monotonicMs() });
        if (p && isPaused(p)) {
          // The run stays active: a board unplugged mid-step, or silent, resumes when it is re-plugged or re-seated.
          o.out(pausedLine(port.path, p));
          if (ac.signal.aborted) failed++;
        } else {
          o.out(outcomeLine(port.path, r));
          if (r.ok) passed++;
          else if (p?.state === 'identity-lost') lost++;
          else failed++;
          // The label after PASS (its failure is a line of its own, never the board's): before the board counts done.
          if (r.ok && r.value.status === 'provisioned')
            await printLabelLine(engine, logger, o, port.path, r.value.record.recordId);
        }
        running.delete(port.path);
        relinkLater(port);
        checkDone();
      });
  };
  const stop = disco.watch((ev) => {
    if (ev.type === 'attached') {
      apply(ev.port.path, { type: 'attached' });
      start(ev.port);
    } else if (ev.type === 'detached') {
      running.get(ev.port.path)?.abort();
      apply(ev.port.path, { type: 'detached' });
      o.out(`[${ev.port.path}] board detached`);
    } else o.err(`[${ev.path}] ${ev.code}: ${ev.message}`);
  });
  for (const p of await disco.list()) {
    apply(p.path, { type: 'attached' });
    start(p);
  }
  o.out(`watching for boards (work order ${wo}); Ctrl-C to stop`);
  const code = await done;
  clearInterval(recheck);
  for (const t of timers) clearTimeout(t);
  stop();
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  const left = interrupted();
  o.out(
    `${passed} boards passed, ${failed} failed${lost ? `, ${lost} identity lost (set aside)` : ''}${left ? `, ${left} interrupted (their runs stay open: re-seat to resume)` : ''}`,
  );
  return code;
}

/** The lines of a board whose run stopped and stays active (disconnected, or interrupted by a timeout). */
function pausedLine(port: string, p: BoardPosition): string {
  const how = p.state === 'interrupted' ? 're-seating the board' : 're-plugging the board';
  return `[${port}] PAUSED  ${p.error ? describeError(p.error) : p.state}\n  -> the run stays open: ${how} resumes it`;
}
