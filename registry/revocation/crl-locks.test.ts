/**
 * `GET /v1/crl/<station>.crl` is public (no caller is authenticated). Each request for a station without a current
 * CRL goes through refreshCrl's per-station queue; an entry per station id that is never removed lets anyone grow
 * the registry's memory without limit by asking for made-up station ids. Run against a real registry on loopback
 * (the route), then the same function 100,000 times with the heap measured after a full garbage collection.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningRegistry } from '../http/server.js';
import { currentCrl } from './crl.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMiB = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / (1024 * 1024);
};

let dir: string;
let reg: RunningRegistry;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-crl-locks-'));
  reg = await startLifecycleRegistry(`sqlite:${join(dir, 'r.db')}`, {
    registryId: 'crl-locks',
    adminToken: 'a'.repeat(43),
  });
});

afterAll(async () => {
  await reg?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('public CRL route and made-up station ids', () => {
  it('answers every made-up id the same and keeps nothing per id (heap flat over 100,000 ids)', async () => {
    const id = (i: number) => `made-up-${i.toString(36)}-${'x'.repeat(40)}`;
    const statuses = new Set<number>();
    for (let i = 0; i < 200; i++) statuses.add((await fetch(`${reg.url}/v1/crl/${id(i)}.crl`)).status);
    expect([...statuses]).toHaveLength(1);
    expect([...statuses][0]).toBeGreaterThanOrEqual(400);

    for (let i = 0; i < 2000; i++) await currentCrl(reg.context, id(1e6 + i)); // warm up
    const before = heapMiB();
    const n = 100_000;
    for (let i = 0; i < n; i++) await currentCrl(reg.context, id(2e6 + i));
    const after = heapMiB();
    console.log(
      'made-up CRL ids:',
      JSON.stringify({ ids: n, heapBeforeMiB: before.toFixed(1), heapAfterMiB: after.toFixed(1) }),
    );
    expect(after - before).toBeLessThan(4);
  }, 120_000);
});
