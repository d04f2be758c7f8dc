/**
 * Test support: give a test station a work-order directory of its own: the repository's demo work order plus the
 * variants a test needs (e.g. one with `requireScanIn`), each the demo one with its fields replaced; config.json's
 * `paths.workOrdersDir` points at it. The caller reopens its engine to load them.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { updateStationConfig } from '../station/config.js';

const DEMO = join(import.meta.dirname, '..', 'resources', 'work-orders', 'WO-DEMO-1.json');

/** Write WO-DEMO-1 and `variants` (WO-DEMO-1 with these fields, each with its own `id`) to `dir`; use it. */
export function useWorkOrders(
  dataDir: string,
  dir: string,
  variants: readonly (Readonly<Record<string, unknown>> & { readonly id: string })[],
): void {
  mkdirSync(dir, { recursive: true });
  cpSync(DEMO, join(dir, 'WO-DEMO-1.json'));
  const demo = JSON.parse(readFileSync(DEMO, 'utf8')) as Record<string, unknown>;
  for (const v of variants) writeFileSync(join(dir, `${v.id}.json`), JSON.stringify({ ...demo, ...v }));
  const u = updateStationConfig(dataDir, (raw) => ({
    ...raw,
    paths: { ...(raw['paths'] as object), workOrdersDir: dir },
  }));
  if (!u.ok) throw new Error(u.error.message);
}
