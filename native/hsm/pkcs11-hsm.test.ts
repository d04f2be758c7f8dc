/**
 * PKCS#11 adapter against a real SoftHSM2 token in a throwaway directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { StationError } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { loadedModuleCount, openHsm, type HsmAdmin } from './index.js';
import { measureSignRate } from '../../testkit/bench/hsm.js';
import { rawSignatureToDer } from './ec.js';
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

function verifyNode(spki: Uint8Array, data: Uint8Array, rawSig: Uint8Array, hash: 'sha256' | 'sha384'): boolean {
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  return verify(hash, data, key, Buffer.from(rawSignatureToDer(rawSig)));
}

/** A raw pkcs11js session of our own, to inspect and disturb the token behind the adapter's back. */
function raw(tokenLabel: string) {
  const lib = new pkcs11js.PKCS11();
  lib.load(tok.env.module);
  try {
    lib.C_Initialize();
  } catch (e) {
    if (!String((e as Error).message).startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw e;
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === tokenLabel);
  if (!slot) throw new Error('slot not found');
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  const find = (template: { type: number; value?: number | boolean | string | Buffer }[]): Buffer[] => {
    lib.C_FindObjectsInit(session, template);
    const r = lib.C_FindObjects(session, 100);
    lib.C_FindObjectsFinal(session);
    return r;
  };
  const get = (o: Buffer, type: number): Buffer => lib.C_GetAttributeValue(session, o, [{ type }])[0]!.value!;
  return { lib, slot, session, find, get, close: () => lib.C_CloseSession(session) };
}

beforeAll(async () => {
  tok = await createTestTokens(['station', 'spare'], PIN);
  hsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN, logger }));
});

afterAll(async () => {
  await hsm?.close();
  await tok?.cleanup();
});

