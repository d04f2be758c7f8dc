/** Digests (bytes.ts): node:crypto in Node gives WebCrypto's bytes (the browser's path), for every digest core uses. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digest, digestSync, nodeCrypto, sha256Hex, webDigest, type DigestName } from './bytes.js';

describe('digests', () => {
  const inputs = [new Uint8Array(0), Uint8Array.of(0x61, 0x62, 0x63), new Uint8Array(4096).map((_, i) => i * 7)];

  it('are computed synchronously with node:crypto in Node', () => {
    expect(nodeCrypto).not.toBeNull();
    const d = digestSync('SHA-256', inputs[1]!);
    expect(d?.length).toBe(32);
    expect(d?.buffer.byteLength).toBe(32); // its own bytes, not a view of a pooled buffer
  });

  for (const alg of ['SHA-1', 'SHA-256', 'SHA-384'] as DigestName[]) {
    it(`${alg}: node:crypto, WebCrypto and an independent createHash agree`, async () => {
      for (const data of inputs) {
        const web = await webDigest(alg, data);
        expect(digestSync(alg, data)).toEqual(web);
        expect(await digest(alg, data)).toEqual(web);
        const independent = createHash(alg.replace('-', '').toLowerCase()).update(data).digest();
        expect(Buffer.from(web).equals(independent)).toBe(true);
      }
    });
  }

  it('sha256Hex of a string hashes its UTF-8 bytes (the known SHA-256 of "abc")', async () => {
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('hashes a view as its own bytes, not its whole buffer', async () => {
    const whole = Uint8Array.of(1, 2, 3, 4, 5);
    const view = whole.subarray(1, 3);
    expect(await digest('SHA-256', view)).toEqual(await webDigest('SHA-256', Uint8Array.of(2, 3)));
  });
});
