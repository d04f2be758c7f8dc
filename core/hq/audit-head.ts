/**
 * Audit chain anchoring, the contract both sides import (docs/audit.md "Anchoring at the registry",
 * docs/registry-api.md "Audit heads"): the station's signed audit head (JWS typ line-station-audit-head+jws), the
 * consistency proof that travels with it in every batch and bundle, the registry's verdict in the receipt, and the
 * registry's signed list of a station's anchored heads. Pure: core/ and zod only.
 */
import { z } from 'zod';
import { utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import type { Clock, Signer } from '../ports.js';

export const AUDIT_HEAD_TYP = 'line-station-audit-head+jws';
export const AUDIT_HEAD_SCHEMA = 'line-station/audit-head/v1';
export const AUDIT_HEADS_TYP = 'line-station-audit-heads+jws';
export const AUDIT_HEADS_SCHEMA = 'line-station/audit-heads/v1';

/** Most audit entries one proof may carry. */
export const MAX_PROOF_ENTRIES = 100_000;
/** Proof budget (UTF-8 bytes of the JSON of `entries`) in an online batch; the records get the rest of the 8 MiB. */
export const BATCH_PROOF_BYTES = 2 * 1024 * 1024;
/** Proof budget in a bundle (64 MiB at most, the records take up to ~34 MiB). */
export const BUNDLE_PROOF_BYTES = 16 * 1024 * 1024;
/** Largest signed head JWS (three certificates in x5c and a short payload). */
export const MAX_HEAD_CHARS = 16 * 1024;

const HEX64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const ISO = z.iso.datetime({ offset: false });
const Seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Payload of the signed audit head (canonical JSON). */
export const AuditHeadPayloadSchema = z
  .object({
    schema: z.literal(AUDIT_HEAD_SCHEMA),
    stationId: z.string().min(1).max(64),
    /** Sequence number of the newest entry the head covers (>= 1). */
    seq: Seq.min(1),
    /** Its hash (docs/audit.md "Entry hash"): it pins every entry 1..seq. */
    hash: HEX64,
    signedAt: ISO,
  })
  .strict();
export type AuditHeadPayload = z.infer<typeof AuditHeadPayloadSchema>;

/** One audit entry as the proof carries it: exactly the hashed content (docs/audit.md), prevHash and hash left out. */
export const AuditProofEntrySchema = z
  .object({
    seq: Seq.min(1),
    ts: z.string().min(1).max(64),
    type: z.string().min(1).max(128),
    runId: z.string().max(128).nullable(),
    payload: z.record(z.string(), z.unknown()),
  })
  .strict();
export type AuditProofEntry = z.infer<typeof AuditProofEntrySchema>;

/**
 * What the station sends with a batch (`auditHead` of the body) or a bundle (`auditHead` of the payload): the
 * signed head and the entries fromSeq+1 .. head.seq. `fromSeq` is the newest head the registry told this station it
 * holds (0 = from the start of the chain), `fromHash` the station's own hash of entry fromSeq (64 zeros for 0).
 */
export const AuditHeadSubmissionSchema = z
  .object({
    head: z.string().min(1).max(MAX_HEAD_CHARS),
    fromSeq: Seq,
    fromHash: HEX64,
    entries: z.array(AuditProofEntrySchema).max(MAX_PROOF_ENTRIES),
  })
  .strict();
export type AuditHeadSubmission = z.infer<typeof AuditHeadSubmissionSchema>;

/**
 * Why the registry refused a head (docs/audit.md "What the registry does on a fork"):
 * - `rewritten`: the station's hash of entry fromSeq is not the hash the registry anchored for it: history at or
 *   before fromSeq was rewritten (or the data dir restored from a backup and grown again);
 * - `forked`: an entry of the proof chains to a hash other than the one anchored for its sequence number;
 * - `proof-mismatch`: the proof's entries, chained from fromHash, do not end at the signed head hash.
 */
export const AUDIT_FINDING_KINDS = ['rewritten', 'forked', 'proof-mismatch'] as const;
export type AuditFindingKind = (typeof AUDIT_FINDING_KINDS)[number];

const HeadRef = z.object({ seq: Seq, hash: HEX64 }).strict();

/** The registry's verdict on a submitted head, in the receipt (`auditHead`). */
export const AuditAnchorOutcomeSchema = z
  .object({
    /**
     * `anchored`: the head extends the anchored chain and is stored; `already-anchored`: it is on the anchored chain
     * but adds nothing (not newer); `refused`: a finding was recorded (see `finding`); `invalid`: the head or proof
     * could not be checked (signature, station, sequence numbers) — nothing stored, no finding.
     */
    status: z.enum(['anchored', 'already-anchored', 'refused', 'invalid']),
    /** The submitted head (0 and 64 zeros when it could not be read). */
    seq: Seq,
    hash: HEX64,
    /** The newest head the registry holds for this station after this submission (null: none yet). */
    anchored: HeadRef.nullable(),
    finding: z.enum(AUDIT_FINDING_KINDS).nullable(),
    message: z.string().max(1024).nullable(),
  })
  .strict();
export type AuditAnchorOutcome = z.infer<typeof AuditAnchorOutcomeSchema>;

/** The registry's signed answer to GET /v1/audit-heads (typ line-station-audit-heads+jws). */
export const AnchoredHeadsPayloadSchema = z
  .object({
    schema: z.literal(AUDIT_HEADS_SCHEMA),
    registryId: z.string().min(1).max(128),
    stationId: z.string().min(1).max(64),
    issuedAt: ISO,
    /** The `challenge` query parameter of the request, echoed (freshness). */
    challenge: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
    /** The newest anchored entry (it pins every entry before it); null when nothing is anchored yet. */
    latest: HeadRef.nullable(),
    /** Every head the station signed that the registry anchored, oldest first. */
    heads: z.array(z.object({ seq: Seq, hash: HEX64, signedAt: ISO, receivedAt: ISO }).strict()),
    findings: z.array(
      z
        .object({ kind: z.enum(AUDIT_FINDING_KINDS), atSeq: Seq, detectedAt: ISO, message: z.string().max(1024) })
        .strict(),
    ),
  })
  .strict();
export type AnchoredHeadsPayload = z.infer<typeof AnchoredHeadsPayloadSchema>;

/**
 * Sign an audit head with the station key (HSM): compact JWS, protected header {alg, typ:
 * "line-station-audit-head+jws", kid: stationId, x5c: station chain}, payload canonical JSON of
 * {schema, stationId, seq, hash, signedAt}.
 */
export async function signAuditHead(p: {
  signer: Signer;
  chain: readonly Uint8Array[];
  stationId: string;
  seq: number;
  hash: string;
  clock: Clock;
}) {
  const payload: AuditHeadPayload = {
    schema: AUDIT_HEAD_SCHEMA,
    stationId: p.stationId,
    seq: p.seq,
    hash: p.hash,
    signedAt: p.clock.now().toISOString(),
  };
  // Loaded when a head is signed: the station database (native/store) reads these constants and schemas, and
  // `station records` should not load the X.509 stack for them (issue 12, cold start).
  const { signJws } = await import('../pki/jws.js');
  return signJws({
    signer: p.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: AUDIT_HEAD_TYP, kid: p.stationId, x5c: p.chain },
  });
}

/** UTF-8 bytes an entry adds to a proof (its JSON text plus a separator): the budget unit. */
export const proofEntryBytes = (e: AuditProofEntry): number => utf8(JSON.stringify(e)).length + 1;
