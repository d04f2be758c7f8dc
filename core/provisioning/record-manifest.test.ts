/**
 * Record format v3's rule (core/provisioning/record-manifest.ts): the manifest JWS the station signed rebuilds byte
 * for byte from its payload and signature with the record's alg and x5c, and only then is a record written as v3;
 * a manifest signed under another chain or key or another issuing chain gives a v2 record. signedWithHeader tells the
 * flow that a run's manifest was signed with a replaced station key (the flow then signs it again). The readers' helpers give the same manifest JWS and issuing chain for v2 and v3, and the
 * rebuilt manifest verifies with jose (an independent JOSE implementation).
 */
import 'reflect-metadata';
import { compactVerify, importX509 } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, toBase64 } from '../bytes.js';
import { systemClock } from '../ports.js';
import { signJws } from '../pki/jws.js';
import { toPem } from '../pki/pem.js';
import { createTestStation, makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import { RECORD_SCHEMA, recordFormatMembers } from './record.js';
import {
  embedManifest,
  jwsHeaderOf,
  jwsLeafSha256,
  MANIFEST_TYP,
  rebuildManifest,
  RECORD_SCHEMA_V3,
  recordIssuingChain,
  recordManifestJws,
  signedWithHeader,
} from './record-manifest.js';

let A: TestStation;
let B: TestStation;

beforeAll(async () => {
  A = await createTestStation('rm-a', systemClock);
  B = await createTestStation('rm-b', systemClock);
});

const x5cOf = (chain: readonly Uint8Array[]) => chain.map((d) => toBase64(d));
const manifestSigned = async (chain: readonly Uint8Array[], signer = A.signer, payload = '{"a":1,"b":[true]}') => {
  const j = await signJws({ signer, payload: Buffer.from(payload), header: { typ: MANIFEST_TYP, x5c: chain } });
  if (!j.ok) throw new Error(j.error.message);
  return j.value;
};

describe('the v3 manifest rule', () => {
  it('embeds a manifest that rebuilds byte for byte with the record header, and nothing else', async () => {
    const jws = await manifestSigned(A.chain);
    const header = { alg: 'ES256', x5c: x5cOf(A.chain) };
    const m = embedManifest(jws, header);
    expect(m).toEqual({ payload: { a: 1, b: [true] }, signature: jws.split('.')[2] });
    const back = rebuildManifest(header, m!);
    expect(back.ok && back.value.jws).toBe(jws);
    // Another x5c (another station, a chain of a rotated key), another alg, a payload not in canonical form.
    expect(embedManifest(jws, { alg: 'ES256', x5c: x5cOf(B.chain) })).toBeNull();
    expect(embedManifest(jws, { alg: 'ES384', x5c: x5cOf(A.chain) })).toBeNull();
    expect(embedManifest(await manifestSigned(A.chain, A.signer, '{"b":1,"a":2}'), header)).toBeNull();
    expect(embedManifest(await manifestSigned(A.chain, A.signer, '{"a": 1}'), header)).toBeNull();
    expect(embedManifest('not.a.jws', header)).toBeNull();
    // A header with a kid or another typ does not rebuild either.
    const kid = await signJws({
      signer: A.signer,
      payload: Buffer.from('{}'),
      header: { typ: MANIFEST_TYP, kid: 'k', x5c: A.chain },
    });
    expect(kid.ok && embedManifest(kid.value, header)).toBeNull();
    const typ = await signJws({ signer: A.signer, payload: Buffer.from('{}'), header: { typ: 'other', x5c: A.chain } });
    expect(typ.ok && embedManifest(typ.value, header)).toBeNull();
  });

  it('refuses what cannot be rebuilt, with a reason', () => {
    const header = { alg: 'ES256', x5c: x5cOf(A.chain) };
    expect(rebuildManifest({ alg: 'ES256' }, { payload: {}, signature: 'AA' }).ok).toBe(false);
    expect(rebuildManifest(header, { payload: {}, signature: 'A+/=' }).ok).toBe(false);
    expect(rebuildManifest(header, { payload: [], signature: 'AA' }).ok).toBe(false);
    expect(rebuildManifest(header, { payload: { s: '\ud800' }, signature: 'AA' }).ok).toBe(false);
  });

  it('the station writes v3 only when the issuing chain is x5c[1..] and the manifest rebuilds; v2 otherwise', async () => {
    const jws = await manifestSigned(A.chain);
    const common = { alg: 'ES256', stationChain: A.chain, caChain: A.chain.slice(1) };
    expect(recordFormatMembers({ ...common, manifestJws: jws }).schema).toBe(RECORD_SCHEMA_V3);
    // Resumed across a station key rotation: the manifest was signed under the old chain (and key).
    const old = await manifestSigned(B.chain, B.signer);
    const v2 = recordFormatMembers({ ...common, manifestJws: old });
    expect(v2).toEqual({
      schema: RECORD_SCHEMA,
      chain: A.chain.slice(1).map((d) => toPem(d, 'CERTIFICATE')),
      manifest: { jws: old },
    });
    // Another issuing chain than the station chain's (the device certificate's chain is not x5c[1..]).
    expect(recordFormatMembers({ ...common, caChain: B.chain.slice(1), manifestJws: jws }).schema).toBe(RECORD_SCHEMA);
    expect(recordFormatMembers({ ...common, caChain: A.chain.slice(1, 2), manifestJws: jws }).schema).toBe(
      RECORD_SCHEMA,
    );
  });
});

describe('readers: one manifest JWS and issuing chain for v2 and v3 records', () => {
  it('gives the manifest the station signed and the issuing chain, for both formats; jose verifies the manifest', async () => {
    for (const format of ['v3', 'v2', 'v1'] as const) {
      const made = await makeRecord(A, systemClock, { format });
      const rec = JSON.parse(made.json) as unknown;
      const header = jwsHeaderOf(made.jws);
      expect(header).toEqual({ alg: 'ES256', x5c: x5cOf(A.chain) });
      const m = recordManifestJws(rec, header);
      if (!m.ok) throw new Error(m.error);
      const leaf = await importX509(toPem(A.chain[0]!, 'CERTIFICATE'), 'ES256');
      const v = await compactVerify(m.value, leaf);
      expect(v.protectedHeader).toEqual({ alg: 'ES256', typ: MANIFEST_TYP, x5c: x5cOf(A.chain) });
      const chain = recordIssuingChain(rec, header);
      expect(chain.ok && chain.value.map((d) => toBase64(d))).toEqual(x5cOf(A.chain.slice(1)));
      expect(made.json.includes('"chain":["-----BEGIN')).toBe(format !== 'v3');
    }
  });

  it('a v3 record read with another header gives another manifest JWS (that does not verify)', async () => {
    const made = await makeRecord(A, systemClock);
    const rec = JSON.parse(made.json) as unknown;
    const m = recordManifestJws(rec, { alg: 'ES256', x5c: x5cOf(B.chain) });
    if (!m.ok) throw new Error(m.error);
    const leaf = await importX509(toPem(A.chain[0]!, 'CERTIFICATE'), 'ES256');
    await expect(compactVerify(m.value, leaf)).rejects.toThrow();
    expect(recordManifestJws(rec, null).ok).toBe(false);
    expect(recordIssuingChain(rec, { alg: 'ES256', x5c: x5cOf(A.chain).slice(0, 1) }).ok).toBe(false);
    expect(recordManifestJws({ schema: RECORD_SCHEMA, manifest: {} }, null).ok).toBe(false);
  });
});

describe('the signer of a manifest a run holds (a run resumed across a station key rotation)', () => {
  it('signedWithHeader: only the same alg and the same x5c, in the same order', async () => {
    const jws = await manifestSigned(A.chain);
    expect(signedWithHeader(jws, { alg: 'ES256', x5c: x5cOf(A.chain) })).toBe(true);
    expect(signedWithHeader(jws, { alg: 'ES256', x5c: x5cOf(B.chain) })).toBe(false);
    expect(signedWithHeader(jws, { alg: 'ES256', x5c: x5cOf(A.chain).slice(0, 2) })).toBe(false);
    expect(signedWithHeader(jws, { alg: 'ES256', x5c: x5cOf([...A.chain].reverse()) })).toBe(false);
    expect(signedWithHeader(jws, { alg: 'ES384', x5c: x5cOf(A.chain) })).toBe(false);
    expect(signedWithHeader('not-a-jws', { alg: 'ES256', x5c: x5cOf(A.chain) })).toBe(false);
  });

  it('jwsLeafSha256: SHA-256 of the x5c leaf; null without one', async () => {
    expect(await jwsLeafSha256(await manifestSigned(A.chain))).toBe(await sha256Hex(A.chain[0]!));
    expect(await jwsLeafSha256(await manifestSigned(B.chain))).toBe(await sha256Hex(B.chain[0]!));
    const none = await signJws({ signer: A.signer, payload: Buffer.from('{}'), header: { typ: MANIFEST_TYP } });
    expect(await jwsLeafSha256(none.ok ? none.value : '')).toBeNull();
    expect(await jwsLeafSha256('garbage')).toBeNull();
  });
});
