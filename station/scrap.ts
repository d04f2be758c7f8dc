/**
 * What follows a supervisor's scrap once the board's identity is erased (engine.zeroize), the same for the UI's
 * override and `station scrap`: the audit entry `override.scrap` (who approved, who asked, why, which board), then
 * the lifecycle's scrap: the quota unit marked scrapped (it stays used) and a signed scrap event queued, which asks
 * the registry to revoke the board's certificate (station/lifecycle/scrap.ts, docs/lifecycle.md "Scrap").
 * May import: core/, station/engine.ts.
 */
import type { Logger } from '../core/ports.js';
import type { Engine } from './engine.js';

export interface ScrapApproval {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly port: string;
  readonly reason: string;
  readonly supervisor: string;
  readonly operator: string;
}

/**
 * Audit the scrap and queue its revocation. False when the scrap event could not be queued (logged; the audit entry
 * is written either way, and the board's identity is already erased).
 */
export async function recordScrap(engine: Engine, s: ScrapApproval, log: Logger): Promise<boolean> {
  const base = { supervisor: s.supervisor, operator: s.operator, reason: s.reason, port: s.port };
  engine.store.appendAudit('override.scrap', { ...base, chipId: s.chipId, serialNumber: s.serialNumber });
  const q = await engine.lifecycle.scrap({
    chipId: s.chipId,
    serialNumber: s.serialNumber,
    reason: s.reason,
    supervisor: s.supervisor,
    operator: s.operator,
  });
  if (!q.ok) log.log('warn', `override: scrap event not queued: ${q.error.code} ${q.error.message}`, base);
  log.log('info', 'override: board scrapped (identity zeroized)', { ...base, chipId: s.chipId });
  return q.ok;
}
