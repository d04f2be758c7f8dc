/**
 * The board simulator: N simulated boards, each behind a real socat pseudo-terminal pair, speaking the
 * Line Station wire protocol v2 (and v1, for legacy boards and legacy-mode tests), and TPM boards (protocol 3) whose
 * secure element is a real swtpm process (tpm-board.ts). Used by the integration tests, the demo and `npm run sim`.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_FRAME } from '../../core/protocol/framing.js';
import { PROTOCOL_V1, PROTOCOL_V2 } from '../../core/protocol/messages.js';
import type { RunningSwtpm } from '../../testkit/tpm/swtpm.js';
import { SIM_TPM_MODELS, type SimModel, type SimTpmModel } from './baseline.js';
import { SimBoard, type BoardSnapshot, type Faults, type Latency } from './board.js';
import { loadOrCreateVendorPki } from './pki.js';
import { PtyCable } from './pty.js';
import { BoardSession, makeRng, type SessionTrace } from './session.js';
import { SimTpmBoard } from './tpm-board.js';
import { TpmFactory } from './tpm-factory.js';

export type { Faults, Latency, BoardSnapshot } from './board.js';
export type { SessionTrace } from './session.js';
export type { SimModel, SimTpmModel } from './baseline.js';

const isTpmModel = (m: string | undefined): m is SimTpmModel => (SIM_TPM_MODELS as readonly string[]).includes(m ?? '');

export interface BoardSpec {
  /** An LS model (default: SE, BASIC alternating) or a TPM model (a swtpm-backed board, tpm-board.ts). */
  model?: SimModel | SimTpmModel;
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
  /** Called with each answered request's board-side timeline (session.ts `SessionTrace`); off by default. */
  trace?: (board: number, t: SessionTrace) => void;
}

export interface SimBoardInfo {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: SimModel | SimTpmModel;
  /** Station-side link path. */
  readonly port: string;
}

export interface SimulatorHandle {
  readonly ports: string[];
  readonly boards: SimBoardInfo[];
  readonly vendorRootPem: string;
  readonly vendorRootPath: string;
  /** The TPM vendor root CA (PEM, one certificate) for the station's attestation roots; null without TPM boards. */
  readonly tpmVendorRootPem: string | null;
  readonly tpmVendorRootPath: string | null;
  /** The TPM vendor's EK-issuing CA (PEM, signed by the root): the station gets it next to the root. */
  readonly tpmVendorIssuerPath: string | null;
  readonly stateDir: string;
  /** Board i's running TPMs (a TPM board while plugged in; null otherwise): for tpm2-tools in tests. */
  tpm(i: number): { main: RunningSwtpm | null; other: RunningSwtpm | null } | null;
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
  const trace = opts.trace;
  const rng = makeRng(opts.seed ?? Date.now() >>> 0);
  const pki = await loadOrCreateVendorPki(stateDir);
  const specs: BoardSpec[] =
    typeof opts.boards === 'number'
      ? Array.from({ length: opts.boards }, (_, i) => ({ model: i % 2 === 0 ? 'LS-SIM-SE' : 'LS-SIM-BASIC' }))
      : opts.boards;

  const boards: (SimBoard | SimTpmBoard)[] = [];
  const cables: PtyCable[] = [];
  const sessions: (BoardSession | null)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  // TPM boards: manufactured concurrently (two at a time, tpm-factory.ts), kept in <stateDir>/tpm-board-<i>/.
  const factory = specs.some((s) => isTpmModel(s.model)) ? new TpmFactory(stateDir) : null;
  const tpmBoards = new Map<number, Promise<SimTpmBoard>>();
  for (const [i, spec] of specs.entries()) {
    if (factory && isTpmModel(spec.model))
      tpmBoards.set(
        i,
        SimTpmBoard.open({
          dir: join(stateDir, `tpm-board-${i}`),
          model: spec.model,
          factory,
          faults: spec.faults ?? {},
          latency: spec.latency ?? {},
          log,
        }),
      );
  }
  const made = await Promise.allSettled(tpmBoards.values());
  const broken = made.find((r) => r.status === 'rejected');
  if (broken) throw new Error(`TPM board manufacture failed: ${String(broken.reason)}`);

  for (const [i, spec] of specs.entries()) {
    const tpmBoard = tpmBoards.get(i);
    if (tpmBoard) {
      const board = await tpmBoard;
      if (spec.model !== board.model) log(`board ${i}: stored board is a ${board.model}; keeping it`);
      boards.push(board);
      cables.push(new PtyCable(dir, i, log));
      sessions.push(null);
      continue;
    }
    const model = isTpmModel(spec.model) ? undefined : spec.model;
    const board = await SimBoard.open({
      stateFile: join(stateDir, `board-${i}.json`),
      model: model ?? (i % 2 === 0 ? 'LS-SIM-SE' : 'LS-SIM-BASIC'),
      pki,
      versions: spec.versions ?? [PROTOCOL_V1, PROTOCOL_V2],
      maxFrame: MAX_FRAME,
      faults: spec.faults ?? {},
      latency: spec.latency ?? {},
      log,
    });
    if (model && model !== board.model) log(`board ${i}: stored board is a ${board.model}; keeping it`);
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
    if (board instanceof SimTpmBoard) await board.powerOn(); // its TPM starts and boots before the link appears
    if (stopped) return void (await board.powerOff());
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
      { baud: opts.baud ?? 0, rng, log, ...(trace ? { trace: (t: SessionTrace) => trace(i, t) } : {}) },
    );
    sessions[i] = session;
    try {
      await cable.plug({ onData: (c) => session.onData(c), onClose: () => session.close() });
    } catch (e) {
      sessions[i] = null;
      await board.powerOff();
      throw e;
    }
    log(`board ${i} (${board.model} ${board.serialNumber}) plugged in at ${cable.stationPath}`);
  };

  const unplug = async (i: number): Promise<void> => {
    const cable = at(cables, i);
    sessions[i]?.close();
    sessions[i] = null;
    const board = at(boards, i);
    if (!cable.plugged) {
      if (board instanceof SimTpmBoard) await board.powerOff(); // a plug that failed half-way
      return;
    }
    await Promise.all([board.powerOff(), cable.unplug()]);
    log(`board ${i} (${at(boards, i).serialNumber}) unplugged from ${cable.stationPath}`);
  };

  const tpmCerts = factory?.vendorCerts() ?? null;
  const handle: SimulatorHandle = {
    ports: cables.map((c) => c.stationPath),
    // A getter: a TPM board's chip id is that of the TPM it runs (tpm-untrusted-ek switches it at power-on).
    get boards() {
      return boards.map((b, i) => ({
        chipId: b.chipId,
        serialNumber: b.serialNumber,
        model: b.model,
        port: at(cables, i).stationPath,
      }));
    },
    vendorRootPem: pki.rootPem,
    vendorRootPath: pki.rootPath,
    tpmVendorRootPem: tpmCerts?.root.pem ?? null,
    tpmVendorRootPath: tpmCerts?.root.path ?? null,
    tpmVendorIssuerPath: tpmCerts?.issuer.path ?? null,
    stateDir,
    tpm: (i) => {
      const b = at(boards, i);
      return b instanceof SimTpmBoard ? b.tpms : null;
    },
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
