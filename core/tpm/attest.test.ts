/**
 * attest.ts and pcr.ts with hand-built TPMS_ATTEST structures signed by a WebCrypto key (the swtpm test covers the
 * real TPM's): verification, magic and type checks, signature encodings, truncation never throws, PCR digest order.
 */
import { createHash, type webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex } from '../bytes.js';
import { parseAttest, verifyAttest, type TpmSignature } from './attest.js';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from './constants.js';
import { TpmWriter } from './marshal.js';
import { pcrDigest, writePcrSelection } from './pcr.js';
import type { EccPublic } from './public.js';
import { attestationKeyTemplate } from './templates.js';

function quoteAttest(opts: { magic?: number; type?: number; extra?: Uint8Array } = {}): Uint8Array {
  const w = new TpmWriter()
    .u32(opts.magic ?? TPM_GENERATED_VALUE)
    .u16(opts.type ?? TPM_ST.ATTEST_QUOTE)
    .tpm2b(Uint8Array.of(0, 0x0b, ...new Uint8Array(32)))
    .tpm2b(opts.extra ?? new Uint8Array(32).fill(9))
    .u64(123456n)
    .u32(3)
    .u32(4)
    .u8(1)
    .u64(0x2019102300000000n);
  writePcrSelection(w, [{ hashAlg: TPM_ALG.SHA256, pcrs: [0, 7] }]);
  return w.tpm2b(new Uint8Array(32).fill(5)).toBytes();
}

async function signer(): Promise<{ pub: EccPublic; sign(data: Uint8Array): Promise<TpmSignature> }> {
  const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
  const pub = {
    ...attestationKeyTemplate(),
    x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
    y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
  };
  return {
    pub,
    async sign(data) {
      const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, kp.privateKey, data));
      return { kind: 'ecdsa', hashAlg: TPM_ALG.SHA256, r: sig.slice(0, 32), s: sig.slice(32) };
    },
  };
}

describe('TPMS_ATTEST', () => {
  it('parses a quote and verifies its ECDSA signature (r, s with or without leading zero bytes)', async () => {
    const k = await signer();
    const attest = quoteAttest();
    const parsed = parseAttest(attest);
    if (!parsed.ok) throw new Error(parsed.error.message);
    expect(parsed.value.clockInfo).toEqual({ clock: 123456n, resetCount: 3, restartCount: 4, safe: true });
    expect(parsed.value.attested).toEqual({
      kind: 'quote',
      pcrSelect: [{ hashAlg: TPM_ALG.SHA256, pcrs: [0, 7] }],
      pcrDigest: new Uint8Array(32).fill(5),
    });
    const sig = await k.sign(attest);
    expect((await verifyAttest(k.pub, attest, sig)).ok).toBe(true);
    if (sig.kind !== 'ecdsa') return;
    const padded = { ...sig, r: Uint8Array.of(0, ...sig.r) };
    expect((await verifyAttest(k.pub, attest, padded)).ok).toBe(true);
    const other = await signer();
    const wrong = await verifyAttest(other.pub, attest, sig);
    expect(wrong.ok ? '' : wrong.error.code).toBe('ATTEST_SIGNATURE_INVALID');
    const sha1 = await verifyAttest(k.pub, attest, { ...sig, hashAlg: TPM_ALG.SHA1 });
    expect(sha1.ok ? '' : sha1.error.code).toBe('TPM_UNSUPPORTED');
  });

  it('refuses a wrong magic, other attestation types, and every truncation (coded, no throw)', () => {
    const magic = parseAttest(quoteAttest({ magic: 0x12345678 }));
    expect(magic.ok ? '' : magic.error.code).toBe('ATTEST_STATEMENT_INVALID');
    const time = parseAttest(quoteAttest({ type: TPM_ST.ATTEST_TIME }));
    expect(time.ok ? '' : time.error.code).toBe('TPM_RESPONSE_MALFORMED');
    const bytes = quoteAttest();
    for (let n = 0; n < bytes.length; n++) expect(parseAttest(bytes.subarray(0, n)).ok).toBe(false);
    expect(parseAttest(Uint8Array.of(...bytes, 0)).ok).toBe(false);
  });
});

describe('pcrDigest', () => {
  it('hashes the selected values bank by bank, PCR index ascending', async () => {
    const v = (pcr: number): { hashAlg: number; pcr: number; digest: Uint8Array } => ({
      hashAlg: TPM_ALG.SHA256,
      pcr,
      digest: new Uint8Array(32).fill(pcr),
    });
    const d = await pcrDigest([{ hashAlg: TPM_ALG.SHA256, pcrs: [7, 0, 7] }], [v(7), v(3), v(0)]);
    const expected = createHash('sha256')
      .update(new Uint8Array(32).fill(0))
      .update(new Uint8Array(32).fill(7))
      .digest();
    expect(d.ok && toHex(d.value)).toBe(expected.toString('hex'));
    const missing = await pcrDigest([{ hashAlg: TPM_ALG.SHA256, pcrs: [1] }], [v(0)]);
    expect(missing.ok ? '' : missing.error.code).toBe('INPUT_INVALID');
  });
});
