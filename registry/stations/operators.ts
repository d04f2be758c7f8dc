/**
 * Operator revocations: revoked operators (their later records are refused at ingest), in the lifecycle log. Imports core,
 * registry/common and registry/store.
 */
import { type LifecycleRole } from '../../core/lifecycle.js';
import { type Result } from '../../core/result.js';
import * as st from '../store/lifecycle.js';
import { apiFail, type ApiError } from '../common/errors.js';
import { transactValue } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';

/** Revoke an operator: records it completes from now on are refused (OPERATOR_REVOKED). */
export async function revokeOperator(
  ctx: LifecycleContext,
  role: LifecycleRole,
  operatorId: string,
  reason: string,
): Promise<Result<{ operatorId: string; revokedAt: string }, ApiError>> {
  if (!/^[A-Za-z0-9._@-]{1,128}$/.test(operatorId)) return apiFail('BODY_INVALID', 'invalid operator id');
  return transactValue(ctx.db.sql, async (x) => {
    const at = now(ctx);
    await x.run(
      'INSERT INTO revoked_operators (operator_id, reason, revoked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      [operatorId, reason || 'unspecified', at],
    );
    const row = (await x.all('SELECT revoked_at FROM revoked_operators WHERE operator_id = ?', [operatorId]))[0]!;
    await st.appendEvent(x, at, 'operator.revoked', { operatorId, actor: role, reason });
    return { operatorId, revokedAt: row['revoked_at'] as string };
  });
}
