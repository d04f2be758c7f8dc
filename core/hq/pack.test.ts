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
import { packJws, packRecords, unpackJws, CertificateTable, type PackedJws } from './pack.js';

let station: TestStation;
let records: string[];

beforeAll(async () => {
  station = await createTestStation('pack-test', systemClock);
  records = (await makeManyRecords(station, systemClock, 6, 3)).map((m) => m.jws);
});

describe('packed records', () => {
  it('unpack every packed record to exactly its JWS; the station chain is carried once', () => {
    const p = packRecords(records);
    expect(p.records.every((r) => typeof r === 'object')).toBe(true);
    // station chain (3) + 3 device certificates, each once
    expect(p.certificates).toHaveLength(6);
    expect(new Set(p.certificates).size).toBe(p.certificates.length);
    for (const [i, r] of p.records.entries()) {
      const back = unpackJws(r, p.certificates);
      expect(back.ok && back.value).toBe(records[i]);
    }
    // No base64 inside: the payload and the manifest are JSON, the chain PEM is a reference.
    const first = p.records[0] as PackedJws;
    const payload = first.payload as { chain: unknown; manifest: { jws: unknown }; certificate: { pem: unknown } };
    expect(payload.chain).toEqual([{ $pem: 1 }, { $pem: 2 }]);
    expect(payload.certificate.pem).toEqual({ $pem: expect.any(Number) });
    expect((payload.manifest.jws as { $jws: PackedJws }).$jws.x5c).toEqual([0, 1, 2]);
    const packed = JSON.stringify(p);
    expect(packed.length / records.length).toBeLessThan(4096);
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
