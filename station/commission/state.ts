/**
 * The state of a commissioning in progress: `<data-dir>/commission-state.json` (0600), written before the first key
 * is generated and removed once the station is commissioned. It lets a half-finished `station commission` resume:
 * the same request id, the keys found again by label in the token, the SAME request JWS resent (the registry answers
 * a request it already answered with the stored answer), the answer kept once verified. It holds no secret: the
 * request and answer are signed public documents, the PIN source is a name (docs/deployment.md "Resuming").
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { MAX_COMMISSION_JWS_CHARS } from '../../core/hq/commission.js';
import { StationIdSchema } from '../../core/hq/protocol.js';
import { ok, type Result } from '../../core/result.js';
import { writeFileAtomic } from '../../native/atomic-file.js';

export const COMMISSION_STATE_FILE = 'commission-state.json';

/**
 * Phases, in order: `keys` (request id chosen, keys being generated), `requested` (request JWS built and kept),
 * `answered` (a verified answer kept: certificates, pki/ and config.json are being written), `signer` (commissioned
 * online; the delegated revocation signer exchange still to run).
 */
export const COMMISSION_PHASES = ['keys', 'requested', 'answered', 'signer'] as const;
export type CommissionPhase = (typeof COMMISSION_PHASES)[number];

const Jws = z.string().min(1).max(MAX_COMMISSION_JWS_CHARS);

export const CommissionStateSchema = z
  .object({
    schema: z.literal('line-station/commission-state/v1'),
    stationId: StationIdSchema,
    requestId: z.uuid(),
    organization: z.string().min(1).max(128),
    phase: z.enum(COMMISSION_PHASES),
    /** The token the keys live in, as config.json `hsm` will name it (a resumed commissioning uses the same). */
    token: z
      .object({
        module: z.string().min(1),
        tokenLabel: z.string().min(1).max(32),
        profile: z.string().min(1).optional(),
        tokenDir: z.string().min(1).optional(),
        softhsmConf: z.string().min(1).optional(),
      })
      .strict(),
    /** Where the station reads its PIN (config.json `hsm.pin`): a name, never the PIN. */
    pin: z.union([z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()]),
    keys: z.object({ issuingCa: z.string().min(1), station: z.string().min(1) }).strict(),
    /** Vendor attestation roots already copied into the data dir (relative paths), and extra serial ports. */
    attestationRoots: z.array(z.string().min(1)).min(1),
    extraPorts: z.array(z.string()),
    request: Jws.optional(),
    answer: Jws.optional(),
    startedAt: z.iso.datetime({ offset: false }),
  })
  .strict();
export type CommissionState = z.infer<typeof CommissionStateSchema>;

const file = (dataDir: string) => join(dataDir, COMMISSION_STATE_FILE);

/** The commissioning in progress in `dataDir`, or null when there is none (CONFIG_INVALID when the file is damaged). */
export function readCommissionState(dataDir: string): Result<CommissionState | null> {
  const f = file(dataDir);
  if (!existsSync(f)) return ok(null);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    return fail('CONFIG_INVALID', `${f}: not valid JSON (${(e as Error).message}); remove it to start again`);
  }
  const p = CommissionStateSchema.safeParse(json);
  if (!p.success) {
    const i = p.error.issues[0];
    return fail('CONFIG_INVALID', `${f}: ${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'}`);
  }
  return ok(p.data);
}

/** Write the state (atomically, 0600). */
export function writeCommissionState(dataDir: string, s: CommissionState): void {
  writeFileAtomic(file(dataDir), JSON.stringify(s, null, 2) + '\n');
}

/** Remove the state: the station is commissioned. */
export function clearCommissionState(dataDir: string): void {
  rmSync(file(dataDir), { force: true });
}
