/**
 * The simulated TPM boards' factory: the TPM vendor's local CA (one per simulator state dir, trusted by the station as
 * its TPM vendor root), a second, rogue CA (never handed to the station), and manufacturing real swtpm TPMs with them
 * (testkit/tpm/swtpm.ts `manufactureTpm`). A board's TPMs are manufactured once and kept in its directory: re-plugs
 * and simulator restarts on the same state dir reuse them, so a TPM keeps its keys and NV like real hardware.
 *
 * Manufacturing takes ~1.5 s of CPU-bound work (swtpm_setup, RSA key generation): at most two run at once.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manufactureTpm, type ManufacturedTpm } from '../../testkit/tpm/swtpm.js';
import type { SimTpmModel } from './baseline.js';
import { writeFileAtomic } from './fsutil.js';

/** The station's TPM vendor root (self-signed) in the simulator state dir. */
export const TPM_VENDOR_ROOT_FILE = 'tpm-vendor-root.pem';
/** The TPM vendor's CA that issues the EK certificates (signed by the root): the station gets it next to the root. */
export const TPM_VENDOR_ISSUER_FILE = 'tpm-vendor-ek-ca.pem';
const VENDOR_CA_DIR = 'tpm-vendor-ca';
const ROGUE_CA_DIR = 'tpm-rogue-ca';

/** Which of a board's TPMs: its own, one made by the rogue CA (tpm-untrusted-ek), the relay's other TPM. */
export type TpmRole = 'genuine' | 'untrusted' | 'other';

/** A manufactured TPM as the board keeps it (paths are absolute). */
export interface StoredTpm {
  /** The directory given to manufactureTpm / startSwtpm. */
  readonly dir: string;
  /** The EK certificate that names this TPM (DER, base64): ECC P-256 or RSA 2048 by model. */
  readonly ekCert: string;
  /** Chip id derived from it (tpmChipId). */
  readonly chipId: string;
}

/**
 * The chip id of a TPM board (the contract with the station's tpm2 driver): lower-case hex of the first 16 bytes of
 * SHA-256 over the DER SubjectPublicKeyInfo of the EK certificate, exactly as the certificate carries it.
 */
export function tpmChipId(ekCertDer: Uint8Array): string {
  const spki = new Uint8Array(new x509.X509Certificate(ekCertDer).publicKey.rawData);
  return createHash('sha256').update(spki).digest().subarray(0, 16).toString('hex');
}

let running = 0;
const waiting: (() => void)[] = [];

/** Run `fn` with at most two manufactures at once (the machine has two cores; swtpm_setup is CPU-bound). */
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** The simulator's TPM vendors under `stateDir`: the trusted one and the rogue one. */
export class TpmFactory {
  /** Manufactures in progress per TPM directory (two boards never make the same TPM twice). */
  private readonly pending = new Map<string, Promise<StoredTpm>>();

  constructor(readonly stateDir: string) {}

  /**
   * The TPM vendor's certificates for the station, one PEM file each in the state dir: the root CA
   * (`tpm-vendor-root.pem`) and the CA that issues the EK certificates (`tpm-vendor-ek-ca.pem`; an EK certificate in
   * NV carries no chain, so a TPM vendor publishes its issuing CAs). The CA exists after the first manufacture.
   */
  vendorCerts(): { root: { path: string; pem: string }; issuer: { path: string; pem: string } } {
    const ca = join(this.stateDir, VENDOR_CA_DIR);
    const copy = (from: string, name: string) => {
      const pem = readFileSync(join(ca, from), 'utf8').trim() + '\n';
      const path = join(this.stateDir, name);
      if (!existsSync(path) || readFileSync(path, 'utf8') !== pem) writeFileAtomic(path, pem);
      return { path, pem };
    };
    return {
      root: copy('swtpm-localca-rootca-cert.pem', TPM_VENDOR_ROOT_FILE),
      issuer: copy('issuercert.pem', TPM_VENDOR_ISSUER_FILE),
    };
  }

  /**
   * The TPM `role` of the board in `boardDir`: loaded from `<boardDir>/<role>/tpm.json` if it was manufactured before,
   * manufactured now otherwise (by the rogue CA for 'untrusted', by the trusted CA for the others).
   */
  tpm(boardDir: string, model: SimTpmModel, role: TpmRole): Promise<StoredTpm> {
    const dir = join(boardDir, role);
    const meta = join(dir, 'tpm.json');
    if (existsSync(meta)) return Promise.resolve(JSON.parse(readFileSync(meta, 'utf8')) as StoredTpm);
    const inFlight = this.pending.get(dir);
    if (inFlight) return inFlight;
    const p = limited(async () => {
      const m: ManufacturedTpm = await manufactureTpm({
        dir,
        localca: join(this.stateDir, role === 'untrusted' ? ROGUE_CA_DIR : VENDOR_CA_DIR),
        ek: model === 'LS-SIM-TPM-ECC' ? ['rsa', 'ecc'] : ['rsa'],
      });
      const cert = model === 'LS-SIM-TPM-ECC' ? m.ekCerts.eccP256 : m.ekCerts.rsa2048;
      if (!cert) throw new Error(`${dir}: swtpm gave no EK certificate for ${model}`);
      const stored: StoredTpm = { dir, ekCert: Buffer.from(cert).toString('base64'), chipId: tpmChipId(cert) };
      writeFileAtomic(meta, JSON.stringify(stored, null, 2) + '\n');
      return stored;
    }).finally(() => this.pending.delete(dir));
    this.pending.set(dir, p);
    return p;
  }
}
