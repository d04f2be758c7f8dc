/**
 * The simulated TPM board's firmware (models LS-SIM-TPM-ECC and LS-SIM-TPM-RSA): its secure element is a real TPM 2.0,
 * a swtpm process the board starts at power-on (plug) and stops at power-off (unplug). It answers `hello` (protocol 3
 * only), `identify` (chip id derived from its EK certificate, tpm-factory.ts `tpmChipId`) and relays `tpm` requests to
 * its TPM byte for byte (docs/protocol.md §3.3); every other LS request is UNSUPPORTED: the station's tpm2 driver does
 * the rest through the TPM. At power-on its boot ROM measures the boot chain into PCRs 0, 4 and 7 (baseline.ts
 * `simTpmBootEvents`). The TPM faults (board.ts `Faults`, test/sim/README.md) live here: a rogue relay rewrites or
 * replays bytes in flight, the others change which TPM answers or how it booted.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROTOCOL_V3 } from '../../core/protocol/messages.js';
import { induceLockout, startSwtpm, tpm2tools, type RunningSwtpm } from '../../testkit/tpm/swtpm.js';
import { simTpmBootEvents, SIM_FIRMWARE_VERSION, SIM_HARDWARE_REVISION, type SimTpmModel } from './baseline.js';
import { boardError, chooseVersion, type Faults, type Latency, type SimOp, type SimResponse } from './board.js';
import { writeFileAtomic } from './fsutil.js';
import type { SimFirmware } from './session.js';
import type { StoredTpm, TpmFactory, TpmRole } from './tpm-factory.js';
import {
  commandCode,
  pcrExtendCommand,
  readsEkNv,
  responseCode,
  TPM_CC,
  TPMA_OBJECT,
  withTemplateAttributesCleared,
} from './tpm-wire.js';

/** The board's persistent record (its "flash"), `<dir>/board.json`; the TPMs keep their own state. */
interface StoredTpmBoard {
  format: 'ls-sim-tpm-board/v1';
  serialNumber: string;
  model: SimTpmModel;
  /** TPM roles whose dictionary-attack settings the tpm-lockout fault changed (restored when it is cleared). */
  lockedOut: TpmRole[];
}

/** A TPM as the board runs it. */
interface PoweredTpm {
  readonly role: TpmRole;
  readonly stored: StoredTpm;
  readonly swtpm: RunningSwtpm;
}

/** The NV index testkit `induceLockout` fails an authorisation on (removed before a repeat and on recovery). */
const LOCKOUT_NV = '0x015000ff';
/** swtpm's dictionary-attack defaults (TPM2_PT_MAX_AUTH_FAIL 3, intervals 1000 s), restored after tpm-lockout. */
const DA_DEFAULTS = ['-n', '3', '-t', '1000', '-l', '1000'];
const TPM_COMMAND_TIMEOUT_MS = 15_000;

export interface SimTpmBoardOptions {
  /** The board's directory: board.json and one directory per manufactured TPM. */
  readonly dir: string;
  /** Model of a new board (an existing board keeps its model). */
  readonly model: SimTpmModel;
  readonly factory: TpmFactory;
  readonly faults?: Faults;
  readonly latency?: Latency;
  readonly log?: (line: string) => void;
}

/** Serial number `LT` + 8 upper-case hex characters (profile pattern `^LT[0-9A-F]{8}$`). */
function newSerial(): string {
  return 'LT' + randomBytes(4).toString('hex').toUpperCase();
}

export class SimTpmBoard implements SimFirmware {
  faults: Faults;
  latency: Latency;
  private powerEpoch = 0;
  private sessionVersion = 0;
  /** The TPM that answers (genuine, or the rogue-CA one) and, with tpm-other-tpm, the second one. */
  private main: PoweredTpm | null = null;
  private other: PoweredTpm | null = null;
  /** The first successful TPM2_Quote response relayed (tpm-stale-quote). */
  private firstQuote: Uint8Array | null = null;
  /** Command code of the last TPM command relayed (tpm-disconnect-on). */
  private lastCommand: number | null = null;
  private readonly log: (line: string) => void;

  private constructor(
    private readonly dir: string,
    private s: StoredTpmBoard,
    private readonly factory: TpmFactory,
    private genuine: StoredTpm,
    opts: SimTpmBoardOptions,
  ) {
    this.faults = { ...(opts.faults ?? {}) };
    this.latency = { ...(opts.latency ?? {}) };
    this.log = opts.log ?? (() => {});
  }

