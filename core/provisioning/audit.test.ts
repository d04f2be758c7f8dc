import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from './store.js';
import { auditEntryHash, auditEntryHashSync, auditEntryPreimage, GENESIS_HASH, verifyChain } from './audit.js';

async function chain(n: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const e = {
      seq,
      ts: `2025-01-01T00:00:${String(seq).padStart(2, '0')}.000Z`,
      type: seq % 2 ? 'step.attest' : 'station.note',
      runId: seq % 2 ? 'run-1' : null,
      payload: { n: seq, z: 'last', a: { y: [1, 2], x: 'é' } },
    };
    const hash = await auditEntryHash(prev, e);
    out.push({ ...e, prevHash: prev, hash });
    prev = hash;
  }
  return out;
}

describe('audit entry hash', () => {
  it('is SHA-256 over prevHash, a newline and the canonical JSON (checked with openssl)', async () => {
    const e = { seq: 1, ts: '2025-01-01T00:00:00.000Z', type: 'station.init', runId: null, payload: { b: 1, a: 'ü' } };
    const pre = auditEntryPreimage(GENESIS_HASH, e);
    expect(pre).toBe(
      `${GENESIS_HASH}\n{"payload":{"a":"ü","b":1},"runId":null,"seq":1,"ts":"2025-01-01T00:00:00.000Z","type":"station.init"}`,
    );
    const viaOpenssl = execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: Buffer.from(pre, 'utf8') })
      .toString()
      .split(' ')[0];
    expect(await auditEntryHash(GENESIS_HASH, e)).toBe(viaOpenssl);
    // The synchronous form (node:crypto, in Node) gives the same value.
    expect(auditEntryHashSync(GENESIS_HASH, e)).toBe(viaOpenssl);
  });

  it('synchronously: the value of auditEntryHash for every entry of a chain', async () => {
    for (const e of await chain(6)) expect(auditEntryHashSync(e.prevHash, e)).toBe(e.hash);
  });

  it('changes with every field and with the previous hash', async () => {
    const e = { seq: 3, ts: 't', type: 'x', runId: 'r', payload: { a: 1 } };
    const h = await auditEntryHash(GENESIS_HASH, e);
    const variants = [
      auditEntryHash('1'.repeat(64), e),
      auditEntryHash(GENESIS_HASH, { ...e, seq: 4 }),
      auditEntryHash(GENESIS_HASH, { ...e, ts: 'u' }),
      auditEntryHash(GENESIS_HASH, { ...e, type: 'y' }),
      auditEntryHash(GENESIS_HASH, { ...e, runId: null }),
      auditEntryHash(GENESIS_HASH, { ...e, payload: { a: 2 } }),
    ];
    for (const v of await Promise.all(variants)) expect(v).not.toBe(h);
    // Key order does not matter (canonical JSON).
    expect(await auditEntryHash(GENESIS_HASH, { payload: { a: 1 }, runId: 'r', type: 'x', ts: 't', seq: 3 })).toBe(h);
  });
});

describe('verifyChain', () => {
  it('accepts a valid chain (array or async iterable) and reports its head', async () => {
    const c = await chain(6);
    expect(await verifyChain(c)).toEqual({ ok: true, entries: 6, head: { seq: 6, hash: c[5]!.hash } });
    async function* gen() {
      for (const e of c) yield e;
    }
    expect(await verifyChain(gen())).toMatchObject({ ok: true, entries: 6 });
    expect(await verifyChain([])).toEqual({ ok: true, entries: 0, head: { seq: 0, hash: GENESIS_HASH } });
  });

  it('hash-mismatch: a modified payload', async () => {
    const c = await chain(5);
    c[2] = { ...c[2]!, payload: { n: 999 } };
    expect(await verifyChain(c)).toMatchObject({ ok: false, entries: 2, failure: { seq: 3, reason: 'hash-mismatch' } });
  });

  it('hash-mismatch: a payload that is not plain JSON', async () => {
    const c = await chain(2);
    c[1] = { ...c[1]!, payload: { bad: Number.NaN } };
    expect(await verifyChain(c)).toMatchObject({ ok: false, failure: { seq: 2, reason: 'hash-mismatch' } });
  });

  it('broken-link: an entry re-hashed after modification breaks the next link', async () => {
    const c = await chain(5);
    const payload = { n: 999 };
    c[2] = { ...c[2]!, payload, hash: await auditEntryHash(c[2]!.prevHash, { ...c[2]!, payload }) };
    expect(await verifyChain(c)).toMatchObject({ ok: false, failure: { seq: 4, reason: 'broken-link' } });
  });

  it('sequence-gap: a deleted entry, a chain not starting at 1, a reordered chain', async () => {
    const c = await chain(5);
    expect(await verifyChain([...c.slice(0, 2), ...c.slice(3)])).toMatchObject({
      ok: false,
      failure: { seq: 3, reason: 'sequence-gap' },
    });
    expect(await verifyChain(c.slice(1))).toMatchObject({ ok: false, failure: { seq: 1, reason: 'sequence-gap' } });
    expect(await verifyChain([c[0]!, c[2]!, c[1]!])).toMatchObject({
      ok: false,
      failure: { seq: 2, reason: 'sequence-gap' },
    });
  });

  it('broken-link: the first entry must link to the genesis hash', async () => {
    const c = await chain(1);
    const e = { ...c[0]!, prevHash: '1'.repeat(64) };
    expect(await verifyChain([{ ...e, hash: await auditEntryHash(e.prevHash, e) }])).toMatchObject({
      ok: false,
      failure: { seq: 1, reason: 'broken-link' },
    });
  });
});
