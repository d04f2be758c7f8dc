/**
 * The board simulator: N simulated boards, each behind a real socat pseudo-terminal pair, speaking the
 * Line Station wire protocol v2 (and v1, for legacy boards and legacy-mode tests). Used by the integration tests, the demo and `npm run sim`.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_FRAME } from '../../core/protocol/framing.js';
import { PROTOCOL_V1, PROTOCOL_V2 } from '../../core/protocol/messages.js';
import type { SimModel } from './baseline.js';
import { SimBoard, type BoardSnapshot, type Faults, type Latency } from './board.js';
import { loadOrCreateVendorPki } from './pki.js';
import { PtyCable } from './pty.js';
import { BoardSession, makeRng } from './session.js';

export type { Faults, Latency, BoardSnapshot } from './board.js';
export type { SimModel } from './baseline.js';

export interface BoardSpec {
  model?: SimModel;
  /** Protocol versions the board's firmware speaks (default [1, 2]; [1] is a legacy board). */
  versions?: number[];
  faults?: Faults;
  latency?: Latency;
}

export interface SimulatorOptions {
  /** Directory for the pty links (`board-<i>` for the station, `board-<i>.sim` for the simulator). */
  dir: string;
  /** Board storage and vendor PKI; default `<dir>/state`. Reuse it to keep boards across restarts. */
  stateDir?: string;
  /** A count (models alternate SE, BASIC, ...) or one spec per board. */
  boards: number | BoardSpec[];
  /** Emulated UART byte rate for board -> station traffic (0 = unlimited). */
  baud?: number;
  /** Seed for the fault injector's random numbers. */
  seed?: number;
  log?: (line: string) => void;
}

export interface SimBoardInfo {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: SimModel;
  /** Station-side link path. */
  readonly port: string;
}

export interface SimulatorHandle {
  readonly ports: string[];
  readonly boards: SimBoardInfo[];
  readonly vendorRootPem: string;
  readonly vendorRootPath: string;
  readonly stateDir: string;
  /** Pull board i's cable: its socat dies and its link disappears. */
  unplug(i: number): Promise<void>;
  /** Plug board i back in (a fresh session: the board's replay cache is gone, its storage is not). */
  plug(i: number): Promise<void>;
  /** Replace board i's faults. */
  setFaults(i: number, faults: Faults): void;
  /** Board i's current faults (a copy). */
  faults(i: number): Faults;
  /** Read-only snapshot of board i's identity state. */
  state(i: number): BoardSnapshot;
  /** Unplug every board (kills all socat children). */
  stop(): Promise<void>;
}

/** Start the simulator: create/load the vendor PKI and the boards, plug every board in. */
export async function startSimulator(opts: SimulatorOptions): Promise<SimulatorHandle> {
  const dir = resolve(opts.dir);
  const stateDir = resolve(opts.stateDir ?? join(dir, 'state'));
  mkdirSync(dir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const log = opts.log ?? (() => {});
  const rng = makeRng(opts.seed ?? Date.now() >>> 0);
  const pki = await loadOrCreateVendorPki(stateDir);
  const specs: BoardSpec[] =
    typeof opts.boards === 'number'
      ? Array.from({ length: opts.boards }, (_, i) => ({ model: i % 2 === 0 ? 'LS-SIM-SE' : 'LS-SIM-BASIC' }))
      : opts.boards;

  const boards: SimBoard[] = [];
  const cables: PtyCable[] = [];
  const sessions: (BoardSession | null)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  for (const [i, spec] of specs.entries()) {
    const board = await SimBoard.open({
      stateFile: join(stateDir, `board-${i}.json`),
      model: spec.model ?? (i % 2 === 0 ? 'LS-SIM-SE' : 'LS-SIM-BASIC'),
      pki,
      versions: spec.versions ?? [PROTOCOL_V1, PROTOCOL_V2],
      maxFrame: MAX_FRAME,
      faults: spec.faults ?? {},
      latency: spec.latency ?? {},
      log,
    });
    if (spec.model && spec.model !== board.model) log(`board ${i}: stored board is a ${board.model}; keeping it`);
    boards.push(board);
    cables.push(new PtyCable(dir, i, log));
    sessions.push(null);
  }

  const at = <T>(arr: T[], i: number): T => {
    const v = arr[i];
    if (v === undefined) throw new RangeError(`no board ${i}`);
    return v;
  };

  const plug = async (i: number): Promise<void> => {
    const board = at(boards, i);
    const cable = at(cables, i);
    if (stopped || cable.plugged) return;
    const session = new BoardSession(
      board,
      {
        write: (d) => cable.write(d),
        unplug: () => {
          void unplug(i).then(() => {
            const after = board.faults.replugAfterMs;
            if (after !== undefined && after >= 0 && !stopped) {
              const t = setTimeout(() => {
                timers.delete(t);
                void plug(i).catch((e: unknown) => log(`board ${i}: re-plug failed: ${(e as Error).message}`));
              }, after);
              timers.add(t);
            }
          });
        },
      },
      { baud: opts.baud ?? 0, rng, log },
    );
    sessions[i] = session;
    await cable.plug({ onData: (c) => session.onData(c), onClose: () => session.close() });
    log(`board ${i} (${board.model} ${board.serialNumber}) plugged in at ${cable.stationPath}`);
  };

  const unplug = async (i: number): Promise<void> => {
    const cable = at(cables, i);
    sessions[i]?.close();
    sessions[i] = null;
    if (!cable.plugged) return;
    at(boards, i).powerOff();
    await cable.unplug();
    log(`board ${i} (${at(boards, i).serialNumber}) unplugged from ${cable.stationPath}`);
  };

  const handle: SimulatorHandle = {
    ports: cables.map((c) => c.stationPath),
    boards: boards.map((b, i) => ({
      chipId: b.chipId,
      serialNumber: b.serialNumber,
      model: b.model,
      port: at(cables, i).stationPath,
    })),
    vendorRootPem: pki.rootPem,
    vendorRootPath: pki.rootPath,
    stateDir,
    unplug,
    plug,
    setFaults: (i, faults) => {
      at(boards, i).faults = { ...faults };
    },
    faults: (i) => ({ ...at(boards, i).faults }),
    state: (i) => at(boards, i).snapshot(),
    stop: async () => {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(cables.map((_, i) => unplug(i)));
    },
  };
  try {
    for (let i = 0; i < boards.length; i++) await plug(i);
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}
