/**
 * Supervisor reports as CSV (docs/station-api.md "Reports"): the provisioning log (runs and refusals) and the yield
 * per work order (refused boards counted) for a time range, for the CLI (`station report log|yield`) and the UI (StationApi `exportReport`). Both read the station
 * database through its read-only query port; the rows are those the Log and Yield views show for the same filter.
 * May import: core/, native/store/queries.ts (types).
 */
import { csvLine, type CsvCell } from '../core/csv.js';
import { fail } from '../core/errors.js';
import { ok, type Result } from '../core/result.js';
import type { LogFilter, LogRow, StationQueries, YieldFigures, YieldFilter } from '../native/store/queries.js';

/** The most runs one log report holds: a larger range is refused with the count, to be narrowed. */
export const MAX_REPORT_ROWS = 200_000;
/** Runs read per page while writing the log report. */
const PAGE = 500;

/** The log report's columns, in order (the header line). */
export const LOG_COLUMNS = [
  'startedAt',
  'updatedAt',
  'serialNumber',
  'chipId',
  'workOrder',
  'operator',
  'kind',
  'outcome',
  'step',
  'errorCode',
  'durationMs',
  'recordId',
  'syncState',
  'runId',
  'attempts',
] as const satisfies readonly (keyof LogRow)[];

/** The yield report's columns: one line per work order, then one line `(all)` over the whole range. */
export const YIELD_COLUMNS = [
  'workOrder',
  'boards',
  'passedFirstTime',
  'firstPassYield',
  'provisioned',
  'failed',
  'topFailure',
  'cycleTimeP50Ms',
  'cycleTimeP95Ms',
  'refused',
] as const;

/** The p-th percentile (nearest rank) of ascending values; null for none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/**
 * Write the log report line by line to `out` (header first, newest run first), pausing between pages with `pause`
 * (the CLI waits for its reader there). INPUT_INVALID when the range holds more than `maxRows` runs.
 */
export async function writeLogReport(
  queries: StationQueries,
  filter: LogFilter,
  out: (line: string) => void,
  o: { readonly maxRows?: number; readonly pause?: () => Promise<void> } = {},
): Promise<Result<{ rows: number }>> {
  const maxRows = o.maxRows ?? MAX_REPORT_ROWS;
  let cursor: string | undefined;
  let rows = 0;
  for (let first = true; ; first = false) {
    const page = queries.queryLog(filter, { limit: PAGE, ...(cursor ? { cursor } : {}) });
    if (!page.ok) return page;
    if (first) {
      if (page.value.total > maxRows)
        return fail(
          'INPUT_INVALID',
          `the range holds ${page.value.total} runs; a report holds at most ${maxRows}: narrow it (from/to, work order)`,
          { total: page.value.total, max: maxRows },
        );
      out(csvLine(LOG_COLUMNS));
    }
    for (const r of page.value.items) out(csvLine(LOG_COLUMNS.map((c): CsvCell => r[c])));
    rows += page.value.items.length;
    if (!page.value.nextCursor || rows >= maxRows) return ok({ rows });
    cursor = page.value.nextCursor;
    await o.pause?.();
  }
}

function yieldCells(workOrder: string, f: YieldFigures): CsvCell[] {
  const failed = f.failuresByCause.reduce((n, x) => n + x.count, 0);
  const top = f.failuresByCause[0];
  return [
    workOrder,
    f.boards,
    f.passedFirstTime,
    f.boards === 0 ? null : Number((f.passedFirstTime / f.boards).toFixed(4)),
    f.provisioned,
    failed,
    top ? `${top.code} (${top.count})` : null,
    percentile(f.cycleTimesMs, 50),
    percentile(f.cycleTimesMs, 95),
    f.refused,
  ];
}

/** The yield report: header, one line per work order with runs in the range, then `(all)`. */
export function yieldReport(queries: StationQueries, filter: YieldFilter): string {
  const lines = [csvLine(YIELD_COLUMNS)];
  const orders = filter.workOrder ? [filter.workOrder] : queries.workOrders(filter);
  for (const wo of orders) lines.push(csvLine(yieldCells(wo, queries.yieldFigures({ ...filter, workOrder: wo }))));
  if (!filter.workOrder) lines.push(csvLine(yieldCells('(all)', queries.yieldFigures(filter))));
  return lines.join('');
}

/** The file name a report is offered under: `line-station-<kind>-<station>-<from>-<to>.csv` (dates, or "all"). */
export function reportFileName(kind: 'log' | 'yield', stationId: string, filter: YieldFilter): string {
  const day = (t: string | undefined) => (t ? t.slice(0, 10) : 'all');
  const safe = stationId.replace(/[^A-Za-z0-9._-]/g, '_');
  return `line-station-${kind}-${safe}-${day(filter.from)}-${day(filter.to)}.csv`;
}
