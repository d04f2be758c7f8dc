/**
 * Packed records (format v2): every packed record unpacks to its compact JWS byte for byte, certificates are carried
 * once, what would not round-trip travels unchanged, and a rebuilt record verifies with an independent JOSE library.
 */
import 'reflect-metadata';
import { compactVerify, decodeProtectedHeader, importX509 } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url, utf8 } from '../bytes.js';
import { systemClock } from '../ports.js';
import { signJws } from '../pki/jws.js';
import { createTestStation, makeManyRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { fromPem } from '../pki/pem.js';
import { parseCompactJws } from './jws.js';
import {
  packJws,
  packRecords,
  unpackJws,
  unpackJwsParsed,
  unpackJwsReference,
  CertificateTable,
  type PackedJws,
  type UnpackedJws,
} from './pack.js';

let station: TestStation;
/** Records as the station writes them (format v3), and v2 records (chain PEM, manifest JWS) as older stations did. */
let records: string[];
let v2Records: string[];

beforeAll(async () => {
  station = await createTestStation('pack-test', systemClock);
  records = (await makeManyRecords(station, systemClock, 6, 3)).map((m) => m.jws);
  v2Records = (await makeManyRecords(station, systemClock, 6, 3, { format: 'v2' })).map((m) => m.jws);
});

describe('packed records', () => {
  it('unpack every packed v3 record to exactly its JWS; the station chain is carried once', () => {
    const p = packRecords(records);
    expect(p.records.every((r) => typeof r === 'object')).toBe(true);
    // station chain (3) + 3 device certificates + the attestation certificate, each once
    expect(p.certificates).toHaveLength(7);
    expect(new Set(p.certificates).size).toBe(p.certificates.length);
    for (const [i, r] of p.records.entries()) {
      const back = unpackJws(r, p.certificates);
      expect(back.ok && back.value).toBe(records[i]);
    }
    // No base64 inside: the payload and the manifest payload are JSON, certificates are references.
    const first = p.records[0] as PackedJws;
    expect(first.x5c).toEqual([0, 1, 2]);
    const payload = first.payload as {
      schema: string;
      chain?: unknown;
      manifest: { payload: { board: unknown }; signature: unknown };
      certificate: { pem: unknown };
      attestation: { chain: unknown };
    };
    expect(payload.schema).toBe('line-station/provisioning-record/v3');
    expect(payload.chain).toBeUndefined();
    expect(payload.certificate.pem).toEqual({ $pem: expect.any(Number) });
    expect(payload.attestation.chain).toEqual([{ $der: expect.any(Number) }]);
    expect(Object.keys(payload.manifest).sort()).toEqual(['payload', 'signature']);
    expect(payload.manifest.payload.board).toMatchObject({ model: 'LS-SIM-BASIC' });
    const packed = JSON.stringify(p);
    expect(packed.length / records.length).toBeLessThan(4096);
    // Smaller than the same records in format v2 (no chain PEM references, no nested manifest header).
    const v2 = packRecords(v2Records);
    expect(packed.length).toBeLessThan(JSON.stringify(v2).length);
  });

  it('unpack every packed v2 record to exactly its JWS (chain PEM and manifest JWS as references)', () => {
    const p = packRecords(v2Records);
    expect(p.certificates).toHaveLength(7);
    for (const [i, r] of p.records.entries()) {
      const back = unpackJws(r, p.certificates);
      expect(back.ok && back.value).toBe(v2Records[i]);
    }
    const payload = (p.records[0] as PackedJws).payload as { chain: unknown; manifest: { jws: unknown } };
    expect(payload.chain).toEqual([{ $pem: 1 }, { $pem: 2 }]);
    expect((payload.manifest.jws as { $jws: PackedJws }).$jws.x5c).toEqual([0, 1, 2]);
  });

  it('a rebuilt record verifies with an independent JOSE library (x5c leaf = the station certificate)', async () => {
    const p = packRecords(records);
    const jws = unpackJws(p.records[2]!, p.certificates);
    if (!jws.ok) throw new Error(jws.error);
    const { x5c } = decodeProtectedHeader(jws.value);
    const pem = `-----BEGIN CERTIFICATE-----\n${x5c![0]}\n-----END CERTIFICATE-----`;
    const { payload } = await compactVerify(jws.value, await importX509(pem, 'ES256'));
    expect(JSON.parse(new TextDecoder().decode(payload))).toMatchObject({ station: { id: 'pack-test' } });
  });

  it('keeps canonical key order for integer-like keys (TPM PCR indexes) and packs nested JWS', async () => {
    const payload = utf8('{"pcrs":{"0":"aa","10":"bb","2":"cc"},"x":[1,"2.5",null,true]}');
    const jws = await signJws({ signer: station.signer, payload, header: { typ: 't', x5c: station.chain } });
    if (!jws.ok) throw new Error(jws.error.message);
    const table = new CertificateTable();
    const p = packJws(jws.value, table);
    expect(p).not.toBeNull();
    const back = unpackJws(p!, table.certificates);
    expect(back.ok && back.value).toBe(jws.value);
  });

  it('what would not round-trip travels as the compact JWS, and leaves nothing in the table', async () => {
    const table = new CertificateTable();
    // A payload that is not canonical JSON (whitespace).
    const odd = await signJws({
      signer: station.signer,
      payload: utf8('{ "a": 1 }'),
      header: { typ: 't', x5c: station.chain },
    });
    // A payload with a member that looks like a packed reference.
    const dollar = await signJws({ signer: station.signer, payload: utf8('{"$pem":0}'), header: { typ: 't' } });
    if (!odd.ok || !dollar.ok) throw new Error('sign');
    expect(packJws(odd.value, table)).toBeNull();
    expect(packJws(dollar.value, table)).toBeNull();
    expect(packJws('not.a.jws', table)).toBeNull();
    expect(table.certificates).toHaveLength(0);
    const mixed = packRecords([odd.value, records[0]!]);
    expect(mixed.records[0]).toBe(odd.value);
    expect(unpackJws(mixed.records[1]!, mixed.certificates)).toEqual({ ok: true, value: records[0] });
  });

  it('refuses packed records that name no certificate, unknown members or too deep nesting', () => {
    const p = packRecords(records.slice(0, 1));
    const r = p.records[0] as PackedJws;
    expect(unpackJws({ ...r, x5c: [99] }, p.certificates).ok).toBe(false);
    expect(unpackJws({ ...r, payload: { chain: [{ $pem: 99 }] } }, p.certificates).ok).toBe(false);
    expect(unpackJws({ ...r, payload: { a: { $evil: 1 } } }, p.certificates).ok).toBe(false);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(unpackJws({ ...r, payload: deep }, p.certificates).ok).toBe(false);
    expect(unpackJws({ ...r, extra: 1 } as unknown as PackedJws, p.certificates).ok).toBe(false);
    // A changed certificate changes the rebuilt bytes (the signature then fails at the registry).
    const certs = [...p.certificates];
    certs[0] = toBase64Url(new Uint8Array([1, 2, 3]));
    const changed = unpackJws(r, certs);
    expect(changed.ok && changed.value).not.toBe(records[0]);
  });
});

describe('one-pass rebuild (unpackJwsParsed) against the reference rebuild', () => {
  /** Both rebuilds of `p`: the same compact JWS or the same refusal; the facts are what the text says. */
  function same(p: PackedJws, certs: readonly string[]): UnpackedJws | null {
    const before = JSON.stringify(p);
    const fast = unpackJwsParsed(p, certs);
    const ref = unpackJwsReference(p, certs);
    expect(JSON.stringify(p)).toBe(before); // the packed value is never changed
    if (!ref.ok) {
      expect(fast).toEqual(ref);
      return null;
    }
    if (!fast.ok) throw new Error(fast.error);
    expect(fast.value.jws).toBe(ref.value);
    const parsed = parseCompactJws(ref.value, 'record');
    if (fast.value.parsed) {
      if (!parsed.ok) throw new Error(parsed.error.message);
      expect(fast.value.parsed).toEqual(parsed.value);
    } else expect(parsed.ok).toBe(false);
    const facts = fast.value.facts;
    if (facts) {
      expect(facts.value).toEqual(JSON.parse(Buffer.from(parsed.ok ? parsed.value.payload : []).toString('utf8')));
      for (const [text, n] of facts.nested) {
        const inner = parseCompactJws(text, 'manifest');
        if (!inner.ok) throw new Error(inner.error.message);
        expect(n.parsed).toEqual(inner.value);
        expect(n.value).toEqual(JSON.parse(Buffer.from(inner.value.payload).toString('utf8')));
      }
      for (const [pem, der] of facts.pemDer) {
        const back = fromPem(pem, 'CERTIFICATE');
        expect(back.ok && Buffer.from(back.value).equals(Buffer.from(der))).toBe(true);
      }
    }
    return fast.value;
  }

  it('rebuilds real records in one pass, with every fact (payload, manifest parse, certificate DER)', () => {
    const p = packRecords(records);
    for (const r of p.records) {
      const u = same(r as PackedJws, p.certificates);
      expect(u?.facts).not.toBeNull();
      expect(u!.facts!.nested.size).toBe(0); // v3: the manifest is JSON, not a nested JWS
      expect(u!.facts!.pemDer.size).toBe(1);
    }
    const q = packRecords(v2Records);
    for (const r of q.records) {
      const u = same(r as PackedJws, q.certificates);
      expect(u!.facts!.nested.size).toBe(1);
      expect(u!.facts!.pemDer.size).toBeGreaterThanOrEqual(3);
    }
  });

  it('gives the reference answer for everything the one pass is not sure of', () => {
    const p = packRecords(records.slice(0, 1));
    const r = p.records[0] as PackedJws;
    const certs = p.certificates;
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    const nest = (n: number): unknown => {
      let d: unknown = 'x';
      for (let i = 0; i < n; i++) d = { a: d };
      return d;
    };
    const variants: unknown[] = [
      { b: 1, a: 2 }, // members not in canonical order
      JSON.parse('{"10":1,"2":2,"a":3}'), // integer-like members (enumerated numerically, sorted as text)
      JSON.parse('{"0":1,"1":2,"a":3}'),
      { a: -0 },
      { a: [1, -0] },
      { a: '\ud800' }, // a lone surrogate: not canonical JSON
      { '\udc00': 1 },
      JSON.parse('{"__proto__":{"a":1}}'),
      { a: { $pem: 99 } },
      { a: { $pem: 1.5 } },
      { a: { $der: 0 } },
      { a: { $jws: { alg: 'none' } } },
      { a: { $evil: 1 } },
      { a: { $pem: 0, b: 1 } },
      { $a: 1 },
      deep,
      nest(30),
      nest(31),
      nest(32),
      { a: 1e21, b: 0.1, c: -5e-324, d: 'é\u2028"\\\n' },
      [],
      'text',
      null,
    ];
    for (const payload of variants) same({ ...r, payload } as PackedJws, certs);
    for (const x5c of [[99], [], [0, 0, 0, 0, 0, 0, 0, 0, 0], [0.5], ['0']]) same({ ...r, x5c } as PackedJws, certs);
    for (const signature of ['', 'a+b', 'AB', r.signature.slice(0, -1) + 'B']) same({ ...r, signature }, certs);
    for (const extra of [{ typ: 1 }, { kid: '\ud800' }, { alg: 'ES512' }, { extra: 1 }, { payload: undefined }])
      same({ ...r, ...extra } as unknown as PackedJws, certs);
    // A certificate table entry that is not canonical base64 (the PEM cannot be made from it).
    same(r, ['@@@@', ...certs.slice(1)]);
    same(r, [`${certs[0]!}=`, ...certs.slice(1)]);
    // One table array changed between two records (the caches are per table): rebuilt from what it holds now.
    const table = [...certs];
    same(r, table);
    [table[0], table[1]] = [table[1]!, table[0]!];
    [table[2], table[3]] = [table[3]!, table[2]!];
    const swapped = same(r, table);
    expect(swapped?.jws).not.toBe(records[0]);
  });
});
