/**
 * The lifecycle's background loop while the station runs: every few seconds, active runs past their lifetime end
 * (also offline: their events wait for the next sync or bundle) and queued scrap / failed-issuance events go out
 * (not only at the next pull); every pullIntervalS, the policy pull (only with a registry URL).
 *
 * May import: core/ (ports, result types).
 */
import type { Logger } from '../../core/ports.js';
import type { Result } from '../../core/result.js';

export interface LifecycleLoopParts {
  readonly log: Logger;
  /** A registry URL is configured (else nothing is sent or pulled). */
  readonly online: boolean;
  readonly pullIntervalS: number;
  readonly revocationIntervalS: number;
  expireActiveRuns(): Promise<Result<unknown>>;
  /** A scrap or failed-issuance event is queued. */
  hasQueued(): boolean;
  sendRevocations(): Promise<Result<unknown>>;
  pull(): Promise<Result<unknown>>;
  lastPullError(): string | null;
}

export interface LifecycleLoop {
  /** Idempotent. */
  start(): void;
  stop(): void;
}

/** The background loop (not started). */
export function createLifecycleLoop(p: LifecycleLoopParts): LifecycleLoop {
  const { log } = p;
  let timer: NodeJS.Timeout | null = null;
  let revTimer: NodeJS.Timeout | null = null;
  let running = false;

  const revEvery = p.revocationIntervalS * 1000;
  const revTick = () => {
    const go = p
      .expireActiveRuns()
      .then((r) => {
        if (!r.ok) log.log('warn', 'expired active runs not ended yet', { code: r.error.code });
        // Stopped (and maybe closed) while the runs were being ended: the database is not touched again.
        const pending = running && p.online && p.hasQueued();
        return pending
          ? p.sendRevocations().then((s) => {
              if (!s.ok) log.log('warn', 'revocation events not sent; kept queued', { code: s.error.code });
            })
          : undefined;
      })
      .catch((e: unknown) => {
        if (running) log.log('error', 'background lifecycle tick failed', { error: (e as Error).message });
      });
    void go.then(() => {
      if (!running) return;
      revTimer = setTimeout(revTick, revEvery);
      revTimer.unref?.();
    });
  };

  const every = p.pullIntervalS * 1000;
  const tick = () => {
    const go = p
      .pull()
      .then((r) => {
        if (!r.ok) log.log('warn', 'policy pull failed; the policy in force stays', { error: p.lastPullError() });
      })
      .catch((e: unknown) => {
        // Stopped (and the database maybe closed) while the pull was in flight: its store throws; nothing was
        // written (each document is stored in one transaction), and nothing is logged after the stop.
        if (running) log.log('error', 'background policy pull failed', { error: (e as Error).message });
      });
    void go.then(() => {
      if (!running) return;
      timer = setTimeout(tick, every);
      timer.unref?.();
    });
  };

  return {
    start() {
      if (running) return;
      running = true;
      revTimer = setTimeout(revTick, 0);
      revTimer.unref?.();
      if (!p.online) return;
      timer = setTimeout(tick, 0);
      timer.unref?.();
    },
    stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      if (revTimer) clearTimeout(revTimer);
      revTimer = null;
    },
  };
}
