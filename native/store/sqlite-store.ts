/**
 * The Store port on SQLite (core/provisioning/store.ts): runs, issued certificates, signed records and the
 * hash-chained, append-only audit log. Every mutating method is ONE transaction that also appends its audit entry
 * (through the connection's audit writer, audit-writer.ts) and advances the chain head, so a crash or power loss
 * at any instant leaves all of the change or none of it.
 *
 * When a commit is durable (durability.ts, docs/audit.md "Power loss and crashes"): fsynced before the method
 * returns — a rework's erase intent (`zeroizing: true`, the board is erased next), failRun, recordRefusal,
 * appendAudit and createRun of a rotation; committed deferred and made durable by `whenDurable`, which the flow
 * awaits before acting outside (group commit: an fdatasync of the WAL off the event loop, shared by every board
 * waiting) — a checkpoint that logs an issued certificate, and completeRun; deferred (atomic and crash-safe, made
 * durable by the next fsync) — createRun of an initial run and every other checkpoint, whose loss in a power cut
 * is the same as a crash just before them: the flow resumes from the checkpoint before.
 *
 * Store methods are synchronous and return values (the port has no Result): a refusal (e.g. a second active run
 * for a chip, a quota used up) or a database failure throws a `StoreError` with a typed `reason` carrying a
 * STORE_FAILED StationError. The connection is opened by station-db.ts (`openStationDb`); closing the Store
 * closes it.
 *
 * May import: core/, better-sqlite3, the sibling modules of native/store.
 */
import type Database from 'better-sqlite3';
import {
  failedIssuancePayloadJson,
  failedIssuanceRequestId,
  FAILED_ISSUANCE_REASON,
} from '../../core/failed-issuance.js';
import type { Clock, Logger } from '../../core/ports.js';
import type { FailedRun, FirstCheckpoint, NewRun, Store } from '../../core/provisioning/store.js';
import { sha256HexSync, type AuditWriter } from './audit-writer.js';
import { verifyAll } from './audit-verify.js';
import type { Durability } from './durability.js';
import type { RevocationQueue } from './revocations.js';
import type { RefusalWriter } from './refusals.js';
import {
  REWORK_REVOCATION_REASON,
  reworkRevocationPayloadJson,
  reworkRevocationRequestId,
} from '../../core/hq/rework.js';
import { sqliteCode, sqliteRefusal, StoreError, wrapStoreError, parseStoredJson } from './store-error.js';
import {
  checkPaging,
  MAX_AUDIT_PAGE,
  MAX_PAGE,
  RECORD_COLS,
  recordFilter,
  storeStatements,
  toAudit,
  toCert,
  toRecord,
  toRun,
  type AuditDbRow,
  type CertDbRow,
  type RecordDbRow,
  type RunDbRow,
} from './store-rows.js';
import type { RunData } from '../../core/provisioning/store.js';

/** Runs whose parsed data a connection keeps (a station provisions at most a few dozen boards at once). */
const RUN_DATA_CACHE = 256;

/** The Store port of the station database, with its file path and an integrity check. */
export type SqliteStore = Store & {
  readonly path: string;
  /** Rows of PRAGMA integrity_check (['ok'] when healthy). */
  integrityCheck(): string[];
};

/**
 * The Store port over an open, migrated connection. `audit` and `revocations` are the connection's writers of the
 * audit chain and the revocation queue (the Store appends and queues through them, inside its transactions).
 */
