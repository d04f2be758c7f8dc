/**
 * Big bundles: a station that was offline for a shift exports MAX_BUNDLE_RECORDS records in one bundle
 * (tens of MiB); the registry must import it, and the station must split larger backlogs into several bundles.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { createBundle, MAX_BUNDLE_BYTES, MAX_BUNDLE_RECORDS, signRequest } from '../../core/hq/protocol.js';
import { createTestStation, makeManyRecords } from '../../testkit/registry/fixtures.js';
import { startTestRegistry } from './sync-fixture.js';
import { audienceAt } from '../../testkit/registry/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-bigbundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bundle size limits', () => {
  it(
    'imports a bundle of MAX_BUNDLE_RECORDS realistic records, larger than any other JWS',
    { timeout: 180_000 },
    async () => {
      const station = await createTestStation('big-bundle', systemClock);
      const made = await makeManyRecords(station, systemClock, MAX_BUNDLE_RECORDS);
      const b = await createBundle({
        signer: station.signer,
        chain: station.chain,
        stationId: station.id,
        records: made.map((m) => m.jws),
        clock: systemClock,
      });
      if (!b.ok) throw new Error(b.error.message);
      console.log(`bundle of ${MAX_BUNDLE_RECORDS} records: ${(b.value.jws.length / 2 ** 20).toFixed(1)} MiB`);
      expect(b.value.jws.length).toBeGreaterThan(12 * 1024 * 1024); // bigger than the generic JWS limit
      const body = JSON.stringify({ bundle: b.value.jws });
      expect(body.length).toBeLessThan(MAX_BUNDLE_BYTES);
      const reg = await startTestRegistry(dir, [station]);
      try {
        const aud = await audienceAt(reg.url);
        const auth = await signRequest(station.signer, station.id, 'POST', '/v1/bundles', body, systemClock, aud);
        if (!auth.ok) throw new Error(auth.error.message);
        const res = await fetch(`${reg.url}/v1/bundles`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: auth.value },
          body,
        });
        const json = (await res.json()) as { summary?: { accepted: number } };
        expect(res.status, JSON.stringify(json).slice(0, 300)).toBe(200);
        expect(json.summary?.accepted).toBe(MAX_BUNDLE_RECORDS);
      } finally {
        await reg.close();
      }
    },
  );
});
