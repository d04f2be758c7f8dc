/**
 * Argument and command parsing for the simulator CLI (main.ts), kept separate so it can be tested.
 */
import { SIM_OPS, type Faults, type SimOp } from './board.js';
import { SIM_MODELS, SIM_TPM_MODELS, type SimModel } from './baseline.js';
import { TPM_CC, type TpmCommandName } from './tpm-wire.js';
import type { BoardSpec } from './simulator.js';

export interface CliOptions {
  boards: number;
  /** TPM boards after the LS boards (models alternate LS-SIM-TPM-ECC, LS-SIM-TPM-RSA). */
  tpmBoards: number;
  dir: string | undefined;
  stateDir: string | undefined;
  model: SimModel | undefined;
  latency: { keygen?: number; flash?: number; other?: number };
  baud: number;
  seed: number | undefined;
  /** Faults per board index (`*` applies to all). */
  faults: Array<{ board: number | '*'; faults: Faults }>;
  /** Print each answered request's board-side timeline as a `{"trace":...}` stdout line. */
  trace: boolean;
}

export const USAGE = `usage: npm run sim -- [--boards N] [--tpm-boards N] [--dir DIR] [--state-dir DIR]
       [--model LS-SIM-SE|LS-SIM-BASIC] [--latency-keygen MS] [--latency-flash MS] [--latency-other MS] [--baud N]
       [--seed N] [--fault i:name[=value]]... [--trace]
--trace: one stdout line {"trace":{"board":i,"op":...,"requestId":n,"rx":ms,"run":ms,"done":ms,"sent":ms}} per
        answered request (ms of the machine's monotonic clock: decoded, processing time over, answered, written)
faults: dropBytes=P corruptBytes=P disconnectOn=OP (re-plugs after 2 s) replugAfterMs=MS badAttestation badFirmware debugUnlocked
        refuseCert refuseZeroize forgetCert stale; rogue board: foreignKey=keygen|injectBegin keygenCurve=P-384 replayAttestation
        hideFirmware; TPM boards: tpm-untrusted-ek tpm-other-tpm tpm-pcr-mismatch tpm-lockout tpm-rogue-template
        tpm-stale-quote tpm-disconnect-on=CC (a TPM command name, e.g. Create; re-plugs after 2 s)
        (i = board index or *; TPM boards are numbered after the LS boards)
stdin commands while running: fault i name[=value] | clear i | unplug i | plug i | state i | quit`;

/** From the CLI, a board unplugged by disconnectOn is re-seated after this long (override with replugAfterMs). */
export const CLI_REPLUG_MS = 2000;

/** CLI names of the TPM board faults and their Faults fields (test/sim/README.md "TPM boards"). */
const TPM_FAULTS = {
  'tpm-untrusted-ek': 'tpmUntrustedEk',
  'tpm-other-tpm': 'tpmOtherTpm',
  'tpm-pcr-mismatch': 'tpmPcrMismatch',
  'tpm-lockout': 'tpmLockout',
  'tpm-rogue-template': 'tpmRogueTemplate',
  'tpm-stale-quote': 'tpmStaleQuote',
} as const satisfies Record<string, keyof Faults>;

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function nonNegInt(flag: string, v: string | undefined): Parsed<number> {
  if (v === undefined || !/^\d+$/.test(v)) return { ok: false, error: `${flag} needs a non-negative integer` };
  return { ok: true, value: Number(v) };
}

/** Parse one fault `name[=value]` into a partial Faults object. */
export function parseFault(spec: string): Parsed<Faults> {
  const eq = spec.indexOf('=');
  const name = eq < 0 ? spec : spec.slice(0, eq);
  const raw = eq < 0 ? undefined : spec.slice(eq + 1);
  switch (name) {
    case 'dropBytes':
    case 'corruptBytes': {
      const p = raw === undefined ? 1 : Number(raw);
      if (!Number.isFinite(p) || p < 0 || p > 1) return { ok: false, error: `${name} needs a probability 0..1` };
      return { ok: true, value: { [name]: p } };
    }
    case 'replugAfterMs': {
      const n = nonNegInt(name, raw);
      return n.ok ? { ok: true, value: { replugAfterMs: n.value } } : n;
    }
    case 'disconnectOn':
      if (!raw || !(SIM_OPS as readonly string[]).includes(raw))
        return { ok: false, error: `disconnectOn needs an op: ${SIM_OPS.join(', ')}` };
      return { ok: true, value: { disconnectOn: raw as SimOp } };
    case 'badAttestation':
    case 'badFirmware':
    case 'debugUnlocked':
    case 'refuseCert':
    case 'refuseZeroize':
    case 'replayAttestation':
    case 'hideFirmware':
    case 'forgetCert':
    case 'stale': {
      if (raw !== undefined && raw !== 'true' && raw !== 'false')
        return { ok: false, error: `${name} takes true or false` };
      return { ok: true, value: { [name]: raw !== 'false' } };
    }
    case 'foreignKey':
      if (raw !== 'keygen' && raw !== 'injectBegin')
        return { ok: false, error: 'foreignKey needs keygen or injectBegin' };
      return { ok: true, value: { foreignKey: raw } };
    case 'tpm-untrusted-ek':
    case 'tpm-other-tpm':
    case 'tpm-pcr-mismatch':
    case 'tpm-lockout':
    case 'tpm-rogue-template':
    case 'tpm-stale-quote': {
      if (raw !== undefined && raw !== 'true' && raw !== 'false')
        return { ok: false, error: `${name} takes true or false` };
      return { ok: true, value: { [TPM_FAULTS[name]]: raw !== 'false' } };
    }
    case 'tpm-disconnect-on':
      if (!raw || !Object.prototype.hasOwnProperty.call(TPM_CC, raw))
        return { ok: false, error: `tpm-disconnect-on needs a TPM command: ${Object.keys(TPM_CC).join(', ')}` };
      return { ok: true, value: { tpmDisconnectOn: raw as TpmCommandName } };
    case 'keygenCurve':
      if (raw !== 'P-256' && raw !== 'P-384') return { ok: false, error: 'keygenCurve needs P-256 or P-384' };
      return { ok: true, value: { keygenCurve: raw } };
    default:
      return { ok: false, error: `unknown fault ${JSON.stringify(name)}` };
  }
}

