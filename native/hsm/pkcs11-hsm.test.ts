/**
 * PKCS#11 adapter against a real SoftHSM2 token in a throwaway directory: token info, error mapping (two tokens: a
 * fresh login on one while the other is logged in), a second adapter on one token, throughput, the PIN never logged,
 * reopening after the last close. Keys, signatures, attributes, certificates, recovery and concurrency run on every
 * implementation of the suite in tokens.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StationError } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { loadedModuleCount, openHsm, type HsmAdmin } from './index.js';
import { measureSignRate } from '../../testkit/bench/hsm.js';
import { captureLogger, createTestTokens, type TestToken } from '../../testkit/hsm.js';

const PIN = 'Uq7-pin-XyZ-4242';
const WRONG_PIN = 'Wrong-pin-5150';
const logger = captureLogger();
const errors: StationError[] = [];
let tok: TestToken;
let hsm: HsmAdmin;

function collect<T>(r: Result<T>): Result<T> {
  if (!r.ok) errors.push(r.error);
  return r;
}

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

beforeAll(async () => {
  tok = await createTestTokens(['station', 'spare'], PIN);
  hsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN, logger }));
  must(await hsm.generateSigningKey('ca-P-256', 'P-256'));
  must(await hsm.generateSigningKey('ca-P-384', 'P-384'));
});

afterAll(async () => {
  await hsm?.close();
  await tok?.cleanup();
});

describe('signing keys', () => {
  it('refuses to overwrite an existing label and rejects bad labels/curves', async () => {
    const again = collect(await hsm.generateSigningKey('ca-P-256', 'P-256'));
    expect(again.ok ? null : again.error.code).toBe('INPUT_INVALID');
    expect(again.ok ? '' : again.error.message).toMatch(/already exists/);
    const bad = collect(await hsm.generateSigningKey('', 'P-256'));
    expect(bad.ok).toBe(false);
    const curve = collect(await hsm.generateSigningKey('x', 'P-521' as never));
    expect(curve.ok ? null : curve.error.code).toBe('INPUT_INVALID');
  });

  it('info lists token and keys (attributes only)', async () => {
    const info = must(await hsm.info());
    expect(info).toMatchObject({
      tokenLabel: 'station',
      manufacturer: 'SoftHSM project',
      model: 'SoftHSM v2',
      loggedIn: true,
      module: tok.env.module,
    });
    expect(info.slotId).toMatch(/^\d+$/);
    expect(info.tokenSerial).toMatch(/^[0-9a-f]+$/);
    const priv = info.keys.filter((k) => k.class === 'private').map((k) => k.label);
    expect(priv).toEqual(expect.arrayContaining(['ca-P-256', 'ca-P-384']));
    for (const k of info.keys) expect(Object.keys(k).sort()).toEqual(expect.not.arrayContaining(['value']));
  });
});

describe('errors', () => {
  it('wrong PIN -> HSM_PIN_INCORRECT (fresh login, and while another adapter is logged in)', async () => {
    const fresh = collect(await openHsm({ module: tok.env.module, tokenLabel: 'spare', pin: WRONG_PIN, logger }));
    expect(fresh.ok ? null : fresh.error.code).toBe('HSM_PIN_INCORRECT');
    const shared = collect(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: WRONG_PIN, logger }));
    expect(shared.ok ? null : shared.error.code).toBe('HSM_PIN_INCORRECT');
    expect(loadedModuleCount()).toBe(1);
  });

  it('SoftHSM2 cannot be driven into CKR_PIN_LOCKED: 12 wrong PINs, then the right one still works', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = collect(
        await openHsm({ module: tok.env.module, tokenLabel: 'spare', pin: `${WRONG_PIN}${i}`, logger }),
      );
      codes.push(r.ok ? 'ok' : r.error.code);
    }
    expect(new Set(codes)).toEqual(new Set(['HSM_PIN_INCORRECT']));
    const good = must(await openHsm({ module: tok.env.module, tokenLabel: 'spare', pin: PIN, logger }));
    await good.close();
  });

  it('unknown token -> HSM_TOKEN_ABSENT; missing key -> HSM_KEY_NOT_FOUND; empty PIN -> CONFIG_INVALID', async () => {
    const absent = collect(await openHsm({ module: tok.env.module, tokenLabel: 'no-such-token', pin: PIN, logger }));
    expect(absent.ok ? null : absent.error.code).toBe('HSM_TOKEN_ABSENT');
    expect(absent.ok ? null : absent.error.details?.['tokensPresent']).toEqual(
      expect.arrayContaining(['station', 'spare']),
    );
    const missing = collect(await hsm.signer('no-such-key'));
    expect(missing.ok ? null : missing.error.code).toBe('HSM_KEY_NOT_FOUND');
    expect(must(await hsm.findKey('no-such-key'))).toBeNull();
    const empty = collect(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: '', logger }));
    expect(empty.ok ? null : empty.error.code).toBe('CONFIG_INVALID');
  });

  it('module path wrong or not a PKCS#11 library -> HSM_MODULE_LOAD_FAILED', async () => {
    const nope = collect(
      await openHsm({ module: join(tok.dir, 'missing.so'), tokenLabel: 'station', pin: PIN, logger }),
    );
    expect(nope.ok ? null : nope.error.code).toBe('HSM_MODULE_LOAD_FAILED');
    const libz = [
      '/lib/x86_64-linux-gnu/libz.so.1',
      '/usr/lib/x86_64-linux-gnu/libz.so.1',
      '/lib/aarch64-linux-gnu/libz.so.1',
    ].find((p) => {
      try {
        readFileSync(p, { flag: 'r' }).subarray(0, 1);
        return true;
      } catch {
        return false;
      }
    });
    if (libz) {
      const wrong = collect(await openHsm({ module: libz, tokenLabel: 'station', pin: PIN, logger }));
      expect(wrong.ok ? null : wrong.error.code).toBe('HSM_MODULE_LOAD_FAILED');
    }
    expect(loadedModuleCount()).toBe(1);
  });

  it('a second adapter on the same token does not log the first one out when it closes', async () => {
    const second = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN, logger }));
    expect(must(await second.findKey('ca-P-256'))?.sensitive).toBe(true);
    await second.close();
    await second.close(); // idempotent
    const after = collect(await second.info());
    expect(after.ok ? null : after.error.code).toBe('HSM_SESSION_LOST');
    const before = logger.lines.filter((l) => l.msg.includes('session lost')).length;
    must(await hsm.info());
    must(await must(await hsm.signer('ca-P-384')).sign(new Uint8Array([9])));
    expect(logger.lines.filter((l) => l.msg.includes('session lost')).length).toBe(before);
    expect(loadedModuleCount()).toBe(1);
  });
});

describe('concurrency and throughput', () => {
  it('measureSignRate reports a positive rate', async () => {
    const rate = await measureSignRate(hsm, 'ca-P-256', 0.3);
    expect(rate).toBeGreaterThan(10);
    await expect(measureSignRate(hsm, 'no-such-key', 0.1)).rejects.toThrow(/HSM_KEY_NOT_FOUND/);
  });
});

describe('secrets and lifecycle', () => {
  it('the PIN never appears in a log line or an error', () => {
    expect(logger.lines.length).toBeGreaterThan(5);
    expect(errors.length).toBeGreaterThan(10);
    const everything = JSON.stringify({ lines: logger.lines, errors });
    expect(everything).toContain('HSM_PIN_INCORRECT'); // the capture really contains the failures
    expect(everything).not.toContain(PIN);
    expect(everything).not.toContain(WRONG_PIN);
  });

  it('closing the last adapter finalizes the module; it can be opened again', async () => {
    await hsm.close();
    expect(loadedModuleCount()).toBe(0);
    const closed = await hsm.signer('ca-P-256');
    expect(closed.ok ? null : closed.error.code).toBe('HSM_SESSION_LOST');
    hsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN, logger }));
    const signer = must(await hsm.signer('ca-P-256'));
    expect(must(await signer.sign(new Uint8Array([7]))).length).toBe(64);
  });
});
