/**
 * Test support (never imported by production code): the issuance invariant of docs/lifecycle.md "Failed issuance".
 *
 * Every row of `issued_certificates` in a station database is
 *   (a) the certificate of a committed record (records.certificate_serial, same SHA-256 in the signed record), or
 *   (b) revoked: locally a queued failed-issuance event whose payload names exactly this certificate (signed or
 *       awaiting its signature; a signature present must be over that payload), and — once synced — on the
 *       registry's CRL for the station, fetched over HTTP and read with `openssl crl -inform DER -text` (an
 *       independent parser), its signature checked with `openssl crl -CAfile` against the delegated revocation
 *       signer certificates the station issued (its `revocation-signer.issued` audit entries), or
 *   (c) the certificate of a run that is still ACTIVE (resumable: a power loss or a disconnect leaves the run active
 *       and plugging the board in again continues it with the same certificate). This is the one documented
 *       exception: such a certificate is in neither a record nor a CRL until the run ends (record or failRun).
 * And every record is in the audit chain: the chain verifies (hash links, head) and each record has its
 * `record.committed` entry with the same record SHA-256 and certificate serial.
 *
 * The station database is opened READ-ONLY (better-sqlite3 `readonly`), so a checker never changes what it checks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../native/store/index.js';
import { readIssuanceSnapshot, type SnapshotRecord } from './issuance-snapshot.js';

export interface IssuanceInvariantReport {
  readonly certificates: number;
  readonly inRecord: number;
  /** Certificates of failed runs with their failed-issuance event queued locally. */
  readonly failedIssuance: number;
  /** ... of which the event is signed. */
  readonly signed: number;
  /** ... and which the registry CRL lists (only when a registry was given). */
  readonly onCrl: number;
  readonly activeRun: number;
  /** Serials (lower-case hex, no leading zeros) the CRL lists. Empty without a registry. */
  readonly crlSerials: ReadonlySet<string>;
  readonly violations: readonly string[];
}

export interface IssuanceInvariantOptions {
  /** The station database (station.db). */
  readonly dbFile: string;
  /**
   * Also require the signed record to name the logged certificate's SHA-256 (default true). Only fixtures whose
   * signed records share device certificates (test/integration/sync-fixture.ts) turn it off.
   */
  readonly recordNamesCertificate?: boolean;
  /**
   * A running registry: its CRL for `stationId` is fetched and every failed issuance must be on it. Give it only
   * after a sync that had the chance to deliver the events (`requireOnCrl`, default true); with `requireOnCrl:
   * false` the CRL is only read (reported in `onCrl`).
   */
  readonly registry?: {
    readonly url: string;
    readonly stationId: string;
    /**
     * Certificates (PEM) that may have signed the CRL, besides the revocation signer certificates the station itself
     * issued (its `revocation-signer.issued` audit entries, read from station.db): the CRL must verify with one.
     */
    readonly extraSignerPems?: readonly string[];
    readonly requireOnCrl?: boolean;
  };
}

const norm = (hex: string): string => hex.toLowerCase().replace(/^0+/, '') || '0';

/**
 * Serial numbers (normalised hex) listed by a DER CRL, read with `openssl crl -text`; the CRL's signature must verify
 * (`openssl crl -CAfile`) with one of `signerPems` (each tried alone: the delegated revocation signer certificates).
 */
