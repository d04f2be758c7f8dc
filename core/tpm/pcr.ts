/**
 * PCR selections and the quote's PCR digest.
 * TPM 2.0 Library Part 2 §10.6 (TPMS_PCR_SELECTION, TPML_PCR_SELECTION), Part 3 §18.4 (TPM2_Quote: pcrDigest is the
 * hash of the selected PCR values concatenated in selection order — bank by bank, PCR index ascending).
 */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { HASHES, TPM_ALG } from './constants.js';
import type { TpmReader, TpmWriter } from './marshal.js';
import { tpmHash } from './public.js';

/** A PCR selection: one bank (hash algorithm) and PCR indices. */
export interface PcrSelection {
  readonly hashAlg: number;
  readonly pcrs: readonly number[];
}

/** One PCR's value in one bank. */
export interface PcrValue {
  readonly hashAlg: number;
  readonly pcr: number;
  readonly digest: Uint8Array;
}

/** The highest PCR index core/tpm selects (24 PCRs, PC Client profile). */
export const PCR_MAX = 23;
const PCR_BANKS_MAX = 16;

/** Write a TPML_PCR_SELECTION (sizeofSelect 3: PCRs 0..23). */
export function writePcrSelection(w: TpmWriter, sel: readonly PcrSelection[]): void {
  w.u32(sel.length);
  for (const s of sel) {
    const bits = new Uint8Array(3);
    for (const p of s.pcrs) if (Number.isInteger(p) && p >= 0 && p <= PCR_MAX) bits[p >> 3]! |= 1 << (p & 7);
    w.u16(s.hashAlg).u8(bits.length).bytes(bits);
  }
}

/** Read a TPML_PCR_SELECTION (PCR indices ascending per bank). */
export function readPcrSelection(r: TpmReader): PcrSelection[] {
  const n = r.count(PCR_BANKS_MAX);
  const out: PcrSelection[] = [];
  for (let i = 0; i < n && !r.failed; i++) {
    const hashAlg = r.u16();
    const size = r.u8();
    if (size > 8) r.fail(`sizeofSelect ${size}`);
    const bits = r.bytes(size);
    const pcrs: number[] = [];
    bits.forEach((b, j) => {
      for (let k = 0; k < 8; k++) if (b & (1 << k)) pcrs.push(j * 8 + k);
    });
    out.push({ hashAlg, pcrs });
  }
  return out;
}

/** The PCRs of a selection in the TPM's order: bank by bank as given, PCR index ascending, no duplicates. */
export function selectionOrder(selection: readonly PcrSelection[]): { hashAlg: number; pcr: number }[] {
  return selection.flatMap((s) =>
    [...new Set(s.pcrs)].sort((a, b) => a - b).map((pcr) => ({ hashAlg: s.hashAlg, pcr })),
  );
}

/**
 * The digest TPM2_Quote puts in TPMS_QUOTE_INFO.pcrDigest: H_hashAlg(value of each selected PCR, in selection
 * order). `values` must hold every selected PCR (extra values are ignored); INPUT_INVALID otherwise.
 */
export async function pcrDigest(
  selection: readonly PcrSelection[],
  values: readonly PcrValue[],
  hashAlg: number = TPM_ALG.SHA256,
): Promise<Result<Uint8Array>> {
  const parts: Uint8Array[] = [];
  for (const { hashAlg: bank, pcr } of selectionOrder(selection)) {
    const v = values.find((x) => x.hashAlg === bank && x.pcr === pcr);
    if (!v) return fail('INPUT_INVALID', `no value for PCR ${pcr} in bank 0x${bank.toString(16)}`);
    if (v.digest.length !== HASHES[bank]?.size) {
      return fail('INPUT_INVALID', `PCR ${pcr} value of ${v.digest.length} bytes for bank 0x${bank.toString(16)}`);
    }
    parts.push(v.digest);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const d = await tpmHash(hashAlg, all);
  return d.ok ? ok(d.value) : d;
}
