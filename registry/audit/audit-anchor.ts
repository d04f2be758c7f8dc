/**
 * Audit chain anchoring at the registry (docs/audit.md "Anchoring at the registry"): check a station's signed audit
 * head and its consistency proof against the chain the registry already anchored for that station, store what
 * extends it (the hash of every covered entry, and the signed head), and record a finding when it does not (a
 * rewritten or forked history). Also the station's signed list of anchored heads (GET /v1/audit-heads) and
 * `registry verify-station`. The only writer of the tables audit_anchor_chain, audit_heads and audit_findings.
 */
import { createHash } from 'node:crypto';
import { utf8 } from '../../core/bytes.js';
import { auditEntryPreimage, GENESIS_HASH } from '../../core/provisioning/audit.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { err, ok, type Result } from '../../core/result.js';
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';
import { parseCompactJws } from '../../core/hq/jws.js';
import {
  AUDIT_HEAD_TYP,
  AUDIT_HEADS_SCHEMA,
  AUDIT_HEADS_TYP,
  AuditHeadPayloadSchema,
  MAX_HEAD_CHARS,
  type AnchoredHeadsPayload,
  type AuditAnchorOutcome,
  type AuditFindingKind,
  type AuditHeadPayload,
  type AuditHeadSubmission,
} from '../../core/hq/audit-head.js';
import { zodMessage } from '../../core/hq/protocol.js';
import { apiError, type ApiError } from '../common/errors.js';
import { stationTrust } from '../stations/trust.js';
import { type RegistryContext } from '../common/context.js';
import { verifyStationSigned, type StationTrust } from '../trust/verify.js';

/** Where a head came from (stored with it and with a finding). */
export interface HeadSource {
  readonly source: 'batch' | 'bundle';
  readonly batchId: string;
}

/** Rows per multi-row INSERT of entry hashes (3 parameters each; far below both backends' limits). */
const INSERT_CHUNK = 500;

/** Longest message in a verdict (the receipt schema allows 1024). */
const MAX_MESSAGE = 1000;

const sha256Hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

const short = (h: string) => `${h.slice(0, 16)}…`;

type Head = { readonly seq: number; readonly hash: string };

async function latestAnchored(tx: SqlExec, stationId: string): Promise<Head | null> {
  const r = await tx.all('SELECT seq, hash FROM audit_anchor_chain WHERE station_id = ? ORDER BY seq DESC LIMIT 1', [
    stationId,
  ]);
  return r[0] ? { seq: Number(r[0]['seq']), hash: r[0]['hash'] as string } : null;
}

/** The verdict when the head or proof cannot be checked at all (nothing stored, no finding). */
function invalid(seq: number, hash: string, anchored: Head | null, message: string): AuditAnchorOutcome {
  return { status: 'invalid', seq, hash, anchored, finding: null, message: message.slice(0, MAX_MESSAGE) };
}