describe('signing keys', () => {
  it.each([
    ['P-256', 'ES256', 'sha256', 64],
    ['P-384', 'ES384', 'sha384', 96],
  ] as const)('%s: generate, sign, verify independently (node:crypto and openssl)', async (curve, alg, hash, len) => {
    const label = `ca-${curve}`;
    const gen = must(await hsm.generateSigningKey(label, curve));
    expect(gen.id).toMatch(/^[0-9a-f]{32}$/);
    const signer = must(await hsm.signer(label));
    expect(signer.algorithm).toBe(alg);
    expect(signer.curve).toBe(curve);
    expect(Buffer.from(signer.publicKeySpki).equals(Buffer.from(gen.publicKeySpki))).toBe(true);

    const data = new TextEncoder().encode(`provisioning record for ${curve}`);
    const sig = must(await signer.sign(data));
    expect(sig.length).toBe(len);
    expect(verifyNode(signer.publicKeySpki, data, sig, hash)).toBe(true);
    expect(verifyNode(signer.publicKeySpki, new TextEncoder().encode('other data'), sig, hash)).toBe(false);

    // openssl, fully independent of our DER helpers except the signature encoding
    const pem = createPublicKey({ key: Buffer.from(signer.publicKeySpki), format: 'der', type: 'spki' }).export({
      format: 'pem',
      type: 'spki',
    });
    writeFileSync(join(tok.dir, 'pub.pem'), pem);
    writeFileSync(join(tok.dir, 'data.bin'), data);
    writeFileSync(join(tok.dir, 'sig.der'), rawSignatureToDer(sig));
    const out = execFileSync('openssl', [
      'dgst',
      `-${hash}`,
      '-verify',
      join(tok.dir, 'pub.pem'),
      '-signature',
      join(tok.dir, 'sig.der'),
      join(tok.dir, 'data.bin'),
    ]).toString();
    expect(out).toContain('Verified OK');
  });

  it('private key attributes: sensitive, never extractable, sign-only; CKA_VALUE cannot be read', async () => {
    const info = must(await hsm.findKey('ca-P-256'));
    expect(info).toMatchObject({
      label: 'ca-P-256',
      class: 'private',
      keyType: 'EC P-256',
      sensitive: true,
      extractable: false,
    });
    const r = raw('station');
    try {
      const P = pkcs11js;
      const [priv] = r.find([
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_LABEL, value: 'ca-P-256' },
      ]);
      const [pub] = r.find([
        { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
        { type: P.CKA_LABEL, value: 'ca-P-256' },
      ]);
      expect(priv && pub).toBeTruthy();
      for (const [type, want] of [
        [P.CKA_SENSITIVE, 1],
        [P.CKA_EXTRACTABLE, 0],
        [P.CKA_ALWAYS_SENSITIVE, 1],
        [P.CKA_NEVER_EXTRACTABLE, 1],
        [P.CKA_PRIVATE, 1],
        [P.CKA_TOKEN, 1],
        [P.CKA_SIGN, 1],
        [P.CKA_DERIVE, 0],
      ] as const) {
        expect([type, r.get(priv!, type)[0]]).toEqual([type, want]);
      }
      expect(r.get(priv!, P.CKA_ID).toString('hex')).toBe(info!.id);
      expect(r.get(pub!, P.CKA_ID).toString('hex')).toBe(info!.id);
      expect(() => r.get(priv!, P.CKA_VALUE)).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
    } finally {
      r.close();
    }
  });

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

  it('certificates: null when absent, import, read back, replace; bad DER rejected', async () => {
    expect(must(await hsm.certificate('ca-P-256'))).toBeNull();
    const make = (cn: string): Uint8Array => {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-subj',
          `/CN=${cn}`,
          '-keyout',
          join(tok.dir, 'k.pem'),
          '-out',
          join(tok.dir, 'c.der'),
          '-outform',
          'DER',
          '-days',
          '1',
        ],
        { stdio: 'ignore' },
      );
      return new Uint8Array(readFileSync(join(tok.dir, 'c.der')));
    };
    const c1 = make('first');
    const imported = must(await hsm.importCertificate('ca-P-256', c1));
    expect(imported.id).toBe(must(await hsm.findKey('ca-P-256'))!.id);
    expect(Buffer.from(must(await hsm.certificate('ca-P-256'))!).equals(Buffer.from(c1))).toBe(true);
    const c2 = make('second');
    must(await hsm.importCertificate('ca-P-256', c2));
    expect(Buffer.from(must(await hsm.certificate('ca-P-256'))!).equals(Buffer.from(c2))).toBe(true);
    const bad = collect(await hsm.importCertificate('ca-P-256', c2.subarray(0, 50)));
    expect(bad.ok ? null : bad.error.code).toBe('INPUT_INVALID');
    expect(must(await hsm.info()).keys.filter((k) => k.class === 'certificate')).toHaveLength(1);
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

  it('recovers transparently when all sessions are closed behind its back (logged out too)', async () => {
    const signer = must(await hsm.signer('ca-P-256'));
    must(await signer.sign(new Uint8Array([1]))); // warm the session pool
    const before = logger.lines.filter((l) => l.msg.includes('session lost')).length;
    const r = raw('station');
    r.lib.C_CloseAllSessions(r.slot); // closes the adapter's sessions and logs the application out
    const data = new Uint8Array([1, 2, 3]);
    const sig = must(await signer.sign(data));
    expect(verifyNode(signer.publicKeySpki, data, sig, 'sha256')).toBe(true);
    expect(logger.lines.filter((l) => l.msg.includes('session lost')).length).toBeGreaterThan(before);
    // main-session operations recover too
    r.lib.C_CloseAllSessions(r.slot);
    expect(must(await hsm.findKey('ca-P-384'))?.class).toBe('private');
    expect(must(await hsm.info()).loggedIn).toBe(true);
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
  it('200 signatures from many concurrent callers (two keys) all verify', async () => {
    const s256 = must(await hsm.signer('ca-P-256'));
    const s384 = must(await hsm.signer('ca-P-384'));
    const jobs = Array.from({ length: 200 }, async (_, i) => {
      const signer = i % 3 === 0 ? s384 : s256;
      const data = new TextEncoder().encode(`board ${i}`);
      await new Promise((r) => setTimeout(r, i % 7));
      const sig = must(await signer.sign(data));
      return verifyNode(signer.publicKeySpki, data, sig, signer.curve === 'P-384' ? 'sha384' : 'sha256');
    });
    const results = await Promise.all(jobs);
    expect(results.filter(Boolean)).toHaveLength(200);
  });

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

  it('close() while signatures are in flight: waits for them, no crash, later calls fail cleanly', async () => {
    const signer = must(await hsm.signer('ca-P-384'));
    const inflight = Array.from({ length: 40 }, (_, i) => signer.sign(new Uint8Array([i])));
    await inflight[0]; // the pool is now busy with C_SignAsync calls on worker threads
    await hsm.close();
    expect(loadedModuleCount()).toBe(0);
    const results = await Promise.all(inflight);
    for (const r of results) {
      if (r.ok) expect(r.value.length).toBe(96);
      else expect(r.error.code).toBe('HSM_SESSION_LOST');
    }
    expect(results.some((r) => r.ok)).toBe(true);
    const after = await signer.sign(new Uint8Array([1]));
    expect(after.ok ? null : after.error.code).toBe('HSM_SESSION_LOST');
    hsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN, logger }));
  });
});
