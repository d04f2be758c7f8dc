/**
 * Big bundles: a station that was offline for a shift exports MAX_BUNDLE_RECORDS records in one bundle. Format v2
 * (what stations export) carries each certificate once and the records as JSON: at most 4 KiB per record, asserted
 * on the file's bytes (records in format v3, as the station writes them; they pack smaller than format v2 records). The
 * registry imports it, and still imports the same records as a v1 bundle from an older
 * station (tens of MiB, larger than any other JWS).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import {
  createBundle,
  createBundleV2,
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_RECORDS,
  signRequest,
} from '../../core/hq/protocol.js';
import { createTestStation, makeManyRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { startTestRegistry } from './sync-fixture.js';
import { audienceAt } from '../../testkit/registry/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-bigbundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The most bytes a record may take in a v2 bundle (issue 12). */
const MAX_BYTES_PER_RECORD = 4 * 1024;

async function importAt(station: TestStation, sub: string, body: string): Promise<number | undefined> {
  const reg = await startTestRegistry(mkdtempSync(join(dir, sub)), [station]);
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
    return json.summary?.accepted;
  } finally {
    await reg.close();
  }
}

describe('bundle size limits', () => {
  it(
    'a v2 bundle of MAX_BUNDLE_RECORDS realistic records takes at most 4 KiB per record and imports; v1 still imports',
    { timeout: 300_000 },
    async () => {
      const station = await createTestStation('big-bundle', systemClock);
      // Every record with its own device certificate, as on a line (nothing shared but the station chain).
      const made = await makeManyRecords(station, systemClock, MAX_BUNDLE_RECORDS, MAX_BUNDLE_RECORDS);
      const common = {
        signer: station.signer,
        chain: station.chain,
        stationId: station.id,
        records: made.map((m) => m.jws),
        clock: systemClock,
      };
      const v2 = await createBundleV2(common);
      if (!v2.ok) throw new Error(v2.error.message);
      const bytes = Buffer.byteLength(v2.value.content + '\n', 'utf8'); // the exported file
      console.log(
        `v2 bundle of ${MAX_BUNDLE_RECORDS} records: ${bytes} B, ${(bytes / MAX_BUNDLE_RECORDS).toFixed(0)} B per record`,
      );
      expect(bytes).toBeLessThanOrEqual(MAX_BUNDLE_RECORDS * MAX_BYTES_PER_RECORD);
      // Records in format v3 (what the station writes) pack smaller than the same kind of records in format v2.
      const perRecord = async (records: readonly string[]) => {
        const b = await createBundleV2({ ...common, records });
        if (!b.ok) throw new Error(b.error.message);
        return Buffer.byteLength(b.value.content, 'utf8') / records.length;
      };
      const v2Records = await makeManyRecords(station, systemClock, 100, 100, { format: 'v2' });
      const [v3Size, v2Size] = [
        await perRecord(common.records.slice(0, 100)),
        await perRecord(v2Records.map((m) => m.jws)),
      ];
      console.log(
        `record format v3: ${v3Size.toFixed(0)} B per record in a v2 bundle; format v2: ${v2Size.toFixed(0)} B`,
      );
      expect(v3Size).toBeLessThan(v2Size);
      expect(await importAt(station, 'v2-', JSON.stringify({ bundle: v2.value.content }))).toBe(MAX_BUNDLE_RECORDS);

      const v1 = await createBundle(common);
      if (!v1.ok) throw new Error(v1.error.message);
      console.log(`v1 bundle of ${MAX_BUNDLE_RECORDS} records: ${(v1.value.jws.length / 2 ** 20).toFixed(1)} MiB`);
      expect(v1.value.jws.length).toBeGreaterThan(12 * 1024 * 1024); // bigger than the generic JWS limit
      const body = JSON.stringify({ bundle: v1.value.jws });
      expect(body.length).toBeLessThan(MAX_BUNDLE_BYTES);
      expect(await importAt(station, 'v1-', body)).toBe(MAX_BUNDLE_RECORDS);
    },
  );
});