export function crlSerialsWithOpenssl(der: Uint8Array, signerPems: readonly string[]): Set<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ls-inv-crl-'));
  try {
    writeFileSync(join(dir, 'crl.der'), der);
    const text = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    // OpenSSL 3 prints "verify OK" / "verify failure" on stderr and exits 0 either way: read what it says.
    const answers = signerPems.map((pem, i) => {
      writeFileSync(join(dir, `signer-${i}.pem`), pem);
      const v = spawnSync(
        'openssl',
        ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-CAfile', join(dir, `signer-${i}.pem`)],
        { encoding: 'utf8' },
      );
      return v.status === 0 && /^verify OK$/m.test(`${v.stdout}${v.stderr}`)
        ? null
        : `${v.stdout}${v.stderr}`.trim() || `exit ${v.status}`;
    });
    if (!answers.includes(null))
      throw new Error(`openssl crl -CAfile: ${answers.join('; ') || 'no signer certificate to check with'}`);
    const serials = new Set<string>();
    for (const m of text.matchAll(/Serial Number:\s*([0-9A-Fa-f]+)/g)) serials.add(norm(m[1]!));
    return serials;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fetch `GET /v1/crl/<stationId>.crl` (DER). */
export async function fetchCrl(url: string, stationId: string): Promise<Uint8Array> {
  const res = await fetch(`${url.replace(/\/+$/, '')}/v1/crl/${stationId}.crl`);
  if (res.status !== 200) throw new Error(`GET CRL of ${stationId}: HTTP ${res.status} ${await res.text()}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Check the invariant; `violations` lists every breach (empty: it holds). Never throws for a breach. */
export async function checkIssuanceInvariant(o: IssuanceInvariantOptions): Promise<IssuanceInvariantReport> {
  const violations: string[] = [];
  let crlSerials = new Set<string>();
  const snap = readIssuanceSnapshot(o.dbFile);
  if (o.registry) {
    const der = await fetchCrl(o.registry.url, o.registry.stationId);
    try {
      crlSerials = crlSerialsWithOpenssl(der, [...snap.revocationSignerPems, ...(o.registry.extraSignerPems ?? [])]);
    } catch (e) {
      violations.push(
        `the registry CRL does not verify with a revocation signer this station certified: ${(e as Error).message}`,
      );
    }
  }

  const certs = snap.certificates;
  const records = snap.records;
  const requests = snap.failedIssuances;

  // Every record is in the audit chain (chain and head verified by the store, read-only; entries cross-checked here).
  const store = openStore(o.dbFile, { readonly: true });
  if (!store.ok) violations.push(`cannot open the station database read-only: ${store.error.message}`);
  else {
    try {
      const v = store.value.verifyAudit();
      if (!v.ok) violations.push(`audit chain: ${v.reason} at ${v.at}: ${v.message}`);
    } finally {
      store.value.close();
    }
  }
  const recordBySerial = new Map<string, SnapshotRecord>();
  for (const r of records) {
    recordBySerial.set(r.certificate_serial, r);
    if (r.a_type !== 'record.committed' || r.a_payload === null) {
      violations.push(`record ${r.record_id} has no record.committed audit entry (seq ${r.audit_seq})`);
      continue;
    }
    const p = JSON.parse(r.a_payload) as { recordId?: string; recordSha256?: string; certificateSerial?: string };
    if (
      p.recordId !== r.record_id ||
      p.recordSha256 !== r.record_sha256 ||
      p.certificateSerial !== r.certificate_serial
    )
      violations.push(`record ${r.record_id} differs from its audit entry ${r.audit_seq}`);
    if (createHash('sha256').update(r.record_json, 'utf8').digest('hex') !== r.record_sha256)
      violations.push(`record ${r.record_id}: record_json does not hash to record_sha256`);
  }
  const requestBySerial = new Map(requests.map((q) => [q.certificate_serial, q]));

  let inRecord = 0;
  let failedIssuance = 0;
  let signed = 0;
  let onCrl = 0;
  let activeRun = 0;
  for (const c of certs) {
    const rec = recordBySerial.get(c.serial);
    if (rec) {
      const certSha = (JSON.parse(rec.record_json) as { certificate?: { sha256?: string } }).certificate?.sha256;
      if (o.recordNamesCertificate !== false && certSha !== c.sha256)
        violations.push(`certificate ${c.serial}: record ${rec.record_id} names another certificate (${certSha})`);
      else inRecord++;
      continue;
    }
    const q = requestBySerial.get(c.serial);
    if (q) {
      const p = q.payload_json
        ? (JSON.parse(q.payload_json) as { certificateSha256?: string; certificate?: string; runId?: string })
        : null;
      const derOk = p?.certificate !== undefined && Buffer.from(p.certificate, 'base64url').equals(c.der);
      if (!p || p.certificateSha256 !== c.sha256 || !derOk || p.runId !== c.run_id) {
        violations.push(`certificate ${c.serial}: its failed-issuance event does not carry this certificate`);
        continue;
      }
      if (q.jws !== null) {
        const payload = Buffer.from(q.jws.split('.')[1] ?? '', 'base64url').toString('utf8');
        if (payload !== q.payload_json) {
          violations.push(`certificate ${c.serial}: the signed failed-issuance event is not over the queued payload`);
          continue;
        }
        signed++;
      }
      failedIssuance++;
      if (o.registry) {
        if (crlSerials.has(norm(c.serial))) onCrl++;
        else if (o.registry.requireOnCrl !== false)
          violations.push(`certificate ${c.serial} (failed run ${c.run_id}) is not on the registry CRL`);
      }
      continue;
    }
    if (c.run_state === 'active') {
      activeRun++;
      continue;
    }
    violations.push(
      `certificate ${c.serial} of ${c.run_state ?? 'unknown'} run ${c.run_id} is in no record, has no failed-issuance event and its run is not active`,
    );
  }
  return {
    certificates: certs.length,
    inRecord,
    failedIssuance,
    signed,
    onCrl,
    activeRun,
    crlSerials,
    violations,
  };
}

/** Throw with every violation (for tests): the invariant must hold. */
export async function assertIssuanceInvariant(o: IssuanceInvariantOptions): Promise<IssuanceInvariantReport> {
  const r = await checkIssuanceInvariant(o);
  if (r.violations.length) throw new Error(`issuance invariant broken:\n  ${r.violations.join('\n  ')}`);
  return r;
}
