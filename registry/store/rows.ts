/**
 * Reading columns of the portable SQL rows (SqlRow) of the lifecycle tables. Imports core.
 */
import type { SqlRow } from '../../core/hq/registry-db.js';

/** A text column. */
export const s = (r: SqlRow, k: string): string => r[k] as string;
/** A nullable text column. */
export const sn = (r: SqlRow, k: string): string | null => (r[k] as string | null) ?? null;
