/**
 * public.ts and templates.ts against bytes tpm2-tools produced: the L-2 EK's TPM2B_PUBLIC from `tpm2_createek -G ecc`
 * on swtpm (template + that TPM's x, y), its Name computed with node:crypto, and the key-attribute check.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../bytes.js';
import { TPMA_OBJECT, TPM_ALG } from './constants.js';
import { TpmWriter } from './marshal.js';
import {
  marshalPublic,
  objectName,
  parsePublic,
  parsePublic2b,
  publicMatchesSpki,
  publicToSpki,
  type EccPublic,
} from './public.js';
import { attestationKeyTemplate, checkKeyPublic, deviceKeyTemplate, ekTemplate } from './templates.js';

// tpm2_createek -G ecc -u ek.pub on swtpm 0.7.1 (TPM2B_PUBLIC).
const L2_EK =
  '007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa0006008000430010000300100020e15e05e3225a7a00492aed37cee5d50095f40e039048f0f9409fc29e8a1fcd5800207ecdd96b84c04f7482da8be077eb4ed4292170f0d75e9a8ca9bbbb6f06e51a6b';

describe('TPMT_PUBLIC', () => {
  it('parses the tpm2-tools EK and marshals our L-2 template with its point to the same bytes', async () => {
    const r = parsePublic2b(fromHex(L2_EK));
    if (!r.ok) throw new Error(r.error.message);
    const ek = r.value as EccPublic;
    expect(ek.type).toBe('ecc');
    expect(ek.objectAttributes).toBe(0x000300b2);
    const ours = { ...(ekTemplate('eccP256') as EccPublic), x: ek.x, y: ek.y };
    expect(toHex(marshalPublic(ours))).toBe(L2_EK.slice(4));
    const name = await objectName(ours);
    const expected =
      '000b' +
      createHash('sha256')
        .update(fromHex(L2_EK.slice(4)))
        .digest('hex');
    expect(name.ok && toHex(name.value)).toBe(expected);
    // SPKI round trip: the same key, and a different point is not.
    const spki = await publicToSpki(ours);
    if (!spki.ok) throw new Error(spki.error.message);
    expect(await publicMatchesSpki(ours, spki.value)).toBe(true);
    const other = { ...ours, y: Uint8Array.from(ours.y).reverse() };
    expect(await publicMatchesSpki(other, spki.value)).toBe(false);
  });

  it('round-trips RSA and the signing templates; refuses other object types and truncations without throwing', () => {
    for (const t of [ekTemplate('rsa2048'), ekTemplate('eccP384'), attestationKeyTemplate(), deviceKeyTemplate()]) {
      const bytes = marshalPublic(t);
      expect(parsePublic(bytes)).toEqual({ ok: true, value: t });
      for (let n = 0; n < bytes.length; n++) {
        const cut = parsePublic(bytes.subarray(0, n));
        expect(cut.ok ? 'parsed' : cut.error.code).toBe('TPM_RESPONSE_MALFORMED');
      }
    }
    const keyedHash = new TpmWriter()
      .u16(TPM_ALG.KEYEDHASH)
      .u16(TPM_ALG.SHA256)
      .u32(0)
      .tpm2b(new Uint8Array(0))
      .toBytes();
    const r = parsePublic(keyedHash);
    expect(r.ok ? '' : r.error.message).toContain('is not ECC or RSA');
  });

  it('checkKeyPublic refuses a key without fixedTPM, with extra attributes, or of another curve', () => {
    const good = { ...deviceKeyTemplate(), x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) };
    expect(checkKeyPublic(good, deviceKeyTemplate()).ok).toBe(true);
    const notFixed = { ...good, objectAttributes: good.objectAttributes & ~TPMA_OBJECT.fixedTPM };
    const r = checkKeyPublic(notFixed, deviceKeyTemplate());
    expect(r.ok ? '' : r.error.code).toBe('TPM_KEY_ATTRIBUTES_INVALID');
    expect(r.ok ? '' : r.error.message).toContain('missing fixedTPM');
    const exportable = { ...good, objectAttributes: good.objectAttributes | TPMA_OBJECT.encryptedDuplication };
    expect(checkKeyPublic(exportable, deviceKeyTemplate()).ok).toBe(false);
    expect(checkKeyPublic({ ...good, curve: 0x0004 }, deviceKeyTemplate()).ok).toBe(false);
    expect(checkKeyPublic(good, attestationKeyTemplate()).ok).toBe(false); // not restricted
  });
});
