/**
 * Test support for the HSM adapter: a throwaway SoftHSM2 environment and a capturing logger.
 * Used by native/hsm tests and available to integration tests of other parts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger, LogLevel } from '../core/ports.js';
import { createSoftHsmEnv, initToken, type SoftHsmEnv } from '../native/softhsm-dev.js';

export interface CapturedLine {
  readonly level: LogLevel;
  readonly prefix: string;
  readonly msg: string;
  readonly ctx?: Readonly<Record<string, unknown>>;
}

/** A Logger that records every line (with its child prefix) for assertions. */
export function captureLogger(lines: CapturedLine[] = [], prefix = ''): Logger & { lines: CapturedLine[] } {
  return {
    lines,
    log(level, msg, ctx) {
      lines.push({ level, prefix, msg, ...(ctx ? { ctx } : {}) });
    },
    child(p) {
      return captureLogger(lines, prefix ? `${prefix} ${p}` : p);
    },
  };
}

export interface TestToken {
  readonly env: SoftHsmEnv;
  readonly dir: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  cleanup(): Promise<void>;
}

/**
 * Create a throwaway SoftHSM2 token directory (sets SOFTHSM2_CONF: call before the first openHsm in the
 * process) and initialise the given tokens. Returns the first token; more labels can be initialised.
 */
export async function createTestTokens(
  labels: readonly string[],
  pin: string,
  soPin = 'so-pin-0000',
): Promise<TestToken> {
  const dir = await mkdtemp(join(tmpdir(), 'line-station-hsm-'));
  const env = await createSoftHsmEnv(dir);
  for (const label of labels) {
    const r = await initToken(env, { label, soPin, pin });
    if (!r.ok) throw new Error(`initToken ${label}: ${r.error.message}`);
  }
  return {
    env,
    dir,
    label: labels[0] ?? '',
    pin,
    soPin,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
