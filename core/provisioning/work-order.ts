/** Work orders: what the line is building and the baseline every board must match. */
import { z } from 'zod';
import { BaselinePolicySchema, formatIssues } from './baseline.js';
import { canonicalJson } from '../canonical.js';
import { sha256Hex } from '../bytes.js';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';

export const WORK_ORDER_SCHEMA = 'line-station/work-order/v1';
const MAX_TEXT_CHARS = 1 << 20;

export const WorkOrderSchema = z
  .object({
    schema: z.literal(WORK_ORDER_SCHEMA, `expected "${WORK_ORDER_SCHEMA}"`),
    id: z
      .string()
      .regex(/^WO-[A-Za-z0-9][A-Za-z0-9._-]{0,60}$/, 'expected "WO-" followed by 1..61 of A-Z a-z 0-9 . _ -'),
    product: z.string().min(1, 'expected a non-empty string').max(128),
    profiles: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'expected a profile id (lower-case, 0-9 . _ -)'))
      .min(1, 'expected at least one board profile'),
    quantity: z.number().int('expected an integer').positive('expected a positive integer'),
    baseline: BaselinePolicySchema,
    /**
     * Scan-in (docs/formats.md "Work orders"): true = every board's own barcode (its serial number) is scanned for
     * its port before provisioning and checked against identify; a board without a scan is refused
     * (FLOW_SCAN_REQUIRED), a mismatch is FLOW_SCAN_MISMATCH. Absent or false: a scan is optional, checked when given.
     */
    requireScanIn: z.boolean().optional(),
  })
  .strict();

export type WorkOrder = z.infer<typeof WorkOrderSchema>;

/**
 * Validate a work order (a parsed JSON value, or JSON text). INPUT_INVALID messages name the source
 * and the path of the first bad fields, e.g. `wo.json: baseline.firmware.application[0]: expected 64 hex chars ...`.
 */
export function parseWorkOrder(json: unknown, source: string): Result<WorkOrder> {
  let value = json;
  if (typeof json === 'string') {
    if (json.length > MAX_TEXT_CHARS)
      return fail('INPUT_INVALID', `${source}: larger than ${MAX_TEXT_CHARS} characters`, { source });
    try {
      value = JSON.parse(json);
    } catch (e) {
      return fail('INPUT_INVALID', `${source}: not valid JSON (${(e as Error).message})`, { source });
    }
  }
  const r = WorkOrderSchema.safeParse(value);
  if (!r.success)
    return fail('INPUT_INVALID', `${source}: ${formatIssues(r.error.issues)}`, {
      source,
      issues: r.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  return ok(r.data);
}

/** SHA-256 (hex) of the canonical JSON of a work order's baseline: the manifest's policyRef.sha256. */
export function baselineSha256(wo: WorkOrder): Promise<string> {
  return sha256Hex(canonicalJson(wo.baseline));
}
