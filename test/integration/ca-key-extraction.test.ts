/**
 * Attack: the user PIN holder tries to take the issuing CA key (and the station signing key) out of the station
 * token that `station init` made, with raw PKCS#11 calls of its own (pkcs11js, real SoftHSM2): wrap it with an
 * AES key they create, read CKA_VALUE, turn CKA_EXTRACTABLE on / CKA_SENSITIVE off, copy it with other
 * attributes. Every step must be refused by the token; a control key the attacker makes extractable shows the
 * same calls do extract a key that is not protected (so the test can fail).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createDecipheriv, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { KEY_LABELS, STATION_TOKEN, initStation } from '../../station/commission/init.js';
import type { StationConfig } from '../../station/config.js';
import { captureLogger } from '../../testkit/hsm.js';
import { openHsm } from '../../native/hsm/index.js';
import { openEngine } from '../../station/engine.js';

const P = pkcs11js;
type Tpl = { type: number; value?: number | boolean | string | Buffer }[];

let dir: string;
let config: StationConfig;
let pin: string;

/** The attacker's own session: the module loaded by hand, logged in with the user PIN. */
function attackerSession() {
  const lib = new P.PKCS11();
  lib.load(config.hsm.module);
  try {
    lib.C_Initialize();
  } catch (e) {
    if (!String((e as Error).message).startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw e;
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === STATION_TOKEN);
  if (!slot) throw new Error('station token not found');
  const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  try {
    lib.C_Login(s, P.CKU_USER, pin);
  } catch (e) {
    if (!String((e as Error).message).startsWith('CKR_USER_ALREADY_LOGGED_IN')) throw e;
  }
  const find = (t: Tpl): Buffer[] => {
    lib.C_FindObjectsInit(s, t);
    const r = lib.C_FindObjects(s, 10);
    lib.C_FindObjectsFinal(s);
    return r;
  };
  return {
    lib,
    s,
    find,
    close: () => {
      lib.C_CloseSession(s);
      lib.C_Finalize();
    },
  };
}

/** The Cryptoki return code a call failed with ("" when it succeeded). */
function ckr(fn: () => unknown): string {
  try {
    fn();
    return '';
  } catch (e) {
    const m = /^(CKR_[A-Z_]+):(\d+)/.exec((e as Error).message);
    // pkcs11js does not name PKCS#11 2.40's CKR_ACTION_PROHIBITED (0x1B): it says CKR_VENDOR_DEFINED:27.
    return m ? (m[2] === '27' ? 'CKR_ACTION_PROHIBITED' : m[1]!) : (e as Error).message;
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ls-ca-key-'));
  const vendorRoot = join(dir, 'vendor-root.pem');
  // init needs a vendor attestation root; any certificate will do here.
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
      '-keyout',
      join(dir, 'vendor.key'),
      '-out',
      vendorRoot,
      '-subj',
      '/CN=vendor',
      '-days',
      '2',
    ],
    { stdio: 'ignore' },
  );
  const r = await initStation({
    dataDir: join(dir, 'station'),
    stationId: 'station-kx',
    attestationRoots: [vendorRoot],
    logger: captureLogger(),
  });
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  config = r.value.config;
  pin = (await readFile(join(dir, 'station', 'secrets', 'hsm-user.pin'), 'utf8')).trim();
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the issuing CA and station keys cannot leave the station token (user PIN + raw PKCS#11)', () => {
  it('wrap with a user-made AES key, read CKA_VALUE, flip attributes, copy: all refused; a weak control key leaks', () => {
    const a = attackerSession();
    try {
      const kek = a.lib.C_GenerateKey(a.s, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_WRAP, value: true },
        { type: P.CKA_UNWRAP, value: true },
        { type: P.CKA_EXTRACTABLE, value: true },
        { type: P.CKA_SENSITIVE, value: false },
      ]);
      for (const label of [KEY_LABELS.issuingCa, KEY_LABELS.station]) {
        const [priv] = a.find([
          { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
          { type: P.CKA_LABEL, value: label },
        ]);
        expect(priv, label).toBeTruthy();
        const refusals = {
          wrapPad: ckr(() =>
            a.lib.C_WrapKey(a.s, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, kek, priv!, Buffer.alloc(4096)),
          ),
          wrap: ckr(() => a.lib.C_WrapKey(a.s, { mechanism: P.CKM_AES_KEY_WRAP }, kek, priv!, Buffer.alloc(4096))),
          value: ckr(() => a.lib.C_GetAttributeValue(a.s, priv!, [{ type: P.CKA_VALUE }])),
          setExtractable: ckr(() => a.lib.C_SetAttributeValue(a.s, priv!, [{ type: P.CKA_EXTRACTABLE, value: true }])),
          setSensitive: ckr(() => a.lib.C_SetAttributeValue(a.s, priv!, [{ type: P.CKA_SENSITIVE, value: false }])),
          copy: ckr(() =>
            a.lib.C_CopyObject(a.s, priv!, [
              { type: P.CKA_TOKEN, value: false },
              { type: P.CKA_EXTRACTABLE, value: true },
            ]),
          ),
          copyPlain: ckr(() => a.lib.C_CopyObject(a.s, priv!, [{ type: P.CKA_TOKEN, value: false }])),
        };
        expect(refusals, label).toEqual({
          wrapPad: 'CKR_KEY_UNEXTRACTABLE',
          wrap: 'CKR_KEY_UNEXTRACTABLE',
          value: 'CKR_ATTRIBUTE_SENSITIVE',
          setExtractable: 'CKR_ATTRIBUTE_READ_ONLY',
          setSensitive: 'CKR_ATTRIBUTE_READ_ONLY',
          copy: 'CKR_ACTION_PROHIBITED',
          copyPlain: 'CKR_ACTION_PROHIBITED',
        });
        const flags = a.lib.C_GetAttributeValue(a.s, priv!, [
          { type: P.CKA_SENSITIVE },
          { type: P.CKA_EXTRACTABLE },
          { type: P.CKA_ALWAYS_SENSITIVE },
          { type: P.CKA_NEVER_EXTRACTABLE },
        ]);
        expect(
          flags.map((f) => f.value![0]),
          label,
        ).toEqual([1, 0, 1, 1]);
      }
      // Control: the same calls on a key the attacker generated extractable do wrap it (the attack works on a key
      // without the protection, so the refusals above are the template's doing).
      const weak = a.lib.C_GenerateKeyPair(
        a.s,
        { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
        ],
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: true },
          { type: P.CKA_SIGN, value: true },
        ],
      );
      const wrapped = a.lib.C_WrapKey(
        a.s,
        { mechanism: P.CKM_AES_KEY_WRAP_PAD },
        kek,
        weak.privateKey,
        Buffer.alloc(4096),
      );
      // The attacker holds the KEK in clear, so a wrapped key is a key in clear: unwrap it outside the token: it is
      // the private half of the token's public key.
      const kekValue = a.lib.C_GetAttributeValue(a.s, kek, [{ type: P.CKA_VALUE }])[0]!.value!;
      const d = createDecipheriv('id-aes256-wrap-pad', kekValue, Buffer.from('a65959a6', 'hex'));
      const stolen = createPrivateKey({
        key: Buffer.concat([d.update(wrapped), d.final()]),
        format: 'der',
        type: 'pkcs8',
      });
      const point = a.lib.C_GetAttributeValue(a.s, weak.publicKey, [{ type: P.CKA_EC_POINT }])[0]!.value!;
      const jwk = createPublicKey(stolen).export({ format: 'jwk' });
      expect(
        Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]),
      ).toEqual(point.subarray(point.length - 65));
    } finally {
      a.close();
    }
  });

  it('a station whose issuing CA key is extractable (as the former escrow made it) refuses to open: HSM_KEY_EXPORTABLE', async () => {
    // Replace the CA key pair by an extractable one under the same label, the way `{ wrappable: true }` generated it.
    const a = attackerSession();
    try {
      for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY])
        for (const h of a.find([
          { type: P.CKA_CLASS, value: cls },
          { type: P.CKA_LABEL, value: KEY_LABELS.issuingCa },
        ]))
          a.lib.C_DestroyObject(a.s, h);
      const common = [
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_LABEL, value: KEY_LABELS.issuingCa },
      ];
      a.lib.C_GenerateKeyPair(
        a.s,
        { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [...common, { type: P.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }],
        [
          ...common,
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: true },
          { type: P.CKA_SIGN, value: true },
        ],
      );
    } finally {
      a.close();
    }
    const e = await openEngine({ dataDir: join(dir, 'station'), logger: captureLogger() });
    if (e.ok) await e.value.close();
    expect(e.ok ? 'opened' : e.error.code).toBe('HSM_KEY_EXPORTABLE');
    expect(e.ok ? [] : e.error.details?.['attributes']).toEqual([
      'CKA_EXTRACTABLE true',
      'CKA_NEVER_EXTRACTABLE false',
    ]);
  });

  it('the adapter reports the station key protected and the replaced CA key not (findKey: unprotected)', async () => {
    const hsm = await openHsm({ module: config.hsm.module, tokenLabel: STATION_TOKEN, pin });
    if (!hsm.ok) throw new Error(hsm.error.message);
    try {
      const k = await hsm.value.findKey(KEY_LABELS.station);
      expect(k.ok && k.value).toMatchObject({ sensitive: true, extractable: false, unprotected: [] });
      const ca = await hsm.value.findKey(KEY_LABELS.issuingCa);
      expect(ca.ok && ca.value).toMatchObject({
        extractable: true,
        unprotected: ['CKA_EXTRACTABLE true', 'CKA_NEVER_EXTRACTABLE false'],
      });
    } finally {
      await hsm.value.close();
    }
  });
});
