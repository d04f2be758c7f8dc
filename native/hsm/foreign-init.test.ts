/**
 * Cryptoki initialised by someone else in the process first: the adapter tolerates
 * CKR_CRYPTOKI_ALREADY_INITIALIZED and must not C_Finalize what it did not initialise.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import pkcs11js from 'pkcs11js';
import { loadedModuleCount, openHsm } from './index.js';
import { createTestTokens, type TestToken } from '../../testkit/hsm.js';

let tok: TestToken;
beforeAll(async () => {
  tok = await createTestTokens(['foreign'], 'foreign-pin-1');
});
afterAll(async () => {
  await tok?.cleanup();
});

it('shares an already initialised module and leaves it initialised on close', async () => {
  const other = new pkcs11js.PKCS11();
  other.load(tok.env.module);
  other.C_Initialize();
  try {
    const r = await openHsm({ module: tok.env.module, tokenLabel: 'foreign', pin: 'foreign-pin-1' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect((await r.value.generateSigningKey('k', 'P-256')).ok).toBe(true);
    await r.value.close();
    expect(loadedModuleCount()).toBe(0);
    // still initialised for the other user: this would throw CKR_CRYPTOKI_NOT_INITIALIZED after a finalize
    expect(other.C_GetSlotList(true).length).toBeGreaterThan(0);
  } finally {
    other.C_Finalize();
  }
});
