/**
 * Scrapping a board at the station (docs/lifecycle.md "Scrap"): a run in flight for it is failed (its certificate
 * takes the failed-issuance path), its committed unit is marked scrapped (it stays used), and a scrap event signed
 * with the station key (core/hq/scrap.ts) is queued for revocation at the registry; audited `board.scrapped`.
 *
 * May import: core/ (hq scrap, pki jws, canonical, bytes, result), native/store/lifecycle.ts (types),
 * station/lifecycle/context.ts.
 */
import { randomUUID } from 'node:crypto';
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { ok, type Result } from '../../core/result.js';
import { SCRAP_SCHEMA, SCRAP_TYP, type ScrapPayload } from '../../core/hq/scrap.js';
import type { RevocationRequest } from '../../native/store/lifecycle.js';
import type { LifecycleContext } from './context.js';

export interface ScrapRequest {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly reason: string;
  readonly supervisor: string;
  readonly operator: string;
}

/**
 * Scrap a board: the queued revocation request, or null when the station has no record of the board (nothing to
 * revoke). `signFailedIssuances` signs the failed-issuance event of a run it ended.
 */
export async function scrapBoard(
  c: LifecycleContext,
  signFailedIssuances: () => Promise<Result<number>>,
  p: ScrapRequest,
): Promise<Result<RevocationRequest | null>> {
  const { db, store } = c;
  // A run in flight for the board ends here without a record: failRun queues the failed-issuance event of a
  // certificate it holds (same transaction), signed and sent below / by the next sync.
  const active = store.findActiveRun(p.chipId);
  if (active) {
    store.failRun(active.runId, {
      code: 'FLOW_RUN_ABANDONED',
      message: `board scrapped by supervisor ${p.supervisor}: ${p.reason}`.slice(0, 512),
      step: active.step,
    });
    await signFailedIssuances();
  }
  const units = db.markScrapped(p.chipId);
  const rec = store.findCurrentRecord(p.chipId);
  if (!rec) {
    store.appendAudit('board.scrapped', { ...p, certificateSerial: null, units });
    return ok(null);
  }
  // A failed rework of this board already queued the revocation of this certificate (failRun): not twice.
  const queued = db
    .revocations({ kind: 'scrapped' })
    .find((q) => q.certificateSerial === rec.certificateSerial && q.chipId === p.chipId);
  if (queued) {
    store.appendAudit('board.scrapped', {
      ...p,
      recordId: rec.recordId,
      certificateSerial: rec.certificateSerial,
      revocationRequest: queued.requestId,
      units,
    });
    return ok(queued);
  }
  const parsed = JSON.parse(rec.recordJson) as { certificate?: { sha256?: string } };
  const requestId = randomUUID();
  const payload: ScrapPayload = {
    schema: SCRAP_SCHEMA,
    requestId,
    stationId: c.stationId,
    chipId: p.chipId,
    serialNumber: p.serialNumber,
    recordId: rec.recordId,
    certificateSerial: rec.certificateSerial,
    certificateSha256: parsed.certificate?.sha256 ?? null,
    reason: 'cessationOfOperation',
    note: p.reason,
    supervisor: p.supervisor,
    operator: p.operator,
    scrappedAt: c.clock.now().toISOString(),
  };
  const jws = await signJws({
    signer: c.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: SCRAP_TYP, kid: c.stationId, x5c: c.chain },
  });
  if (!jws.ok) return jws;
  const req = db.queueRevocation({
    requestId,
    kind: 'scrapped',
    chipId: p.chipId,
    serialNumber: p.serialNumber,
    certificateSerial: rec.certificateSerial,
    reason: 'cessationOfOperation',
    recordId: null,
    jws: jws.value,
  });
  store.appendAudit('board.scrapped', {
    ...p,
    recordId: rec.recordId,
    certificateSerial: rec.certificateSerial,
    revocationRequest: requestId,
    scrapEventSha256: await sha256Hex(utf8(jws.value)),
    units,
  });
  c.log.log('info', 'scrap queued for revocation at the registry', { chipId: p.chipId, requestId });
  return ok(req);
}