/** Read and authenticate the signed head: typ, schema, this station, the station's (possibly rotated) key. */
function readHead(trust: StationTrust, jws: string): Result<AuditHeadPayload, string> {
  const p = parseCompactJws(jws, 'audit head', MAX_HEAD_CHARS);
  if (!p.ok) return err(p.error.message);
  if (p.value.header.typ !== AUDIT_HEAD_TYP) return err(`audit head: typ is not ${AUDIT_HEAD_TYP}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    return err('audit head: the payload is not JSON');
  }
  const h = AuditHeadPayloadSchema.safeParse(json);
  if (!h.success) return err(`audit head: ${zodMessage(h.error)}`);
  if (h.data.stationId !== trust.row.stationId)
    return err(`audit head: signed for station ${h.data.stationId}, sent by ${trust.row.stationId}`);
  const v = verifyStationSigned(trust, p.value, 'audit head', h.data.signedAt);
  if (!v.ok) return err(v.error.message);
  return ok(h.data);
}

/**
 * Check a submitted audit head and store it if it extends the station's anchored chain, else record a finding.
 * The records of the batch or bundle are ingested either way (they are signed on their own; docs/audit.md). One
 * transaction; STORE_UNAVAILABLE when the database fails (the caller then stores nothing and the station retries).
 */
export async function anchorAuditHead(
  ctx: RegistryContext,
  trust: StationTrust,
  sub: AuditHeadSubmission,
  from: HeadSource,
): Promise<Result<AuditAnchorOutcome, ApiError>> {
  const stationId = trust.row.stationId;
  const head = readHead(trust, sub.head);
  // Pure checks first: the proof must run exactly fromSeq+1 .. head.seq; then its hashes, chained from fromHash.
  let problem: string | null = head.ok ? null : head.error;
  const seq = head.ok ? head.value.seq : 0;
  const hash = head.ok ? head.value.hash : GENESIS_HASH;
  if (!problem && sub.fromSeq === 0 && sub.fromHash !== GENESIS_HASH)
    problem = 'a proof from the start of the chain must have fromHash = 64 zeros';
  if (!problem && sub.entries.length !== seq - sub.fromSeq)
    problem = `the proof must hold the entries ${sub.fromSeq + 1}..${seq}, it holds ${sub.entries.length}`;
  if (!problem) {
    const at = sub.entries.findIndex((e, i) => e.seq !== sub.fromSeq + 1 + i);
    if (at >= 0) problem = `proof entry ${at} has seq ${sub.entries[at]!.seq}, expected ${sub.fromSeq + 1 + at}`;
  }
  const computed: string[] = [];
  if (!problem) {
    let prev = sub.fromHash;
    try {
      for (const e of sub.entries) computed.push((prev = sha256Hex(auditEntryPreimage(prev, e))));
    } catch (e) {
      problem = `a proof entry is not plain JSON: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const end = computed.length ? computed[computed.length - 1]! : sub.fromHash;
  const now = ctx.clock.now().toISOString();
  const signedAt = head.ok ? head.value.signedAt : now;
  let outcome: AuditAnchorOutcome;
  try {
    outcome = await ctx.db.sql.transaction(async (tx): Promise<AuditAnchorOutcome> => {
      const latest = await latestAnchored(tx, stationId);
      if (problem) return invalid(seq, hash, latest, problem);
      if (sub.fromSeq > (latest?.seq ?? 0))
        return invalid(
          seq,
          hash,
          latest,
          `the proof starts after entry ${sub.fromSeq}, which this registry has not anchored (it holds up to ${latest?.seq ?? 0})`,
        );
      const upTo = Math.min(seq, latest?.seq ?? 0);
      const stored = new Map<number, string>();
      for (const r of await tx.all(
        'SELECT seq, hash FROM audit_anchor_chain WHERE station_id = ? AND seq >= ? AND seq <= ? ORDER BY seq',
        [stationId, sub.fromSeq, upTo],
      ))
        stored.set(Number(r['seq']), r['hash'] as string);
      // --- does the submitted chain extend the anchored one?
      let finding: {
        kind: AuditFindingKind;
        atSeq: number;
        anchored: string;
        presented: string;
        message: string;
      } | null = null;
      const base = sub.fromSeq === 0 ? GENESIS_HASH : stored.get(sub.fromSeq);
      if (base !== sub.fromHash)
        finding = {
          kind: 'rewritten',
          atSeq: sub.fromSeq,
          anchored: base ?? '',
          presented: sub.fromHash,
          message: `audit entry ${sub.fromSeq} now hashes to ${short(sub.fromHash)}, the registry anchored ${short(base ?? '')}: history at or before entry ${sub.fromSeq} was rewritten`,
        };
      for (let i = 0; !finding && i < computed.length; i++) {
        const k = sub.fromSeq + 1 + i;
        const a = stored.get(k);
        if (a !== undefined && a !== computed[i])
          finding = {
            kind: 'forked',
            atSeq: k,
            anchored: a,
            presented: computed[i]!,
            message: `audit entry ${k} differs from the entry the registry anchored (${short(computed[i]!)} instead of ${short(a)}): the history forked at entry ${k}`,
          };
      }
      if (!finding && end !== hash)
        finding = {
          kind: 'proof-mismatch',
          atSeq: seq,
          anchored: end,
          presented: hash,
          message: `the signed head ${seq} ${short(hash)} is not the hash ${short(end)} of the entries sent with it`,
        };
      if (finding) {
        await tx.run(
          `INSERT INTO audit_findings (finding_id, station_id, kind, at_seq, anchored_hash, presented_hash, head_seq,
               head_hash, head_jws, source, batch_id, detected_at, message)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
          [
            globalThis.crypto.randomUUID(),
            stationId,
            finding.kind,
            finding.atSeq,
            finding.anchored,
            finding.presented,
            seq,
            hash,
            sub.head,
            from.source,
            from.batchId,
            now,
            finding.message,
          ],
        );
        return { status: 'refused', seq, hash, anchored: latest, finding: finding.kind, message: finding.message };
      }
      // --- it does: anchor the new entries' hashes and the signed head.
      const fresh: [number, string][] = [];
      for (let i = 0; i < computed.length; i++) {
        const k = sub.fromSeq + 1 + i;
        if (k > (latest?.seq ?? 0)) fresh.push([k, computed[i]!]);
      }
      for (let i = 0; i < fresh.length; i += INSERT_CHUNK) {
        const part = fresh.slice(i, i + INSERT_CHUNK);
        await tx.run(
          `INSERT INTO audit_anchor_chain (station_id, seq, hash) VALUES ${part.map(() => '(?, ?, ?)').join(', ')}`,
          part.flatMap(([k, h]) => [stationId, k, h]),
        );
      }
      await tx.run(
        `INSERT INTO audit_heads (station_id, seq, hash, signed_at, received_at, source, batch_id, jws)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        [stationId, seq, hash, signedAt, now, from.source, from.batchId, sub.head],
      );
      const newer = seq > (latest?.seq ?? 0);
      return {
        status: newer ? 'anchored' : 'already-anchored',
        seq,
        hash,
        anchored: newer ? { seq, hash } : latest,
        finding: null,
        message: null,
      };
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    ctx.logger.log('error', 'audit head not stored', { stationId, batchId: from.batchId, error: message });
    return err(apiError('STORE_UNAVAILABLE', `registry database: ${message}`));
  }
  const logCtx = { stationId, batchId: from.batchId, seq, status: outcome.status };
  if (outcome.status === 'refused')
    ctx.logger.log('error', 'audit chain of a station does not extend its anchored chain', {
      ...logCtx,
      finding: outcome.finding,
      message: outcome.message,
    });
  else if (outcome.status === 'invalid')
    ctx.logger.log('warn', 'audit head not checked', { ...logCtx, message: outcome.message });
  return ok(outcome);
}

// ---------------------------------------------------------------- reading: GET /v1/audit-heads, verify-station

export interface StoredHead {
  readonly seq: number;
  readonly hash: string;
  readonly signedAt: string;
  readonly receivedAt: string;
  readonly source: 'batch' | 'bundle';
  readonly batchId: string;
  readonly jws: string;
}

export interface StoredFinding {
  readonly findingId: string;
  readonly kind: AuditFindingKind;
  readonly atSeq: number;
  readonly anchoredHash: string;
  readonly presentedHash: string;
  readonly headSeq: number;
  readonly headHash: string;
  readonly source: string;
  readonly batchId: string;
  readonly detectedAt: string;
  readonly message: string;
}

/** What the registry holds about a station's audit chain. */
export interface StationAudit {
  readonly stationId: string;
  /** The newest anchored entry (seq, hash); null before the first head. */
  readonly latest: Head | null;
  /** Entries whose hash is anchored (1..latest.seq). */
  readonly anchoredEntries: number;
  readonly heads: readonly StoredHead[];
  readonly findings: readonly StoredFinding[];
}

const headFrom = (r: SqlRow): StoredHead => ({
  seq: Number(r['seq']),
  hash: r['hash'] as string,
  signedAt: r['signed_at'] as string,
  receivedAt: r['received_at'] as string,
  source: r['source'] as 'batch' | 'bundle',
  batchId: r['batch_id'] as string,
  jws: r['jws'] as string,
});

const findingFrom = (r: SqlRow): StoredFinding => ({
  findingId: r['finding_id'] as string,
  kind: r['kind'] as AuditFindingKind,
  atSeq: Number(r['at_seq']),
  anchoredHash: r['anchored_hash'] as string,
  presentedHash: r['presented_hash'] as string,
  headSeq: Number(r['head_seq']),
  headHash: r['head_hash'] as string,
  source: r['source'] as string,
  batchId: r['batch_id'] as string,
  detectedAt: r['detected_at'] as string,
  message: r['message'] as string,
});

/** The anchored heads and findings of an enrolled station (revoked ones too); NOT_FOUND for an unknown id. */
export async function stationAudit(ctx: RegistryContext, stationId: string): Promise<Result<StationAudit, ApiError>> {
  const st = await ctx.db.getStation(stationId);
  if (!st.ok) return err(apiError('STORE_UNAVAILABLE', st.error.message));
  if (!st.value) return err(apiError('NOT_FOUND', `station ${stationId} is not enrolled`));
  try {
    const sql = ctx.db.sql;
    const latest = await latestAnchored(sql, stationId);
    const n = await sql.all('SELECT COUNT(*) AS n FROM audit_anchor_chain WHERE station_id = ?', [stationId]);
    const heads = await sql.all('SELECT * FROM audit_heads WHERE station_id = ? ORDER BY seq', [stationId]);
    const findings = await sql.all('SELECT * FROM audit_findings WHERE station_id = ? ORDER BY detected_at, at_seq', [
      stationId,
    ]);
    return ok({
      stationId,
      latest,
      anchoredEntries: Number(n[0]?.['n'] ?? 0),
      heads: heads.map(headFrom),
      findings: findings.map(findingFrom),
    });
  } catch (e) {
    return err(apiError('STORE_UNAVAILABLE', `registry database: ${e instanceof Error ? e.message : String(e)}`));
  }
}

/**
 * The station's anchored heads as a JWS signed with the registry receipt key (typ line-station-audit-heads+jws),
 * echoing the station's `challenge`: the answer of GET /v1/audit-heads.
 */
export async function signedAnchoredHeads(
  ctx: RegistryContext,
  stationId: string,
  challenge: string,
): Promise<Result<string, ApiError>> {
  const a = await stationAudit(ctx, stationId);
  if (!a.ok) return a;
  const payload: AnchoredHeadsPayload = {
    schema: AUDIT_HEADS_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    issuedAt: ctx.clock.now().toISOString(),
    challenge,
    latest: a.value.latest,
    heads: a.value.heads.map((h) => ({ seq: h.seq, hash: h.hash, signedAt: h.signedAt, receivedAt: h.receivedAt })),
    findings: a.value.findings.map((f) => ({
      kind: f.kind,
      atSeq: f.atSeq,
      detectedAt: f.detectedAt,
      message: f.message,
    })),
  };
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: AUDIT_HEADS_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  return jws.ok ? ok(jws.value) : err(apiError('INTERNAL', `the answer could not be signed: ${jws.error.message}`));
}

/** `registry verify-station`: the station's audit anchoring, each stored head re-checked. */
export interface StationAuditVerification extends StationAudit {
  /** Stored heads whose signature no longer verifies or whose hash is not the anchored hash at their seq. */
  readonly problems: readonly string[];
  /** No finding and no problem. */
  readonly ok: boolean;
}

/**
 * Re-check what is stored for a station: every head's signature (the station's enrolled or rotated key) and that
 * its hash is the anchored entry hash at its seq; with the findings, the report of `registry verify-station`.
 */
export async function verifyStationAudit(
  ctx: RegistryContext,
  stationId: string,
): Promise<Result<StationAuditVerification, ApiError>> {
  const a = await stationAudit(ctx, stationId);
  if (!a.ok) return a;
  const trust = await stationTrust(ctx, stationId, true);
  if (!trust.ok) return trust;
  const problems: string[] = [];
  for (const h of a.value.heads) {
    const r = readHead(trust.value, h.jws);
    if (!r.ok) problems.push(`head ${h.seq}: ${r.error}`);
    else if (r.value.seq !== h.seq || r.value.hash !== h.hash)
      problems.push(
        `head ${h.seq}: the stored row differs from the signed head (${r.value.seq} ${short(r.value.hash)})`,
      );
    const at = await ctx.db.sql.all('SELECT hash FROM audit_anchor_chain WHERE station_id = ? AND seq = ?', [
      stationId,
      h.seq,
    ]);
    if (at[0]?.['hash'] !== h.hash) problems.push(`head ${h.seq}: not the anchored hash of entry ${h.seq}`);
  }
  return ok({ ...a.value, problems, ok: problems.length === 0 && a.value.findings.length === 0 });
}