  /**
   * Load the board from `dir`, or make a new one: a serial number and its genuine TPM, manufactured by the trusted
   * vendor CA (with the TPMs its start-up faults need, so the first power-on does not wait for them).
   */
  static async open(opts: SimTpmBoardOptions): Promise<SimTpmBoard> {
    mkdirSync(opts.dir, { recursive: true });
    const file = join(opts.dir, 'board.json');
    let s: StoredTpmBoard;
    if (existsSync(file)) {
      s = JSON.parse(readFileSync(file, 'utf8')) as StoredTpmBoard;
      if (s?.format !== 'ls-sim-tpm-board/v1') throw new Error(`${file}: unknown TPM board state format`);
    } else {
      s = { format: 'ls-sim-tpm-board/v1', serialNumber: newSerial(), model: opts.model, lockedOut: [] };
    }
    const roles: TpmRole[] = ['genuine'];
    if (opts.faults?.tpmUntrustedEk) roles.push('untrusted');
    if (opts.faults?.tpmOtherTpm) roles.push('other');
    const [genuine] = await Promise.all(roles.map((r) => opts.factory.tpm(opts.dir, s.model, r)));
    const b = new SimTpmBoard(opts.dir, s, opts.factory, genuine!, opts);
    if (!existsSync(file)) b.persist();
    return b;
  }

  get model(): SimTpmModel {
    return this.s.model;
  }
  get serialNumber(): string {
    return this.s.serialNumber;
  }
  /** The chip id the board reports: that of the TPM it runs (the genuine one unless tpm-untrusted-ek). */
  get chipId(): string {
    return this.main?.stored.chipId ?? this.genuine.chipId;
  }
  get epoch(): number {
    return this.powerEpoch;
  }
  /** The running TPMs (tests: tpm2-tools against the same swtpm). */
  get tpms(): { main: RunningSwtpm | null; other: RunningSwtpm | null } {
    return { main: this.main?.swtpm ?? null, other: this.other?.swtpm ?? null };
  }
  /** The EK certificate (DER) of the TPM the board runs. */
  get ekCertificate(): Uint8Array {
    return new Uint8Array(Buffer.from((this.main?.stored ?? this.genuine).ekCert, 'base64'));
  }

  snapshot() {
    return {
      chipId: this.chipId,
      serialNumber: this.s.serialNumber,
      model: this.s.model,
      hasKey: false,
      certSha256: null,
      locked: false,
    } as const;
  }

  private persist(): void {
    writeFileAtomic(join(this.dir, 'board.json'), JSON.stringify(this.s, null, 2) + '\n', 0o600);
  }

  /**
   * Power on: start the TPM(s) the faults call for (manufacturing one first if needed), then boot: the measured-boot
   * PCR extends and the dictionary-attack state (tpm-lockout on, or restored once it is off).
   */
  async powerOn(): Promise<void> {
    if (this.main) return;
    const role: TpmRole = this.faults.tpmUntrustedEk ? 'untrusted' : 'genuine';
    const stored = role === 'genuine' ? this.genuine : await this.factory.tpm(this.dir, this.s.model, role);
    const main = { role, stored, swtpm: await startSwtpm({ dir: stored.dir }) };
    this.main = main;
    try {
      if (this.faults.tpmOtherTpm) {
        const o = await this.factory.tpm(this.dir, this.s.model, 'other');
        this.other = { role: 'other', stored: o, swtpm: await startSwtpm({ dir: o.dir }) };
        await this.boot(this.other);
      }
      await this.boot(main);
    } catch (e) {
      await this.powerOff();
      throw e;
    }
    this.log(
      `${this.s.serialNumber}: TPM powered on (${role}, swtpm pid ${main.swtpm.pid}, port ${main.swtpm.port}` +
        (this.other ? `; other TPM pid ${this.other.swtpm.pid}` : '') +
        ')',
    );
  }

  /** Power off (the cable is pulled): the TPMs stop (transient objects, sessions and PCRs are gone; NV stays). */
  async powerOff(): Promise<void> {
    this.powerEpoch++;
    this.sessionVersion = 0;
    const tpms = [this.main, this.other];
    this.main = null;
    this.other = null;
    await Promise.all(tpms.map((t) => t?.swtpm.stop()));
  }