/** Parse the CLI arguments. */
export function parseArgs(argv: readonly string[]): Parsed<CliOptions> {
  const o: CliOptions = {
    boards: 2,
    tpmBoards: 0,
    dir: undefined,
    stateDir: undefined,
    model: undefined,
    latency: {},
    baud: 0,
    seed: undefined,
    faults: [],
    trace: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    const num = (): Parsed<number> => {
      i++;
      return nonNegInt(flag, v);
    };
    let n: Parsed<number>;
    switch (flag) {
      case '--boards':
        if (!(n = num()).ok) return n;
        if (n.value > 64) return { ok: false, error: '--boards must be 0..64' };
        o.boards = n.value;
        break;
      case '--tpm-boards':
        if (!(n = num()).ok) return n;
        if (n.value > 16) return { ok: false, error: '--tpm-boards must be 0..16' };
        o.tpmBoards = n.value;
        break;
      case '--dir':
      case '--state-dir':
        i++;
        if (!v) return { ok: false, error: `${flag} needs a path` };
        if (flag === '--dir') o.dir = v;
        else o.stateDir = v;
        break;
      case '--model': {
        i++;
        const m = (v ?? '').toUpperCase();
        const model = SIM_MODELS.find((x) => x === m || x === `LS-SIM-${m}`);
        if (!model) return { ok: false, error: `--model must be one of ${SIM_MODELS.join(', ')}` };
        o.model = model;
        break;
      }
      case '--latency-keygen':
      case '--latency-flash':
      case '--latency-other':
        if (!(n = num()).ok) return n;
        o.latency[flag.slice('--latency-'.length) as 'keygen' | 'flash' | 'other'] = n.value;
        break;
      case '--baud':
        if (!(n = num()).ok) return n;
        o.baud = n.value;
        break;
      case '--seed':
        if (!(n = num()).ok) return n;
        o.seed = n.value;
        break;
      case '--trace':
        o.trace = true;
        break;
      case '--fault': {
        i++;
        const m = /^(\d+|\*):(.+)$/.exec(v ?? '');
        if (!m) return { ok: false, error: '--fault needs i:name[=value]' };
        const f = parseFault(m[2]!);
        if (!f.ok) return f;
        o.faults.push({ board: m[1] === '*' ? '*' : Number(m[1]), faults: f.value });
        break;
      }
      default:
        return { ok: false, error: `unknown argument ${JSON.stringify(flag)}` };
    }
  }
  if (o.boards + o.tpmBoards < 1) return { ok: false, error: 'no boards: --boards and --tpm-boards are both 0' };
  for (const f of o.faults)
    if (f.board !== '*' && f.board >= o.boards + o.tpmBoards)
      return { ok: false, error: `--fault for board ${f.board}: no such board` };
  return { ok: true, value: o };
}

/** CLI default: a board unplugged by disconnectOn comes back after CLI_REPLUG_MS unless replugAfterMs is set. */
export function withReplugDefault(f: Faults): Faults {
  return (f.disconnectOn || f.tpmDisconnectOn) && f.replugAfterMs === undefined
    ? { ...f, replugAfterMs: CLI_REPLUG_MS }
    : f;
}

/** Board specs from the parsed options. */
export function boardSpecs(o: CliOptions): BoardSpec[] {
  return Array.from({ length: o.boards + o.tpmBoards }, (_, i) => {
    const faults: Faults = {};
    for (const f of o.faults) if (f.board === '*' || f.board === i) Object.assign(faults, f.faults);
    const t = i - o.boards;
    return {
      model: t >= 0 ? SIM_TPM_MODELS[t % 2]! : (o.model ?? (i % 2 === 0 ? 'LS-SIM-SE' : 'LS-SIM-BASIC')),
      faults: withReplugDefault(faults),
      latency: { ...o.latency },
    };
  });
}
