/**
 * Read-only views for the admin (docs/registry-api.md): stations, stats, a device with its records, records
 * pages. Imports core, registry/common and registry/commissioning/store.ts (not ./service.ts: `registry stations`
 * does not load the enrolment checks and the X.509 stack).
 */
import { err, ok, type Result } from '../../core/result.js';
import type { StoredRecordRow } from '../../core/hq/registry-db.js';
import type { DeviceView, RecordView, RecordsPage, StationSummary, Stats } from '../../core/hq/protocol.js';
import type { RegistryContext } from '../common/context.js';
import { apiFail, guarded, storeError, type ApiError } from '../common/errors.js';
import { stationCas } from '../commissioning/store.js';

/** The wire summary of a station row. */
export function summary(
  s: {
    stationId: string;
    certificateSha256: string;
    issuingCaSha256: string;
    rootSha256: string;
    workOrders: readonly string[];
    enrolledAt: string;
    revokedAt: string | null;
    lastSyncAt: string | null;
    records?: number;
    conflicts?: number;
  },
  hqCertified = false,
): StationSummary {
  return {
    stationId: s.stationId,
    certificateSha256: s.certificateSha256,
    issuingCaSha256: s.issuingCaSha256,
    rootSha256: s.rootSha256,
    workOrders: [...s.workOrders],
    enrolledAt: s.enrolledAt,
    revokedAt: s.revokedAt,
    lastSyncAt: s.lastSyncAt,
    records: s.records ?? 0,
    conflicts: s.conflicts ?? 0,
    hqCertified,
  };
}

/** Every enrolled station with its record and conflict counts. */
export async function listStations(ctx: RegistryContext): Promise<Result<StationSummary[], ApiError>> {
  const r = await ctx.db.listStations();
  if (!r.ok) return err(storeError(r.error));
  const cas = await guarded(async () => ok(new Set((await stationCas(ctx.db.sql)).map((c) => c.stationId))));
  if (!cas.ok) return cas;
  return ok(r.value.map((s) => summary(s, cas.value.has(s.stationId))));
}

/** Registry-wide counts. */
export async function stats(ctx: RegistryContext): Promise<Result<Stats, ApiError>> {
  const r = await ctx.db.counts();
  return r.ok
    ? ok({
        stations: r.value.stations,
        devices: r.value.devices,
        records: r.value.records,
        conflicts: r.value.conflicts,
      })
    : err(storeError(r.error));
}

function view(r: StoredRecordRow): RecordView {
  return {
    recordId: r.recordId,
    stationId: r.stationId,
    chipId: r.chipId,
    serialNumber: r.serialNumber,
    workOrder: r.workOrder,
    kind: r.kind,
    supersedesRecordId: r.supersedesRecordId,
    completedAt: r.completedAt,
    receivedAt: r.receivedAt,
    batchId: r.batchId,
    sha256: r.sha256,
    record: JSON.parse(r.recordJson) as unknown,
    jws: r.jws,
  };
}

/** A device (by serial number or chip id) with all its records; NOT_FOUND when the registry has none. */
export async function getDevice(ctx: RegistryContext, key: string): Promise<Result<DeviceView, ApiError>> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(key)) return apiFail('BODY_INVALID', 'expected a serial number or chip id');
  const r = await ctx.db.deviceRecords(key);
  if (!r.ok) return err(storeError(r.error));
  if (r.value.length === 0) return apiFail('NOT_FOUND', `no device ${key} in the registry`);
  const superseded = new Set(r.value.map((x) => x.supersedesRecordId).filter((x): x is string => x !== null));
  const current = [...r.value].reverse().find((x) => !superseded.has(x.recordId)) ?? null;
  const last = r.value[r.value.length - 1]!;
  return ok({
    chipId: last.chipId,
    serialNumber: last.serialNumber,
    model: last.model,
    currentRecordId: current?.recordId ?? null,
    records: r.value.map(view),
  });
}

/** A records page query (`GET /v1/records`). */
export interface RecordQuery {
  readonly station?: string;
  readonly workOrder?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** Records page (oldest first, keyset pagination with an opaque cursor). */
export async function queryRecords(ctx: RegistryContext, q: RecordQuery): Promise<Result<RecordsPage, ApiError>> {
  const limit = q.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    return apiFail('BODY_INVALID', 'limit must be an integer in 1..1000');
  let afterSeq: number | undefined;
  if (q.cursor !== undefined) {
    const m = /^c([0-9]{1,15})$/.exec(q.cursor);
    if (!m) return apiFail('BODY_INVALID', 'invalid cursor');
    afterSeq = Number(m[1]);
  }
  for (const [k, v] of [
    ['from', q.from],
    ['to', q.to],
  ] as const)
    if (v !== undefined && Number.isNaN(Date.parse(v))) return apiFail('BODY_INVALID', `${k} must be an ISO date/time`);
  const r = await ctx.db.listRecords({
    ...(q.station !== undefined ? { stationId: q.station } : {}),
    ...(q.workOrder !== undefined ? { workOrder: q.workOrder } : {}),
    ...(q.from !== undefined ? { from: new Date(q.from).toISOString() } : {}),
    ...(q.to !== undefined ? { to: new Date(q.to).toISOString() } : {}),
    ...(afterSeq !== undefined ? { afterSeq } : {}),
    limit,
  });
  if (!r.ok) return err(storeError(r.error));
  const last = r.value[r.value.length - 1];
  return ok({ records: r.value.map(view), nextCursor: r.value.length === limit && last ? `c${last.seq}` : null });
}
