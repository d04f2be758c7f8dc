/**
 * Scheduled CRL regeneration for `registry serve`: the CRL of every station with an installed revocation signer
 * is re-signed (with that delegated key) every `everyS`
 * seconds (and once at start), and so is the HQ CRL (registry/commissioning/hq-revocation.ts), while each CRL is valid for longer (`lifecycle.crlIntervalS`, normally twice the
 * schedule), so relying parties never see an expired CRL when one run is late.
 */
import { ok } from '../../core/result.js';
import { refreshCrl } from './crl.js';
import { refreshHqCrl } from '../commissioning/hq-revocation.js';
import { type LifecycleContext } from '../common/context.js';
import * as st from '../store/lifecycle.js';

/** Start the schedule; returns a stop function. Failures are logged, never thrown. */
export function scheduleCrlRegeneration(ctx: LifecycleContext, everyS: number): () => void {
  let running = false;
  let stopped = false;
  const tick = async (): Promise<void> => {
    if (running || stopped) return;
    running = true;
    try {
      const keys = await st.activeSigners(ctx.db.sql).then(ok, (e: unknown) => {
        ctx.logger.log('error', 'scheduled CRL: database', { error: e instanceof Error ? e.message : String(e) });
        return null;
      });
      for (const k of keys?.value ?? []) {
        if (stopped) break;
        const r = await refreshCrl(ctx, k.stationId);
        if (!r.ok) ctx.logger.log('error', 'scheduled CRL failed', { stationId: k.stationId, code: r.error.code });
        else ctx.logger.log('debug', 'CRL regenerated', { stationId: k.stationId, crlNumber: r.value.crlNumber });
      }
      // The HQ CRL (station CAs of revoked stations), when this registry has an HQ CA.
      if (!stopped && ctx.lifecycle?.commissioning?.hqCa.ok) {
        const r = await refreshHqCrl(ctx);
        if (!r.ok) ctx.logger.log('error', 'scheduled HQ CRL failed', { code: r.error.code });
      }
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void tick(), 0);
  first.unref();
  const timer = setInterval(() => void tick(), Math.max(1, everyS) * 1000);
  timer.unref();
  return () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(timer);
  };
}
