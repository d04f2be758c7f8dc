/**
 * The device lifecycle's ingest hooks (registry/ingest/hooks.ts IngestHooks `precheck` and `apply`): refuse
 * records of blocked / decommissioned devices and revoked stations or operators before they are stored, and
 * create or rotate devices and credentials inside the ingest transaction. Imports core, registry/common and
 * registry/store.
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { normaliseSerial, transition } from '../../core/lifecycle.js';
import { buf } from '../../core/pki/ecdsa.js';
import { fromPem } from '../../core/pki/pem.js';
import { type IngestRecord, type StationRow, type SqlExec } from '../../core/hq/registry-db.js';
import { type RejectReason } from '../../core/hq/protocol.js';
import * as st from '../store/lifecycle.js';
import { now, type LifecycleContext } from '../common/context.js';

/**
 * Checked for the verified records of a batch BEFORE they are stored: a decommissioned or blocked device
 * (DEVICE_DECOMMISSIONED / DEVICE_BLOCKED), a station revoked before the record's completedAt or before its
 * device certificate was issued (STATION_REVOKED), an operator revoked before it (OPERATOR_REVOKED). Returns the refused ones by index.
 */
export async function lifecyclePrecheck(
  ctx: LifecycleContext,
  station: StationRow,
  records: readonly IngestRecord[],
): Promise<Map<number, RejectReason>> {
  const out = new Map<number, RejectReason>();
  if (records.length === 0) return out;
  const x = ctx.db.sql;
  const ops = new Map((await st.revokedOperators(x)).map((o) => [o.operatorId, o.revokedAt]));
  const blocks = await st.activeBlocks(x);
  const serials = new Set(blocks.filter((b) => b.kind === 'serial').map((b) => b.value));
  const chips = new Set(blocks.filter((b) => b.kind === 'chipId').map((b) => b.value));
  // The batch's certificates this station reported as failed issuances: one query for the whole batch.
  const failedSerials = await st.failedIssuanceSerials(
    x,
    station.stationId,
    records.map((r) => recordCertificate(r).serial),
  );
  for (const r of records) {
    if (station.revokedAt && (r.completedAt >= station.revokedAt || issuedSince(r, station.revokedAt))) {
      out.set(r.index, 'STATION_REVOKED');
      continue;
    }
    if (ops.size) {
      const operator = r.parsed?.operator ?? (JSON.parse(r.recordJson) as { operator?: string }).operator;
      const at = operator ? ops.get(operator) : undefined;
      if (at && r.completedAt >= at) {
        out.set(r.index, 'OPERATOR_REVOKED');
        continue;
      }
    }
    if (serials.has(r.serialNumber) || chips.has(r.chipId)) {
      const d = (await st.findDevice(x, r.serialNumber)) ?? (await st.findDevice(x, r.chipId));
      out.set(r.index, d?.state === 'decommissioned' ? 'DEVICE_DECOMMISSIONED' : 'DEVICE_BLOCKED');
      continue;
    }
    // A late record for a certificate this station reported as a failed issuance: the certificate is on the CRL
    // for good (cessationOfOperation), so the record would present a revoked identity as provisioned.
    const certSerial = recordCertificate(r).serial;
    const failed = failedSerials.has(certSerial) ? await st.failedIssuance(x, station.stationId, certSerial) : null;
    if (failed) {
      out.set(r.index, 'certificate-revoked-failed-issuance');
      ctx.logger.log('warn', 'record refused: its certificate was revoked as a failed issuance', {
        stationId: station.stationId,
        recordId: r.recordId,
        certSerial: failed.certSerial,
        failedRunId: failed.runId,
      });
    }
  }
  return out;
}

/** Device certificates are backdated by this much (core/pki/x509.ts SKEW_MS): notBefore + it is the issue time. */
const ISSUE_BACKDATE_MS = 60_000;

/**
 * Whether the record's device certificate was issued at or after `revokedAt` (the station's and its station CA's
 * revocation): a record claiming an earlier completedAt is refused too (a stolen station key backdates records).
 */
function issuedSince(r: IngestRecord, revokedAt: string): boolean {
  const nb = Date.parse(recordCertificate(r).notBefore);
  // X.509 times have whole seconds: a certificate issued in the second of the revocation has notBefore + backdate
  // equal to that second, before the revocation's milliseconds. Such a certificate counts as issued since (refused).
  const revokedSecond = Math.floor(Date.parse(revokedAt) / 1000) * 1000;
  return Number.isFinite(nb) && nb + ISSUE_BACKDATE_MS >= revokedSecond;
}

