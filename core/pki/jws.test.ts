import 'reflect-metadata';
import { describe, expect, it, beforeAll } from 'vitest';
import { compactVerify, importSPKI, importX509 } from 'jose';
import { signJws, verifyJws } from './jws.js';
import { issueStationCertificate } from './ca.js';
import { toPem } from './pem.js';
import { createTestSigner, failingSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { createTestPki, fixedClock, must, type TestPki } from '../../testkit/pki/test-util.js';
import { utf8 } from '../bytes.js';
import { stationError } from '../errors.js';

const clock = fixedClock('2026-03-01T12:00:00Z');
let pki: TestPki;
let station: TestSigner;
let stationCert: Uint8Array;

beforeAll(async () => {
  pki = await createTestPki(clock);
  station = await createTestSigner('P-256');
  stationCert = must(
    await issueStationCertificate({
      issuer: { signer: pki.ca.signer, certificate: pki.ca.der },
      subjectPublicKeySpki: station.publicKeySpki,
      stationId: 'station-01',
      validityDays: 825,
      clock,
    }),
  );
});

describe('signJws', () => {
  it('produces tokens that jose verifies (SPKI and x5c leaf), ES256 and ES384', async () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const s = await createTestSigner(curve);
      const payload = utf8('{"hello":"world"}');
      const jws = must(await signJws({ signer: s, payload, header: { typ: 'test+jws', kid: 'k1' } }));
      const alg = curve === 'P-256' ? 'ES256' : 'ES384';
      const key = await importSPKI(toPem(s.publicKeySpki, 'PUBLIC KEY'), alg);
      const v = await compactVerify(jws, key);
      expect(new TextDecoder().decode(v.payload)).toBe('{"hello":"world"}');
      expect(v.protectedHeader).toEqual({ alg, typ: 'test+jws', kid: 'k1' });
    }
    const jws = must(
      await signJws({ signer: station, payload: utf8('x'), header: { typ: 't', x5c: [stationCert, pki.ca.der] } }),
    );
    const v = await compactVerify(jws, await importX509(toPem(stationCert, 'CERTIFICATE'), 'ES256'));
    expect(v.protectedHeader.x5c).toEqual([
      Buffer.from(stationCert).toString('base64'),
      Buffer.from(pki.ca.der).toString('base64'),
    ]);
  });

  it("returns the signer's error", async () => {
    const r = await signJws({
      signer: failingSigner(station, stationError('HSM_PIN_INCORRECT', 'bad pin')),
      payload: utf8('x'),
      header: { typ: 't' },
    });
    expect(r.ok ? '' : r.error.code).toBe('HSM_PIN_INCORRECT');
  });
});

describe('verifyJws', () => {
  it('verifies with a key or an x5c chain to a trust anchor', async () => {
    const jws = must(
      await signJws({ signer: station, payload: utf8('data'), header: { typ: 't', x5c: [stationCert, pki.ca.der] } }),
    );
    const byKey = must(await verifyJws(jws, { publicKeySpki: station.publicKeySpki }));
    expect(new TextDecoder().decode(byKey.payload)).toBe('data');
    const byChain = must(await verifyJws(jws, { trustAnchors: [pki.root.der], clock, typ: 't' }));
    expect(byChain.header.typ).toBe('t');
    expect(byChain.chain).toEqual([stationCert, pki.ca.der]);
    const other = await createTestPki(clock);
    const r = await verifyJws(jws, { trustAnchors: [other.root.der], clock });
    expect(r.ok ? '' : r.error.code).toBe('INPUT_INVALID');
    const late = await verifyJws(jws, { trustAnchors: [pki.root.der], clock: fixedClock('2030-01-01T00:00:00Z') });
    expect(late.ok ? '' : late.error.message).toContain('expired');
    const wrongTyp = await verifyJws(jws, { trustAnchors: [pki.root.der], clock, typ: 'other' });
    expect(wrongTyp.ok).toBe(false);
    const otherKey = await createTestSigner('P-256');
    expect((await verifyJws(jws, { publicKeySpki: otherKey.publicKeySpki })).ok).toBe(false);
    expect(
      (await verifyJws(jws, { publicKeySpki: otherKey.publicKeySpki, trustAnchors: [pki.root.der], clock })).ok,
    ).toBe(false);
    expect((await verifyJws(jws, {})).ok).toBe(false);
    // No x5c but anchors requested.
    const bare = must(await signJws({ signer: station, payload: utf8('data'), header: { typ: 't' } }));
    expect((await verifyJws(bare, { trustAnchors: [pki.root.der], clock })).ok).toBe(false);
  });

  it('rejects every single-character change of the token', async () => {
    const jws = must(
      await signJws({ signer: station, payload: utf8('{"a":1,"b":"two"}'), header: { typ: 't', x5c: [stationCert] } }),
    );
    const opts = { trustAnchors: [pki.ca.der], clock };
    expect((await verifyJws(jws, opts)).ok).toBe(true);
    const alphabet = 'AQgw_-.a';
    let checked = 0;
    for (let i = 0; i < jws.length; i++) {
      const c = jws[i]!;
      const repl = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length] ?? 'A';
      const mutated = jws.slice(0, i) + (repl === c ? 'B' : repl) + jws.slice(i + 1);
      const r = await verifyJws(mutated, opts);
      if (r.ok) throw new Error(`mutation at ${i} accepted`);
      expect(r.error.code).toBe('INPUT_INVALID');
      checked++;
    }
    expect(checked).toBe(jws.length);
    // Truncation / extension / deletion too.
    for (const m of [jws.slice(0, -1), `${jws}A`, jws.replace('.', ''), `${jws}.`, '', '..', 'a.b.c'])
      expect((await verifyJws(m, opts)).ok).toBe(false);
  });

  it('rejects alg confusion and unknown header parameters', async () => {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const sign = async (h: unknown) => {
      const input = `${enc(h)}.${Buffer.from('p').toString('base64url')}`;
      const s = must(await station.sign(utf8(input)));
      return `${input}.${Buffer.from(s).toString('base64url')}`;
    };
    const key = { publicKeySpki: station.publicKeySpki };
    expect((await verifyJws(await sign({ alg: 'ES256', typ: 't' }), key)).ok).toBe(true);
    for (const h of [
      { alg: 'none', typ: 't' },
      { alg: 'HS256', typ: 't' },
      { alg: 'ES384', typ: 't' },
      { alg: 'ES256', typ: 't', crit: ['exp'] },
      { alg: 'ES256', typ: 't', jwk: {} },
      { alg: 'ES256' },
      [1],
    ]) {
      const r = await verifyJws(await sign(h), key);
      expect(r.ok, JSON.stringify(h)).toBe(false);
    }
  });
});