  private async boot(t: PoweredTpm): Promise<void> {
    for (const e of simTpmBootEvents({ tampered: this.faults.tpmPcrMismatch === true })) {
      const r = await t.swtpm.transmit(pcrExtendCommand(e.pcr, e.digest), { timeoutMs: TPM_COMMAND_TIMEOUT_MS });
      if (!r.ok) throw new Error(`boot: PCR ${e.pcr} extend: ${r.error.message}`);
      const rc = responseCode(r.value);
      if (rc !== 0) throw new Error(`boot: PCR ${e.pcr} extend: TPM response code 0x${rc?.toString(16)}`);
    }
    const tools = tpm2tools(t.swtpm);
    const was = this.s.lockedOut.includes(t.role);
    const undefineTrap = () => tools('tpm2_nvundefine', [LOCKOUT_NV, '-C', 'o']).catch(() => undefined);
    if (this.faults.tpmLockout && t.role !== 'other') {
      // Max tries 1, one failed authorisation: the TPM is in DA lockout (TPM_RC_LOCKOUT) for an hour of TPM time.
      if (was) await undefineTrap(); // induced again at every boot while the fault is on
      await induceLockout(t.swtpm, 1);
      if (!was) {
        this.s.lockedOut = [...this.s.lockedOut, t.role];
        this.persist();
      }
    } else if (was) {
      await tools('tpm2_dictionarylockout', ['-c']);
      await tools('tpm2_dictionarylockout', ['-s', ...DA_DEFAULTS]);
      await undefineTrap();
      this.s.lockedOut = this.s.lockedOut.filter((r) => r !== t.role);
      this.persist();
    }
  }

  takeDisconnect(op: SimOp): boolean {
    if (this.faults.disconnectOn === op) {
      this.faults = { ...this.faults, disconnectOn: undefined };
      return true;
    }
    const cc = this.faults.tpmDisconnectOn;
    if (op === 'tpm' && cc !== undefined && this.lastCommand === TPM_CC[cc]) {
      this.faults = { ...this.faults, tpmDisconnectOn: undefined };
      return true;
    }
    return false;
  }

  latencyOf(op: SimOp): number {
    return op === 'tpm' ? 0 : (this.latency.other ?? 0);
  }

  async handle(op: SimOp, body: unknown): Promise<SimResponse> {
    if (typeof body !== 'object' || body === null) return boardError('BAD_REQUEST', 'request body must be a map');
    const b = body as Record<string, unknown>;
    switch (op) {
      case 'hello': {
        const v = chooseVersion(b, [PROTOCOL_V3]);
        if (typeof v !== 'number') return v;
        this.sessionVersion = v;
        return { version: v, maxFrame: 4096, board: `${this.s.model} fw ${SIM_FIRMWARE_VERSION}` };
      }
      case 'identify':
        return {
          chipId: this.chipId,
          serialNumber: this.s.serialNumber,
          model: this.s.model,
          hardwareRevision: SIM_HARDWARE_REVISION,
          firmwareVersion: SIM_FIRMWARE_VERSION,
          capabilities: { onboardKeygen: true, keyInjection: false, curves: ['P-256'] },
          // Not authoritative for a TPM board: the tpm2 driver reads the state from the TPM itself.
          state: { hasKey: false, certSha256: null, locked: false },
        };
      case 'tpm':
        return this.relay(b['command']);
      default:
        return boardError('UNSUPPORTED', `a TPM board does not answer ${op}: use the TPM relay (tpm)`);
    }
  }

  /** Relay one TPM command to the TPM, through the relay faults; the response goes back unmodified. */
  private async relay(command: unknown): Promise<SimResponse> {
    if (!(command instanceof Uint8Array)) return boardError('BAD_REQUEST', 'command must be a byte string');
    if (this.sessionVersion < PROTOCOL_V3) return boardError('BAD_REQUEST', 'say hello (protocol 3) first');
    const main = this.main;
    if (!main) return boardError('INTERNAL', 'the TPM is not powered');
    const cc = commandCode(command);
    this.lastCommand = cc;
    let bytes = command;
    if (this.faults.tpmRogueTemplate) {
      const rogue = withTemplateAttributesCleared(command, TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent);
      if (rogue) {
        this.log(`${this.s.serialNumber}: fault tpm-rogue-template: cleared fixedTPM and fixedParent in flight`);
        bytes = rogue;
      }
    }
    if (this.faults.tpmStaleQuote && cc === TPM_CC.Quote && this.firstQuote) {
      this.log(`${this.s.serialNumber}: fault tpm-stale-quote: answering TPM2_Quote with the first quote`);
      return { response: this.firstQuote };
    }
    const target = this.other && !readsEkNv(bytes) ? this.other : main;
    const r = await target.swtpm.transmit(bytes, { timeoutMs: TPM_COMMAND_TIMEOUT_MS });
    if (!r.ok) return boardError('INTERNAL', `the TPM did not answer: ${r.error.message}`.slice(0, 500));
    if (cc === TPM_CC.Quote && responseCode(r.value) === 0) this.firstQuote ??= r.value;
    return { response: r.value };
  }
}