export function createSqliteStore(
  db: Database.Database,
  file: string,
  o: {
    clock: Clock;
    logger: Logger | undefined;
    audit: AuditWriter;
    revocations: RevocationQueue;
    refusals: RefusalWriter;
    durability: Durability;
  },
): SqliteStore {
  const { clock, logger, audit, revocations, refusals, durability } = o;
  const now = (): string => clock.now().toISOString();

  const st = storeStatements(db);

  const append = audit.append;

  /**
   * Insert a new active run. The schema refuses it two ways, told apart by SQLite result code at this statement:
   * the runs_quota_check trigger (the only trigger that refuses an insert into runs: 'quota-exhausted', the race
   * for a work order's last unit) and the one-active-run-per-chip index ('active-run-exists').
   */
  function insertRun(run: NewRun, dataJson: string, t: string): void {
    try {
      st.insertRun.run(
        run.runId,
        run.chipId,
        run.serialNumber,
        run.port,
        run.workOrder,
        run.operator,
        run.stationId,
        run.kind,
        run.supersedesRecordId,
        dataJson,
        run.startedAt,
        t,
      );
    } catch (e) {
      const code = sqliteCode(e);
      if (code === 'SQLITE_CONSTRAINT_TRIGGER') throw sqliteRefusal('quota-exhausted', e, 'createRun');
      if (code === 'SQLITE_CONSTRAINT_UNIQUE')
        throw new StoreError(
          'active-run-exists',
          'createRun: the chip already has an active run',
          { op: 'createRun' },
          { cause: e },
        );
      throw e;
    }
  }

  /**
   * The parsed data of the runs this connection wrote or read last, by run id, with the exact data_json it was
   * parsed from: a run's next checkpoint parses its data only if the row changed meanwhile (another connection).
   * At most RUN_DATA_CACHE runs (cleared when full).
   */
  const runData = new Map<string, { readonly json: string; readonly data: RunData }>();
  function remember(runId: string, json: string, data: RunData): void {
    if (runData.size >= RUN_DATA_CACHE) runData.clear();
    runData.set(runId, { json, data });
  }
  function dataOf(row: RunDbRow): RunData {
    const c = runData.get(row.run_id);
    if (c && c.json === row.data_json) return c.data;
    const data = parseStoredJson<RunData>(row.data_json, `data of run ${row.run_id}`);
    remember(row.run_id, row.data_json, data);
    return data;
  }

  function mustGetActiveRun(runId: string, op: string): RunDbRow {
    const row = st.getRun.get(runId) as RunDbRow | undefined;
    if (!row) throw new StoreError('run-not-found', `${op}: no run ${runId}`, { runId });
    if (row.state !== 'active') {
      throw new StoreError('run-not-active', `${op}: run ${runId} is ${row.state}`, { runId, state: row.state });
    }
    return row;
  }

  /**
   * Run `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks); its commit is
   * fsynced (`durable`) or deferred (durability.ts).
   */
  function tx<T>(op: string, fn: () => T, durable = true): T {
    try {
      const run = () => db.transaction(fn).immediate();
      return durable ? run() : durability.deferred(run);
    } catch (e) {
      const se = wrapStoreError(e, op);
      logger?.log('error', 'store operation failed', { op, reason: se.reason, message: se.message });
      throw se;
    }
  }

  function read<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw wrapStoreError(e, op);
    }
  }

  /**
   * A rework (rotation run) that started erasing its board (`zeroizing`, committed durably before the board is
   * touched, or `zeroized`) and fails for good may have left the board without the credential of the record it was to
   * supersede, which headquarters still shows active: its revocation (a scrap event, core/hq/rework.ts) is queued
   * here, in failRun's transaction, once per run and once per certificate (none when a scrap event of that
   * certificate is queued already), and audited `cert.rework-revocation` before `run.failed`. Only a run whose
   * board was read back still holding the old certificate after a refused zeroize (`zeroizing: false`) queues
   * nothing. The station key signs the payload afterwards (station/lifecycle).
   */
  function queueReworkRevocation(
    run: RunDbRow,
    e: { code: string; message: string; step: string },
    at: string,
  ): FailedRun['reworkRevocation'] {
    if (run.kind !== 'rotation' || run.supersedes_record_id === null) return null;
    const data = parseStoredJson<RunData>(run.data_json, `data of run ${run.run_id}`);
    if (data['zeroized'] !== true && data['zeroizing'] !== true) return null;
    const prev = st.getRecord.get(run.supersedes_record_id) as RecordDbRow | undefined;
    if (!prev) throw new StoreError('corrupt', `run ${run.run_id} supersedes a record that does not exist`);
    const prevCert = parseStoredJson<{ certificate?: { sha256?: unknown } }>(prev.record_json, 'record json');
    const requestId = reworkRevocationRequestId(run.run_id);
    const supervisor = typeof data['supervisor'] === 'string' && data['supervisor'] ? data['supervisor'] : run.operator;
    const payloadJson = reworkRevocationPayloadJson({
      runId: run.run_id,
      stationId: run.station_id,
      chipId: run.chip_id,
      serialNumber: run.serial_number,
      recordId: prev.record_id,
      certificateSerial: prev.certificate_serial,
      certificateSha256: typeof prevCert.certificate?.sha256 === 'string' ? prevCert.certificate.sha256 : null,
      failure: e,
      supervisor,
      operator: run.operator,
      failedAt: at,
    });
    const queued = revocations.queueReworkRevocation({
      requestId,
      chipId: run.chip_id,
      serialNumber: run.serial_number,
      certificateSerial: prev.certificate_serial,
      reason: REWORK_REVOCATION_REASON,
      runId: run.run_id,
      payloadJson,
      at,
    });
    if (!queued) return null;
    append(
      'cert.rework-revocation',
      {
        requestId,
        recordId: prev.record_id,
        certificateSerial: prev.certificate_serial,
        chipId: run.chip_id,
        code: e.code,
        step: e.step,
        supervisor,
        payloadSha256: sha256HexSync(payloadJson),
      },
      run.run_id,
    );
    return { requestId, certificateSerial: prev.certificate_serial };
  }

  const store: SqliteStore = {
    path: file,

    findCurrentRecord(chipId) {
      return read('findCurrentRecord', () => {
        const r = st.currentRecord.get(chipId) as RecordDbRow | undefined;
        return r ? toRecord(r) : null;
      });
    },

    findActiveRun(chipId) {
      return read('findActiveRun', () => {
        const r = st.activeRun.get(chipId) as RunDbRow | undefined;
        return r ? toRun(r) : null;
      });
    },

    getRun(runId) {
      return read('getRun', () => {
        const r = st.getRun.get(runId) as RunDbRow | undefined;
        return r ? toRun(r) : null;
      });
    },

    createRun(run: NewRun, identify?: FirstCheckpoint) {
      return tx(
        'createRun',
        () => {
          const active = st.activeRun.get(run.chipId) as RunDbRow | undefined;
          if (active) {
            throw new StoreError('active-run-exists', `chip ${run.chipId} already has an active run ${active.run_id}`, {
              chipId: run.chipId,
              activeRunId: active.run_id,
            });
          }
          if ((run.kind === 'rotation') !== (run.supersedesRecordId !== null)) {
            throw new StoreError('invalid-argument', 'a rotation run (and only a rotation run) supersedes a record', {
              runId: run.runId,
              kind: run.kind,
            });
          }
          // The identify checkpoint's data is the run's first (what checkpoint() would store over '{}').
          const dataJson = identify ? JSON.stringify({ ...identify.patch }) : '{}';
          insertRun(run, dataJson, now());
          append(
            'run.started',
            {
              chipId: run.chipId,
              serialNumber: run.serialNumber,
              port: run.port,
              workOrder: run.workOrder,
              operator: run.operator,
              stationId: run.stationId,
              kind: run.kind,
              supersedesRecordId: run.supersedesRecordId,
            },
            run.runId,
          );
          if (identify) append('step.identify', identify.audit, run.runId);
          const row = st.getRun.get(run.runId) as RunDbRow;
          const data = parseStoredJson<RunData>(row.data_json, `data of run ${run.runId}`);
          remember(run.runId, row.data_json, data);
          return toRun(row, data);
          // A rotation erases the board's identity right after: its run must survive a power loss first.
        },
        run.kind === 'rotation',
      );
    },

    checkpoint(runId, step, patch, audit, issued) {
      return tx(
        'checkpoint',
        () => {
          const row = mustGetActiveRun(runId, 'checkpoint');
          if (issued) {
            if (issued.runId !== runId || issued.chipId !== row.chip_id) {
              throw new StoreError('invalid-argument', 'issued certificate belongs to another run or chip', {
                runId,
                certificateRunId: issued.runId,
                certificateChipId: issued.chipId,
              });
            }
            const digest = sha256HexSync(issued.der);
            if (digest !== issued.sha256.toLowerCase()) {
              throw new StoreError('invalid-argument', 'issued certificate sha256 does not match its DER', {
                serialNumber: issued.serialNumber,
              });
            }
            st.insertCert.run(
              issued.serialNumber,
              digest,
              issued.chipId,
              runId,
              Buffer.from(issued.der),
              issued.notBefore,
              issued.notAfter,
              issued.issuedAt,
            );
            append(
              'cert.issued',
              {
                serialNumber: issued.serialNumber,
                sha256: digest,
                chipId: issued.chipId,
                notBefore: issued.notBefore,
                notAfter: issued.notAfter,
                issuedAt: issued.issuedAt,
              },
              runId,
            );
          }
          const dataJson = JSON.stringify({ ...dataOf(row), ...patch });
          const updatedAt = now();
          st.updateRunStep.run(step, dataJson, updatedAt, runId);
          append(`step.${step}`, audit, runId);
          // The row as written (what reading it back returns), its data parsed from the very JSON stored.
          const data = parseStoredJson<RunData>(dataJson, `data of run ${runId}`);
          remember(runId, dataJson, data);
          return toRun({ ...row, step, data_json: dataJson, updated_at: updatedAt }, data);
          // The certificate is written to the board next: logged (and so revocable) on disk first — the flow awaits
          // whenDurable before it writes it. A rework's erase intent (`zeroizing`) is fsynced here: the board is
          // erased next, and a failed rework revokes by it.
        },
        patch['zeroizing'] === true,
      );
    },

    completeRun(runId, record) {
      // Deferred: the flow awaits whenDurable before it reports PASS, prints or syncs the record.
      return tx(
        'completeRun',
        () => {
          const run = mustGetActiveRun(runId, 'completeRun');
          const mismatch: string[] = [];
          if (record.runId !== runId) mismatch.push('runId');
          if (record.chipId !== run.chip_id) mismatch.push('chipId');
          if (record.kind !== run.kind) mismatch.push('kind');
          if (record.supersedesRecordId !== run.supersedes_record_id) mismatch.push('supersedesRecordId');
          if (sha256HexSync(record.recordJson) !== record.recordSha256) mismatch.push('recordSha256');
          if (mismatch.length) {
            throw new StoreError('invalid-argument', `record does not match run ${runId}: ${mismatch.join(', ')}`, {
              runId,
              fields: mismatch,
            });
          }
          if (record.supersedesRecordId !== null) {
            const prev = st.supersedable.get(record.supersedesRecordId) as
              { chip_id: string; superseded_by: string | null } | undefined;
            if (!prev || prev.chip_id !== record.chipId || prev.superseded_by !== null) {
              throw new StoreError(
                'supersede-failed',
                `record ${record.supersedesRecordId} cannot be superseded (${!prev ? 'missing' : prev.chip_id !== record.chipId ? 'another chip' : `already superseded by ${prev.superseded_by}`})`,
                { recordId: record.recordId, supersedesRecordId: record.supersedesRecordId },
              );
            }
          }
          const createdAt = record.createdAt ?? now();
          const entry = append(
            'record.committed',
            {
              recordId: record.recordId,
              recordSha256: record.recordSha256,
              certificateSerial: record.certificateSerial,
              chipId: record.chipId,
              serialNumber: record.serialNumber,
              workOrder: record.workOrder,
              kind: record.kind,
              supersedesRecordId: record.supersedesRecordId,
            },
            runId,
          );
          st.insertRecord.run(
            record.recordId,
            runId,
            record.chipId,
            record.serialNumber,
            record.workOrder,
            record.operator,
            record.kind,
            record.supersedesRecordId,
            record.outcome,
            record.certificateSerial,
            createdAt,
            record.recordJson,
            record.jws,
            record.recordSha256,
            entry.seq,
          );
          if (record.supersedesRecordId !== null) {
            const changed = st.supersede.run(record.recordId, record.supersedesRecordId, record.chipId).changes;
            if (changed !== 1) {
              throw new StoreError(
                'supersede-failed',
                `record ${record.supersedesRecordId} cannot be superseded (missing, of another chip, or already superseded)`,
                { recordId: record.recordId, supersedesRecordId: record.supersedesRecordId },
              );
            }
          }
          st.finishRun.run(now(), runId);
          return toRecord(st.getRecord.get(record.recordId) as RecordDbRow);
        },
        false,
      );
    },

    whenDurable() {
      return durability.whenDurable().catch((e: unknown) => {
        const se = wrapStoreError(e, 'whenDurable');
        logger?.log('error', 'store operation failed', { op: 'whenDurable', reason: se.reason, message: se.message });
        throw se;
      });
    },

    failRun(runId, error) {
      return tx('failRun', () => {
        const run = mustGetActiveRun(runId, 'failRun');
        const e = { code: error.code, message: error.message, step: error.step };
        const failedAt = now();
        // Every certificate of this run that no record holds is revoked at once: its failed-issuance event (the
        // exact payload the station key signs, station/lifecycle) is queued in THIS transaction, before the run is
        // marked failed (a trigger refuses the state change otherwise).
        for (const c of st.unrecordedCerts.all(runId) as CertDbRow[]) {
          const requestId = failedIssuanceRequestId(c.serial);
          const payloadJson = failedIssuancePayloadJson({
            stationId: run.station_id,
            runId,
            chipId: run.chip_id,
            serialNumber: run.serial_number,
            workOrder: run.work_order,
            certificateSerial: c.serial,
            certificateSha256: c.sha256,
            certificate: c.der.toString('base64url'),
            failure: e,
            issuedAt: c.issued_at,
            failedAt,
          });
          revocations.queueFailedIssuance({
            requestId,
            chipId: run.chip_id,
            serialNumber: run.serial_number,
            certificateSerial: c.serial,
            reason: FAILED_ISSUANCE_REASON,
            runId,
            payloadJson,
            at: failedAt,
          });
          append(
            'cert.failed-issuance',
            {
              requestId,
              certificateSerial: c.serial,
              sha256: c.sha256,
              chipId: run.chip_id,
              code: e.code,
              step: e.step,
              payloadSha256: sha256HexSync(payloadJson),
            },
            runId,
          );
        }
        const reworkRevocation = queueReworkRevocation(run, e, failedAt);
        // The run's error keeps the code's params (the Log view says the code's text with them); `e` is signed as is.
        st.failRun.run(JSON.stringify(error.params ? { ...e, params: error.params } : e), failedAt, runId);
        append('run.failed', e, runId);
        return { reworkRevocation };
      });
    },

    recordRefusal(r) {
      return tx('recordRefusal', () => refusals.record(r, now()));
    },

    listRecords(q = {}) {
      return read('listRecords', () => {
        const limit = checkPaging(q.limit, 100, MAX_PAGE, 'limit');
        const offset = checkPaging(q.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
        const { where, params } = recordFilter(q);
        const rows = db
          .prepare(`SELECT ${RECORD_COLS} FROM records ${where} ORDER BY created_at DESC, record_id LIMIT ? OFFSET ?`)
          .all(...params, limit, offset) as RecordDbRow[];
        return rows.map(toRecord);
      });
    },

    countRecords(q = {}) {
      return read('countRecords', () => {
        const { where, params } = recordFilter(q);
        return (db.prepare(`SELECT COUNT(*) AS n FROM records ${where}`).get(...params) as { n: number }).n;
      });
    },

    listIssuedCertificates(chipId) {
      return read('listIssuedCertificates', () =>
        ((chipId === undefined ? st.certsAll.all() : st.certsChip.all(chipId)) as CertDbRow[]).map(toCert),
      );
    },

    appendAudit(type, payload, runId = null) {
      if (!/^[a-z][a-z0-9_.-]{0,63}$/i.test(type)) {
        throw new StoreError('invalid-argument', `invalid audit entry type ${JSON.stringify(type)}`, { type });
      }
      return tx('appendAudit', () => append(type, payload, runId));
    },

    listAudit(fromSeq = 1, limit = 1000) {
      return read('listAudit', () => {
        const from = checkPaging(fromSeq, 1, Number.MAX_SAFE_INTEGER, 'fromSeq');
        const n = checkPaging(limit, 1000, MAX_AUDIT_PAGE, 'limit');
        return (st.listAudit.all(from, n) as AuditDbRow[]).map(toAudit);
      });
    },

    verifyAudit() {
      return read('verifyAudit', () => db.transaction(() => verifyAll(db))());
    },

    integrityCheck() {
      return read('integrityCheck', () =>
        (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check),
      );
    },

    close() {
      durability.close();
      if (db.open) db.close();
    },
  };
  return store;
}