interface RecordCert {
  readonly serial: string;
  readonly sha256: string;
  readonly pem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** The record's certificate: as ingest's verification read it, or parsed from the stored JSON. */
function recordCertificate(r: IngestRecord): RecordCert {
  if (r.parsed) return { ...r.parsed.certificate, serial: normaliseSerial(r.parsed.certificate.serial) };
  const rec = JSON.parse(r.recordJson) as { certificate: { serialNumber: string; sha256: string; pem: string } };
  const der = fromPem(rec.certificate.pem, 'CERTIFICATE');
  const c = der.ok ? new X509Certificate(buf(der.value)) : null;
  return {
    serial: normaliseSerial(rec.certificate.serialNumber),
    sha256: rec.certificate.sha256,
    pem: rec.certificate.pem,
    notBefore: c?.notBefore.toISOString() ?? '',
    notAfter: c?.notAfter.toISOString() ?? '',
  };
}

/** A lifecycle event waiting to be appended (in order) with the batch's other new devices. */
type NewEvent = Parameters<typeof st.appendEvents>[1][number];

/**
 * Inside the ingest transaction (the `apply` step of RegistryDb.ingest, `x` its connection), for the records
 * newly stored: create the device (provisioned, credential 1) or, for a rotation record (or a new certificate of
 * a known device), append credential n+1, supersede the previous one and move the device to the state
 * `transition(state, 'rotate', 'station')` gives (activated/rotated -> rotated, provisioned stays), each with
 * its event. Idempotent (a credential already known is skipped). Throws on database errors, which rolls the
 * whole batch back (the station gets STORE_UNAVAILABLE and retries). Returns how many records were applied and
 * whether a credential was superseded (then the caller re-signs the station's CRL after the commit).
 */
export async function lifecycleApplyRecords(
  ctx: LifecycleContext,
  x: SqlExec,
  stationId: string,
  records: readonly IngestRecord[],
): Promise<{ applied: number; crlChanged: boolean }> {
  let applied = 0;
  let crlChanged = false;
  // Read once for the batch: the credentials it already holds and its known devices. New devices (the common case)
  // are written together, several rows a statement, in record order; any other record first writes what is
  // pending and then goes the one-record way with fresh reads, so the outcome is the same as record by record.
  const certs = records.map(recordCertificate);
  const known = await st.knownCredentialSerials(
    x,
    stationId,
    certs.map((c) => c.serial),
  );
  const devices = new Map<string, st.DeviceRow>();
  const remember = (d: st.DeviceRow) => {
    devices.set(d.serialNumber, d);
    devices.set(d.chipId, d);
  };
  for (const d of await st.findDevices(
    x,
    records.map((r) => r.serialNumber),
  ))
    remember(d);
  const pending = { devices: [] as st.DeviceRow[], credentials: [] as st.CredentialRow[], events: [] as NewEvent[] };
  const flush = async () => {
    await st.insertDevices(x, pending.devices);
    await st.insertCredentials(x, pending.credentials);
    await st.appendEvents(x, pending.events);
    pending.devices = [];
    pending.credentials = [];
    pending.events = [];
  };
  for (const [i, r] of records.entries()) {
    const cert = certs[i]!;
    const did = await (async (): Promise<'provisioned' | 'reprovisioned' | 'rotated' | null> => {
      if (known.has(cert.serial)) return null;
      const at = now(ctx);
      const cred = (version: number): st.CredentialRow => ({
        serialNumber: r.serialNumber,
        version,
        serial: cert.serial,
        stationId,
        sha256: cert.sha256,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        status: 'active',
        reason: null,
        revokedAt: null,
        certPem: cert.pem,
        csrSha256: null,
        recordId: r.recordId,
        createdAt: at,
      });
      if (!devices.has(r.serialNumber)) {
        const dev: st.DeviceRow = {
          serialNumber: r.serialNumber,
          chipId: r.chipId,
          stationId,
          model: r.model,
          workOrder: r.workOrder,
          state: 'provisioned',
          stateSince: at,
          suspendedAt: null,
          createdAt: at,
        };
        pending.devices.push(dev);
        pending.credentials.push(cred(1));
        pending.events.push({
          ts: at,
          type: 'device.provisioned',
          payload: {
            serialNumber: r.serialNumber,
            chipId: r.chipId,
            stationId,
            recordId: r.recordId,
            credential: 1,
            certSerial: cert.serial,
          },
        });
        remember(dev);
        return 'provisioned';
      }
      await flush();
      const dev = await st.findDevice(x, r.serialNumber);
      if (!dev) throw new Error(`device ${r.serialNumber} vanished during ingest`);
      const history = await st.credentials(x, r.serialNumber);
      const version = history.reduce((m, c) => Math.max(m, c.version), 0) + 1;
      if (dev.state === 'decommissioned') {
        // Released after decommissioning: the board starts a new life (the old credentials stay revoked).
        await st.setDeviceState(x, r.serialNumber, 'provisioned', at, null);
        await st.insertCredential(x, cred(version));
        await st.appendEvent(x, at, 'device.reprovisioned', {
          serialNumber: r.serialNumber,
          stationId,
          recordId: r.recordId,
          credential: version,
          certSerial: cert.serial,
        });
        return 'reprovisioned';
      }
      const t = transition(dev.state, 'rotate', 'station');
      if (!t.ok) {
        await st.appendEvent(x, at, 'record.not-applied', {
          serialNumber: r.serialNumber,
          recordId: r.recordId,
          state: dev.state,
          message: t.error.message,
        });
        return null;
      }
      await st.setCredentialStatus(x, r.serialNumber, ['active'], 'superseded', 'superseded', at);
      await st.insertCredential(x, cred(version));
      // provisioned stays provisioned (state_since unchanged); activated -> rotated; rotated stays rotated.
      if (t.value !== dev.state) await st.setDeviceState(x, r.serialNumber, t.value, at, dev.suspendedAt);
      await st.appendEvent(x, at, 'device.rotated', {
        serialNumber: r.serialNumber,
        stationId,
        recordId: r.recordId,
        kind: r.kind,
        from: dev.state,
        to: t.value,
        credential: version,
        certSerial: cert.serial,
      });
      return 'rotated';
    })();
    if (did) known.add(cert.serial); // its credential is stored now
    if (did) applied++;
    // Only a superseded credential changes what the CRL lists (a new device's certificate is simply good).
    if (did === 'rotated') crlChanged = true;
  }
  await flush();
  await ctx.lifecycle?.failpoint?.('ingest-apply');
  return { applied, crlChanged };
}
