/**
 * sync-backlog: records not yet acknowledged by the registry (pending and sent), how long the oldest has waited,
 * and records the registry refused (failed). docs/sync.md.
 */
import type { DoctorCheck } from '../../../core/api.js';
import type { Result } from '../../../core/result.js';
import { ageText, check } from '../check.js';
import type { DoctorRegistry, SyncBacklog } from '../ports.js';

/** A record waiting longer than this warns: headquarters' view of the line is a day behind. */
export const BACKLOG_WARN_AGE_MS = 24 * 3600 * 1000;
/** ... and longer than this fails: a week of certificates headquarters cannot revoke or audit. */
export const BACKLOG_FAIL_AGE_MS = 7 * 24 * 3600 * 1000;

/** The sync-backlog check; `registry` says whether to sync online or carry a bundle. */
export function checkBacklog(
  b: Result<SyncBacklog>,
  registry: DoctorRegistry | null,
  dataDir: string,
  now: Date,
): DoctorCheck {
  if (!b.ok) return check('sync-backlog', 'fail', b.error.message, b.error.guidance, { code: b.error.code });
  const { pending, sent, failed, oldestUnacknowledgedAt } = b.value;
  const waiting = pending + sent;
  const details = { pending, sent, failed, oldestUnacknowledgedAt };
  const send = registry?.url
    ? `station sync --data-dir ${dataDir}`
    : `station export --data-dir ${dataDir} --out bundle.jws, then at headquarters: registry import bundle.jws`;
  const age = oldestUnacknowledgedAt ? now.getTime() - Date.parse(oldestUnacknowledgedAt) : 0;
  const text =
    waiting === 0
      ? 'no record waits for the registry'
      : `${waiting} record(s) wait for the registry (${pending} pending, ${sent} sent), the oldest for ${ageText(age)}`;
  const refused = failed ? `; ${failed} refused by the registry` : '';
  if (waiting && age > BACKLOG_FAIL_AGE_MS) return check('sync-backlog', 'fail', text + refused, send, details);
  if (waiting && age > BACKLOG_WARN_AGE_MS) return check('sync-backlog', 'warn', text + refused, send, details);
  if (failed)
    return check(
      'sync-backlog',
      'warn',
      text + refused,
      `see why: station sync --status --data-dir ${dataDir} (docs/sync.md "States")`,
      details,
    );
  return check('sync-backlog', 'pass', text, undefined, details);
}
