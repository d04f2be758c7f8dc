/**
 * A fan-out for the logger's `tap` (native/logger.ts): create it first, pass `tap` to createLogger and the
 * hub to createStationService, which keeps the last lines for the supervisor's live log view.
 */
import type { LogLine } from '../../native/logger.js';

export interface LogTap {
  /** Give this to createLogger({ tap }). */
  readonly tap: (line: LogLine) => void;
  subscribe(cb: (line: LogLine) => void): () => void;
}

export function createLogTap(): LogTap {
  const subs = new Set<(line: LogLine) => void>();
  return {
    tap(line) {
      for (const cb of subs) {
        try {
          cb(line);
        } catch {
          // a subscriber must never break logging
        }
      }
    },
    subscribe(cb) {
      subs.add(cb);
      return () => subs.delete(cb);
    },
  };
}
