/**
 * Test support: RegistryDb ingest input built by hand for the store tests of native/registry-store (records that
 * skip verification: the store's own behaviour per backend), and the one station they belong to.
 */
import type { IngestInput, IngestRecord, RegistryDb } from '../../core/hq/registry-db.js';

/** The time every row of these fixtures carries. */
export const ROW_TIME = '2026-01-01T00:00:00.000Z';
/** The station every fixture batch belongs to (enrolStoreStation inserts it). */
export const ROW_STATION = 'st-1';

/** One record of a batch: chip `chip-<id>`, serial `SN-<id>`, model M, work order WO-1; `o` replaces members. */
export function ingestRow(index: number, recordId: string, o: Partial<IngestRecord> = {}): IngestRecord {
  return {
    index,
    recordId,
    sha256: 'a'.repeat(64),
    chipId: `chip-${recordId}`,
    serialNumber: `SN-${recordId}`,
    model: 'M',
    workOrder: 'WO-1',
    kind: 'initial',
    supersedesRecordId: null,
    completedAt: ROW_TIME,
    recordJson: '{}',
    jws: 'x.y.z',
    ...o,
  };
}

/** A batch (or bundle) of ROW_STATION received at ROW_TIME. */
export function ingestBatch(
  records: readonly IngestRecord[],
  batchId: string,
  contentSha256: string,
  kind: IngestInput['kind'] = 'batch',
): IngestInput {
  return { stationId: ROW_STATION, batchId, kind, contentSha256, receivedAt: ROW_TIME, records };
}

/** Insert ROW_STATION (placeholder certificate digests) into a fresh store; throws when the store refuses. */
export async function enrolStoreStation(db: RegistryDb): Promise<void> {
  const s = await db.insertStation({
    stationId: ROW_STATION,
    chainPem: 'pem',
    certificateSha256: 'c',
    issuingCaSha256: 'a',
    rootSha256: 'r',
    workOrders: [],
    enrolledAt: ROW_TIME,
  });
  if (!s.ok) throw new Error(s.error.message);
}
