/**
 * The simulated boards' "firmware image" measurements, computed from fixed formulas so that a work order
 * can state the expected baseline (resources/work-orders/WO-DEMO-1.json) and tests can check it.
 */
import { createHash } from 'node:crypto';

export const SIM_MODELS = ['LS-SIM-SE', 'LS-SIM-BASIC'] as const;
export type SimModel = (typeof SIM_MODELS)[number];

/** Firmware slots every simulated board reports, in order. */
export const SIM_FIRMWARE = [
  { name: 'bootloader', version: '2.0.1' },
  { name: 'application', version: '1.4.2' },
] as const;

export const SIM_FIRMWARE_VERSION = '1.4.2';
export const SIM_HARDWARE_REVISION = 'B2';

function sha256(s: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(s, 'utf8').digest());
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export interface SimMeasurementBytes {
  readonly firmware: ReadonlyArray<{ name: string; version: string; sha256: Uint8Array }>;
  readonly fuseDigest: Uint8Array;
  readonly configDigest: Uint8Array;
}

/** Measurements of a healthy board of `model` (digests as bytes, as the board sends them). */
export function simMeasurements(model: SimModel): SimMeasurementBytes {
  return {
    firmware: SIM_FIRMWARE.map((f) => ({
      name: f.name,
      version: f.version,
      sha256: sha256(`${model}:${f.name}:${f.version}`),
    })),
    fuseDigest: sha256(`${model}:fuses:v1`),
    configDigest: sha256(`${model}:config:v1`),
  };
}

/** The digest a board with the `badFirmware` fault reports for its application image. */
export function tamperedApplicationDigest(model: SimModel): Uint8Array {
  return sha256(`${model}:application:1.4.2:tampered`);
}

/** The TPM board models (test/sim/tpm-board.ts): the same board with an ECC P-256 or an RSA 2048 endorsement key. */
export const SIM_TPM_MODELS = ['LS-SIM-TPM-ECC', 'LS-SIM-TPM-RSA'] as const;
export type SimTpmModel = (typeof SIM_TPM_MODELS)[number];

/** One measurement a TPM board's boot ROM extends into a SHA-256 PCR. */
export interface SimTpmBootEvent {
  readonly pcr: number;
  readonly what: string;
  readonly digest: Uint8Array;
}

/**
 * What every simulated TPM board's boot ROM measures at power-on, in order (measured boot, UEFI-style PCR use):
 * PCR 0 the boot loader, PCR 4 the application image, PCR 7 the secure-boot state. With `tampered` (the
 * tpm-pcr-mismatch fault) the application image is the tampered one, so PCR 4 differs.
 */
export function simTpmBootEvents(opts: { tampered?: boolean } = {}): SimTpmBootEvent[] {
  const app = opts.tampered ? 'LS-SIM-TPM:application:1.4.2:tampered' : 'LS-SIM-TPM:application:1.4.2';
  return [
    { pcr: 0, what: 'bootloader 2.0.1', digest: sha256('LS-SIM-TPM:bootloader:2.0.1') },
    { pcr: 4, what: opts.tampered ? 'application 1.4.2 (tampered)' : 'application 1.4.2', digest: sha256(app) },
    { pcr: 7, what: 'secure boot enabled', digest: sha256('LS-SIM-TPM:secure-boot:enabled') },
  ];
}

/**
 * SHA-256 PCR values (lower-case hex, by PCR index) of a TPM board after boot: every PCR starts at 32 zero bytes and
 * each event sets PCR = SHA-256(PCR || digest). A healthy board's values are what a work order expects.
 */
export function simTpmPcrs(opts: { tampered?: boolean } = {}): Record<number, string> {
  const pcrs = new Map<number, Uint8Array>();
  for (const e of simTpmBootEvents(opts)) {
    const old = pcrs.get(e.pcr) ?? new Uint8Array(32);
    pcrs.set(e.pcr, new Uint8Array(createHash('sha256').update(old).update(e.digest).digest()));
  }
  return Object.fromEntries([...pcrs].map(([i, v]) => [i, hex(v)]));
}

export interface SimBaseline {
  readonly firmware: Record<string, string[]>;
  readonly secureBoot: 'required';
  readonly debugLocked: 'required';
  readonly fuseDigests: string[];
  readonly configDigests: string[];
}

/** Expected work-order baseline (hex digests) accepting healthy boards of all `models`. */
export function simBaseline(models: readonly SimModel[] = SIM_MODELS): SimBaseline {
  const firmware: Record<string, string[]> = {};
  const fuseDigests: string[] = [];
  const configDigests: string[] = [];
  for (const model of models) {
    const m = simMeasurements(model);
    for (const f of m.firmware) (firmware[f.name] ??= []).push(hex(f.sha256));
    fuseDigests.push(hex(m.fuseDigest));
    configDigests.push(hex(m.configDigest));
  }
  return { firmware, secureBoot: 'required', debugLocked: 'required', fuseDigests, configDigests };
}

/** The demo work order (the content of resources/work-orders/WO-DEMO-1.json). */
export function demoWorkOrder(): Record<string, unknown> {
  return {
    schema: 'line-station/work-order/v1',
    id: 'WO-DEMO-1',
    product: 'Line Station demo board',
    profiles: ['ls-sim-se', 'ls-sim-basic'],
    quantity: 100000,
    baseline: simBaseline(),
  };
}
