/**
 * The HSM adapter against every PKCS#11 implementation of the suite (SoftHSM2, NSS softoken), real modules in temp
 * directories: the token profile's measured data against the token, the station's CA and station keys (attributes
 * read back through a session of our own), signatures checked by openssl, certificates, what the token does when an
 * attacker with the user PIN tries to wrap or copy a key, PIN lock behaviour, inspectToken, session recovery,
 * concurrent signing and close while signatures are in flight.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Result } from '../../core/result.js';
import { MECHANISMS, mechanismName } from '../../core/hsm/token-profile.js';
import { checkRequirements } from '../../core/hsm/requirements.js';
import { inspectToken, loadedModuleCount, openHsm, type HsmAdmin } from './index.js';
import { rawSignatureToDer } from './ec.js';
import { captureLogger } from '../../testkit/hsm.js';
import { opensslSelfSignedDer } from '../../testkit/pki/test-util.js';
import { TEST_TOKEN_KINDS, createKindToken, type KindToken } from '../../testkit/tokens.js';

const PIN = 'Tok-pin-7731-q';
const P = pkcs11js;

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

describe.each(TEST_TOKEN_KINDS)('%s', (kind) => {
  const logger = captureLogger();
  let tok: KindToken;
  let hsm: HsmAdmin;

  beforeAll(async () => {
    tok = await createKindToken(kind, `ls-${kind}`.slice(0, 32), PIN);
  });
  afterAll(async () => {
    await hsm?.close();
    await tok?.cleanup();
  });

  it('the user PIN never locks (profile pinLock.locksAfter null): 12 wrong logins, then the right PIN works', async () => {
    expect(tok.profile.pinLock.locksAfter).toBeNull();
    const codes = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await openHsm({ ...tok.open, pin: `wrong-pin-${i}`, logger });
      codes.add(r.ok ? 'ok' : r.error.code);
    }
    expect(codes).toEqual(new Set(['HSM_PIN_INCORRECT']));
    hsm = must(await openHsm({ ...tok.open, pin: PIN, logger }));
    expect(hsm.profile?.id).toBe(kind);
  });

  it("the profile's measured mechanisms are exactly the station's mechanisms the token lists", async () => {
    const m = must(await hsm.mechanisms());
    const listed = m.mechanisms.map((x) => mechanismName(x.type)).sort();
    expect(listed).toEqual([...tok.profile.mechanisms].sort());
    expect(m.listed).toBeGreaterThanOrEqual(listed.length);
    const reqs = must(await hsm.checkRequirements());
    expect(reqs.filter((r) => !r.satisfied)).toEqual([]);
  });

  it('CA and station keys: sensitive, never extractable, sign-only; CKA_VALUE unreadable; same CKA_ID on both halves', async () => {
    for (const [label, curve] of [
      ['issuing-ca', 'P-256'],
      ['station', 'P-256'],
      ['ca-384', 'P-384'],
    ] as const) {
      const gen = must(await hsm.generateSigningKey(label, curve));
      const info = must(await hsm.findKey(label))!;
      expect(info).toMatchObject({
        label,
        class: 'private',
        keyType: `EC ${curve}`,
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        unprotected: [],
      });
      expect(info.id).toBe(gen.id);
      const r = tok.raw();
      try {
        const [priv] = r.find([
          { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
          { type: P.CKA_LABEL, value: label },
        ]);
        const [pub] = r.find([
          { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
          { type: P.CKA_LABEL, value: label },
        ]);
        const want: [number, number][] = [
          [P.CKA_SENSITIVE, 1],
          [P.CKA_EXTRACTABLE, 0],
          [P.CKA_ALWAYS_SENSITIVE, 1],
          [P.CKA_NEVER_EXTRACTABLE, 1],
          [P.CKA_PRIVATE, 1],
          [P.CKA_TOKEN, 1],
          [P.CKA_SIGN, 1],
          [P.CKA_DERIVE, 0],
        ];
        if (!tok.profile.keyAttributes.refused.includes('CKA_COPYABLE')) want.push([P.CKA_COPYABLE, 0]);
        for (const [type, v] of want) expect([type, r.get(priv!, type)[0]]).toEqual([type, v]);
        expect(r.get(pub!, P.CKA_ID).toString('hex')).toBe(gen.id);
        expect(() => r.get(priv!, P.CKA_VALUE)).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      } finally {
        r.close();
      }
    }
    const again = await hsm.generateSigningKey('station', 'P-256');
    expect(again.ok ? null : again.error.code).toBe('INPUT_INVALID');
  });

  it.each([
    ['issuing-ca', 'sha256', 64],
    ['ca-384', 'sha384', 96],
  ] as const)('signatures by %s verify with openssl', async (label, hash, len) => {
    const signer = must(await hsm.signer(label));
    const data = Buffer.from(`record signed on ${kind} by ${label}`);
    const sig = must(await signer.sign(data));
    expect(sig.length).toBe(len);
    const pem = createPublicKey({ key: Buffer.from(signer.publicKeySpki), format: 'der', type: 'spki' }).export({
      format: 'pem',
      type: 'spki',
    });
    writeFileSync(join(tok.dir, 'pub.pem'), pem);
    writeFileSync(join(tok.dir, 'data.bin'), data);
    writeFileSync(join(tok.dir, 'sig.der'), rawSignatureToDer(sig));
    const verify = (file: string): string => {
      try {
        return execFileSync(
          'openssl',
          ['dgst', `-${hash}`, '-verify', join(tok.dir, 'pub.pem'), '-signature', join(tok.dir, 'sig.der'), file],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        ).toString();
      } catch (e) {
        return String((e as { stdout?: Buffer }).stdout ?? '');
      }
    };
    expect(verify(join(tok.dir, 'data.bin'))).toContain('Verified OK');
    writeFileSync(join(tok.dir, 'other.bin'), 'other data');
    expect(verify(join(tok.dir, 'other.bin'))).toContain('Verification failure');
  });

  it('certificates: import, read back, replace; bad DER rejected', async () => {
    const make = (cn: string): Uint8Array => opensslSelfSignedDer(tok.dir, `/CN=${cn}`);
    expect(must(await hsm.certificate('issuing-ca'))).toBeNull();
    const c1 = make('one');
    expect(must(await hsm.importCertificate('issuing-ca', c1)).id).toBe(must(await hsm.findKey('issuing-ca'))!.id);
    const c2 = make('two');
    must(await hsm.importCertificate('issuing-ca', c2));
    expect(Buffer.from(must(await hsm.certificate('issuing-ca'))!).equals(Buffer.from(c2))).toBe(true);
    const bad = await hsm.importCertificate('issuing-ca', c2.subarray(0, 50));
    expect(bad.ok ? null : bad.error.code).toBe('INPUT_INVALID');
    expect(must(await hsm.info()).keys.filter((k) => k.class === 'certificate')).toHaveLength(1);
  });

  it('attack with the user PIN: wrap and copy the CA key -- refused exactly when the profile says protection is enforced', async () => {
    const r = tok.raw();
    try {
      const [ca] = r.find([
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_LABEL, value: 'issuing-ca' },
      ]);
      const kek = r.lib.C_GenerateKey(r.session, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_WRAP, value: true },
        { type: P.CKA_EXTRACTABLE, value: true },
        { type: P.CKA_SENSITIVE, value: false },
      ]);
      const wrapMech = MECHANISMS[tok.profile.rfc5649Wrap ?? 'CKM_AES_KEY_WRAP_PAD'];
      const attempts = {
        wrap: () => r.lib.C_WrapKey(r.session, { mechanism: wrapMech }, kek, ca!, Buffer.alloc(4096)),
        copy: () => r.lib.C_CopyObject(r.session, ca!, [{ type: P.CKA_TOKEN, value: false }]),
        setExtractable: () => r.lib.C_SetAttributeValue(r.session, ca!, [{ type: P.CKA_EXTRACTABLE, value: true }]),
      };
      const outcome = (f: () => unknown): string => {
        try {
          f();
          return 'done';
        } catch (e) {
          // pkcs11js does not name PKCS#11 2.40's CKR_ACTION_PROHIBITED (0x1B): it says CKR_VENDOR_DEFINED:27.
          const m = /^(CKR_[A-Z_]+)(?::(\d+))?/.exec((e as Error).message);
          return m ? (m[2] === '27' ? 'CKR_ACTION_PROHIBITED' : m[1]!) : (e as Error).message;
        }
      };
      const seen = Object.fromEntries(Object.entries(attempts).map(([k, f]) => [k, outcome(f)]));
      // Turning the attribute back is refused everywhere.
      expect(seen['setExtractable']).toBe('CKR_ATTRIBUTE_READ_ONLY');
      if (tok.profile.keyProtection.enforced) {
        expect(seen['wrap']).toBe('CKR_KEY_UNEXTRACTABLE');
        expect(seen['copy']).toBe('CKR_ACTION_PROHIBITED');
      } else {
        // Measured: the token reports the key non-extractable but wraps and copies it anyway (docs/hsm.md).
        expect(seen).toMatchObject({ wrap: 'done', copy: 'done' });
      }
    } finally {
      r.close();
    }
  });

  it('key injection: the board unwraps (RFC 5649) a key matching publicKeySpki', async () => {
    const { createDecipheriv, createPrivateKey, diffieHellman } = await import('node:crypto');
    const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const w = must(
      await hsm.generateWrappedDeviceKey({
        curve: 'P-256',
        publicKeySpki: new Uint8Array(transport.publicKey.export({ format: 'der', type: 'spki' })),
      }),
    );
    const eph = createPublicKey({ key: Buffer.from(w.ephemeralPublicKeySpki), format: 'der', type: 'spki' });
    const kek = diffieHellman({ privateKey: transport.privateKey, publicKey: eph });
    const d = createDecipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
    const key = createPrivateKey({
      key: Buffer.concat([d.update(Buffer.from(w.wrappedKey)), d.final()]),
      format: 'der',
      type: 'pkcs8',
    });
    const pub = createPublicKey(key).export({ format: 'der', type: 'spki' });
    expect(Buffer.from(pub).equals(Buffer.from(w.publicKeySpki))).toBe(true);
  });

  it('a token whose mechanism list lacks the RFC 5649 wrap: injection refused with HSM_TOKEN_LACKS_MECHANISM', async () => {
    // Without a profile the station asks for CKM_AES_KEY_WRAP_KWP (PKCS#11 3.0's RFC 5649); SoftHSM2 does not list it.
    const second = must(await openHsm({ ...tok.open, pin: PIN, logger, profile: null }));
    try {
      const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const r = await second.generateWrappedDeviceKey({
        curve: 'P-256',
        publicKeySpki: new Uint8Array(transport.publicKey.export({ format: 'der', type: 'spki' })),
      });
      const listsKwp = tok.profile.mechanisms.includes('CKM_AES_KEY_WRAP_KWP');
      expect(r.ok).toBe(listsKwp);
      if (!r.ok) {
        expect(r.error.code).toBe('HSM_TOKEN_LACKS_MECHANISM');
        expect(r.error.message).toBe(
          `token ${tok.profile.match.model} "${tok.tokenLabel}" has no CKM_AES_KEY_WRAP_KWP: profiles with keyMode injected cannot run on it`,
        );
      }
      // A profile that says the token has no RFC 5649 wrap at all.
      const none = must(
        await openHsm({ ...tok.open, pin: PIN, logger, profile: { ...tok.profile, rfc5649Wrap: null } }),
      );
      const refused = await none.generateWrappedDeviceKey({
        curve: 'P-256',
        publicKeySpki: new Uint8Array(transport.publicKey.export({ format: 'der', type: 'spki' })),
      });
      await none.close();
      expect(refused.ok ? null : refused.error.message).toMatch(
        /has no RFC 5649 key wrap: profiles with keyMode injected/,
      );
    } finally {
      await second.close();
    }
  });

  it('inspectToken: module, token, login, mechanisms, requirements and the keys, never the PIN', async () => {
    const keys = [
      { role: 'issuingCa', label: 'issuing-ca' },
      { role: 'station', label: 'station' },
      { role: 'missing', label: 'no-such-key' },
    ];
    const rep = await inspectToken({ ...tok.open, pin: PIN, keys, logger });
    expect(rep.profile).toEqual({ id: kind, name: tok.profile.name });
    expect(rep.module.status).toBe('pass');
    expect(rep.token).toMatchObject({
      status: 'pass',
      label: tok.tokenLabel,
      pin: { initialized: true, locked: false },
    });
    expect(rep.login.status).toBe('pass');
    expect(rep.mechanisms.status).toBe('pass');
    expect(rep.requirements.map((r) => [r.requirement, r.satisfied])).toEqual([
      ['signing-key-p256', true],
      ['signing-key-p384', true],
      ['key-injection', true],
    ]);
    expect(rep.keyProtectionEnforced).toMatchObject({
      status: tok.profile.keyProtection.enforced ? 'pass' : 'warn',
      enforced: tok.profile.keyProtection.enforced,
    });
    expect(rep.keys.map((k) => [k.role, k.status, k.found])).toEqual([
      ['issuingCa', 'pass', true],
      ['station', 'pass', true],
      ['missing', 'fail', false],
    ]);
    expect(rep.keys[0]).toMatchObject({
      sensitive: true,
      extractable: false,
      alwaysSensitive: true,
      neverExtractable: true,
    });
    expect(rep.keys[2]!.error?.code).toBe('HSM_KEY_NOT_FOUND');
    expect(rep.status).toBe('fail');
    // the same requirement checks the adapter makes
    expect(rep.requirements).toEqual(
      checkRequirements(
        must(await hsm.mechanisms()).mechanisms,
        tok.profile,
        `${tok.profile.name} "${tok.tokenLabel}"`,
      ),
    );

    const wrong = await inspectToken({ ...tok.open, pin: 'not-the-pin', keys, logger });
    expect(wrong.login.error?.code).toBe('HSM_PIN_INCORRECT');
    expect(wrong.keys.every((k) => k.status === 'skip')).toBe(true);
    const noPin = await inspectToken({ ...tok.open, keys });
    expect(noPin.login.status).toBe('skip');
    expect(noPin.mechanisms.status).toBe('pass');
    const absent = await inspectToken({ ...tok.open, tokenLabel: 'no-such-token', pin: PIN });
    expect(absent.token).toMatchObject({ status: 'fail', error: { code: 'HSM_TOKEN_ABSENT' } });
    expect(absent.token.tokensPresent).toContain(tok.tokenLabel);
    const noModule = await inspectToken({ ...tok.open, module: join(tok.dir, 'missing.so'), pin: PIN });
    expect(noModule.module).toMatchObject({ status: 'fail', error: { code: 'HSM_MODULE_LOAD_FAILED' } });
    expect(noModule.status).toBe('fail');
    expect(JSON.stringify([rep, wrong, noPin, absent, noModule, logger.lines])).not.toContain(PIN);
  });

  it('recovers transparently when all sessions are closed behind its back (logged out too)', async () => {
    const signer = must(await hsm.signer('issuing-ca'));
    must(await signer.sign(new Uint8Array([1]))); // warm the session pool
    const lost = () => logger.lines.filter((l) => l.msg.includes('session lost')).length;
    const before = lost();
    const r = tok.raw();
    r.lib.C_CloseAllSessions(r.slot);
    const data = new Uint8Array([1, 2, 3]);
    const sig = must(await signer.sign(data));
    expect(sig.length).toBe(64);
    expect(lost()).toBeGreaterThan(before);
    r.lib.C_CloseAllSessions(r.slot);
    expect(must(await hsm.findKey('station'))?.class).toBe('private');
    expect(must(await hsm.info()).loggedIn).toBe(true);
  });

  it('the cached key handle: re-resolved after session loss (signatures still verify), and a key pair replaced behind its back under the same label is refused, not used', async () => {
    const { verify } = await import('node:crypto');
    const verifies = (spki: Uint8Array, data: Uint8Array, sig: Uint8Array) =>
      verify(
        'sha256',
        data,
        { key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), dsaEncoding: 'ieee-p1363' },
        sig,
      );
    must(await hsm.generateSigningKey('swap', 'P-256'));
    const signer = must(await hsm.signer('swap'));
    const data = new Uint8Array([4, 5, 6]);
    expect(verifies(signer.publicKeySpki, data, must(await signer.sign(data)))).toBe(true);
    // Session loss and logout drop the handle cache: the key is looked up again and still verifies.
    const r = tok.raw();
    r.lib.C_CloseAllSessions(r.slot);
    for (let i = 0; i < 3; i++) expect(verifies(signer.publicKeySpki, data, must(await signer.sign(data)))).toBe(true);
    // Another adapter (as `station rotate-key` in another process) replaces the pair under the same label.
    const other = must(await openHsm({ ...tok.open, pin: PIN }));
    try {
      expect(must(await other.destroyKeyPair('swap')).destroyed).toBe(2);
      const replaced = must(await other.generateSigningKey('swap', 'P-256'));
      expect(Buffer.from(replaced.publicKeySpki).equals(Buffer.from(signer.publicKeySpki))).toBe(false);
    } finally {
      await other.close();
    }
    // The old signer must not sign with the new key while claiming the old public key.
    const after = await signer.sign(data);
    expect(after.ok ? 'signed' : after.error.code).toBe('HSM_KEY_NOT_FOUND');
    expect(after.ok ? '' : after.error.message).toContain('not the key this signer was opened with');
    // A signer opened now gets the new key, and its signatures verify.
    const fresh = must(await hsm.signer('swap'));
    expect(verifies(fresh.publicKeySpki, data, must(await fresh.sign(data)))).toBe(true);
    must(await hsm.destroyKeyPair('swap'));
  });

  it('200 concurrent signatures (two curves) all verify; close() waits for those in flight', async () => {
    const { verify } = await import('node:crypto');
    const s256 = must(await hsm.signer('issuing-ca'));
    const s384 = must(await hsm.signer('ca-384'));
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const signer = i % 3 === 0 ? s384 : s256;
        const data = Buffer.from(`board ${i}`);
        const sig = must(await signer.sign(data));
        const key = createPublicKey({ key: Buffer.from(signer.publicKeySpki), format: 'der', type: 'spki' });
        return verify(signer.curve === 'P-384' ? 'sha384' : 'sha256', data, key, Buffer.from(rawSignatureToDer(sig)));
      }),
    );
    expect(results.filter(Boolean)).toHaveLength(200);
    const inflight = Array.from({ length: 40 }, (_, i) => s384.sign(new Uint8Array([i])));
    await inflight[0];
    await hsm.close();
    expect(loadedModuleCount()).toBe(0);
    for (const r of await Promise.all(inflight)) {
      if (r.ok) expect(r.value.length).toBe(96);
      else expect(r.error.code).toBe('HSM_SESSION_LOST');
    }
    const after = await s256.sign(new Uint8Array([1]));
    expect(after.ok ? null : after.error.code).toBe('HSM_SESSION_LOST');
    // the module can be loaded again after the last close
    hsm = must(await openHsm({ ...tok.open, pin: PIN, logger }));
    expect(must(await must(await hsm.signer('station')).sign(new Uint8Array([7]))).length).toBe(64);
  });

  it('closing the last adapter unloads the module', async () => {
    await hsm.close();
    expect(loadedModuleCount()).toBe(0);
  });
});
