/**
 * `registry` command line: init, serve, enroll-station, revoke-station, import, stats, device, records, and the
 * identity lifecycle subcommands (registry/lifecycle/cli.ts).
 *
 * Exit codes: 0 success; 1 refused (a rejected bundle, an unknown device/station); 2 usage error;
 * 3 registry not ready (configuration, HSM, database); 70 internal error.
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fail, type StationError } from '../core/errors.js';
import { systemClock, type Logger, type Signer } from '../core/ports.js';
import { openRegistryDb } from '../native/registry-store/index.js';
import { createLogger } from '../native/logger.js';
import type { RegistryDb } from '../core/hq/registry-db.js';
import { checkRegistryDataDir, initRegistry, openRegistryKeys, readRegistryConfig, type RegistryKeys } from './keys.js';
import {
  LIFECYCLE_COMMANDS,
  LIFECYCLE_OPTIONS,
  LIFECYCLE_USAGE,
  lifecycleNeedsHsm,
  lifecycleSettings,
  removeServeFile,
  runLifecycleCommand,
  writeServeFile,
} from './lifecycle/cli.js';
import { noteStationRevoked } from './lifecycle/service.js';
import { MAX_BUNDLE_BYTES } from '../core/hq/protocol.js';
import { startRegistry } from './server.js';
import {
  enrollStation,
  getDevice,
  importBundle,
  listStations,
  queryRecords,
  revokeStation,
  stats,
  type ApiError,
  type RegistryContext,
} from './service.js';
import { writeFileAtomic } from '../native/atomic-file.js';
import { preparePrivateDir, restrictUmask } from '../native/data-dir.js';
import { escapeControlChars } from '../core/display-text.js';
import { verifyStationAudit } from './audit-anchor.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, notReady: 3, internal: 70 } as const;

const USAGE = `usage: registry <command> [options]

commands:
  init            --data-dir D [--registry-id ID] [--db URL]
  serve           --data-dir D [--port N] [--host H] [--db URL]
  enroll-station  --id S --chain station-chain.pem [--work-orders W1,W2]
  revoke-station  S
  import          FILE [--out receipt.jws] [--allow-revoked-station]
  stations        [--json]
  stats           [--json]
  device          SERIAL_OR_CHIP_ID [--json]
  verify-station  S [--json]         (audit heads anchored for station S, and any rewritten/forked history;
                                      exit 1 when there is a finding)
  records         [--json] [--station S] [--work-order W] [--from ISO] [--to ISO] [--limit N] [--cursor C]

${LIFECYCLE_USAGE}
common: --data-dir (default $LINE_STATION_REGISTRY_DATA_DIR or ./.data/registry), --db URL (sqlite:<path> or
postgres://...; default from config.json), --verbose
`;

const OPTIONS = {
  'data-dir': { type: 'string' },
  db: { type: 'string' },
  'registry-id': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  id: { type: 'string' },
  chain: { type: 'string' },
  'work-orders': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  station: { type: 'string' },
  'work-order': { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'allow-revoked-station': { type: 'boolean' },
  ...LIFECYCLE_OPTIONS,
} as const;

type Out = { log: (s: string) => void; err: (s: string) => void };
const stdio: Out = { log: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

function report(out: Out, e: StationError): number {
  out.err(`error ${e.code}: ${e.message}`);
  return e.code.startsWith('CONFIG_') || e.code.startsWith('HSM_') || e.code === 'STORE_FAILED'
    ? EXIT.notReady
    : e.kind === 'bug'
      ? EXIT.internal
      : EXIT.refused;
}

function reportApi(out: Out, e: ApiError): number {
  out.err(`error ${e.code}: ${e.message}`);
  return e.code === 'STORE_UNAVAILABLE' ? EXIT.notReady : e.code === 'INTERNAL' ? EXIT.internal : EXIT.refused;
}

/** A signer for commands that never sign (enrol, queries): any use is a bug. */
const noSigner: Signer = {
  algorithm: 'ES256',
  curve: 'P-256',
  publicKeySpki: new Uint8Array(0),
  sign: async () => fail('INTERNAL', 'this command does not open the registry key'),
};

/** Run the registry CLI; returns the exit code (`serve` resolves when the server stops on SIGINT/SIGTERM). */
export async function main(argv: readonly string[], raw: Out = stdio): Promise<number> {
  // Private files from the first write; printed text (device serials, models, ...) with control and bidi
  // characters made visible (docs/architecture.md "Data directory permissions", core/display-text.ts).
  restrictUmask();
  const out: Out = {
    log: (s) => raw.log(escapeControlChars(s, { keepLineBreaks: true })),
    err: (s) => raw.err(escapeControlChars(s, { keepLineBreaks: true })),
  };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    out.err(`${(e as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { values: v, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  if (v.help || !cmd) {
    out.log(USAGE);
    return cmd || v.help ? EXIT.ok : EXIT.usage;
  }
  if (((v.as ?? 'admin') !== 'admin' || v['token-file'] !== undefined) && !LIFECYCLE_COMMANDS.has(cmd)) {
    // Only the lifecycle commands act as another role; the others are the data dir's admin.
    out.err(`error AUTH_FORBIDDEN: ${cmd} is admin-only (--as / --token-file are for the lifecycle commands)`);
    return EXIT.refused;
  }
  const given = resolve(v['data-dir'] ?? process.env['LINE_STATION_REGISTRY_DATA_DIR'] ?? '.data/registry');
  // A demo data dir holds the station at its top and the local registry under registry/: accept either.
  const dataDir =
    cmd !== 'init' && !readRegistryConfig(given).ok && existsSync(resolve(given, 'registry', 'config.json'))
      ? resolve(given, 'registry')
      : given;
  // A data dir others can read or write is refused before anything (even a log line) is written to it; the one
  // `init` is about to fill is made private.
  const fresh = cmd === 'init' && !existsSync(resolve(dataDir, 'config.json'));
  const insecure = fresh ? preparePrivateDir(dataDir) : checkRegistryDataDir(dataDir);
  if (!insecure.ok) return report(out, insecure.error);
  const logger: Logger = createLogger(
    { console: true, level: v.verbose ? 'debug' : 'warn', file: resolve(dataDir, 'logs', 'registry.log') },
    'registry',
  );
  const json = (x: unknown) => out.log(JSON.stringify(x, null, 2));

  if (cmd === 'init') {
    const r = await initRegistry({
      dataDir,
      ...(v['registry-id'] ? { registryId: v['registry-id'] } : {}),
      ...(v.db ? { db: v.db } : {}),
      clock: systemClock,
      logger,
    });
    if (!r.ok) return report(out, r.error);
    out.log(
      r.value.created
        ? `registry ${r.value.config.registryId} initialised in ${dataDir}\n  certificate (give it to stations): ${resolve(dataDir, r.value.config.certificate)}\n  admin token: ${resolve(dataDir, r.value.config.adminToken.file)} (0600)\n  security officer token: ${resolve(dataDir, r.value.config.securityOfficerToken?.file ?? '')} (0600)`
        : `registry already initialised in ${dataDir} (${r.value.config.registryId})`,
    );
    return EXIT.ok;
  }

  const cfg = readRegistryConfig(dataDir);
  if (!cfg.ok) return report(out, cfg.error);
  const dbUrl = v.db ?? cfg.value.db;

  if (cmd === 'serve') {
    const port = v.port === undefined ? 8443 : Number(v.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      out.err('--port must be 0..65535');
      return EXIT.usage;
    }
    const keys = await openRegistryKeys(dataDir, logger);
    if (!keys.ok) return report(out, keys.error);
    const lc = lifecycleSettings(cfg.value, keys.value);
    const srv = await startRegistry({
      db: dbUrl,
      port,
      host: v.host ?? '127.0.0.1',
      signer: keys.value.signer,
      registryChain: keys.value.chain,
      registryId: cfg.value.registryId,
      adminToken: keys.value.adminToken,
      clock: systemClock,
      logger,
      lifecycle: lc.lifecycle,
      crlRefreshS: lc.crlRefreshS,
      ...(cfg.value.http ? { http: cfg.value.http } : {}),
    });
    if (!srv.ok) {
      await keys.value.close();
      return report(out, srv.error);
    }
    writeServeFile(dataDir, srv.value.url, systemClock.now().toISOString());
    out.log(`registry ${cfg.value.registryId} listening on ${srv.value.url} (${srv.value.db.backend})`);
    await new Promise<void>((done) => {
      const stop = () => done();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    removeServeFile(dataDir);
    await srv.value.close();
    await keys.value.close();
    return EXIT.ok;
  }

  const db = await openRegistryDb(dbUrl);
  if (!db.ok) return report(out, db.error);
  let keysClose: (() => Promise<void>) | null = null;
  try {
    let signer = noSigner;
    let chain: readonly Uint8Array[] = [];
    let keys: RegistryKeys | null = null;
    const lifecycleCmd = LIFECYCLE_COMMANDS.has(cmd);
    // import: receipts are signed and ingested records re-sign CRLs; lifecycle changes re-sign CRLs.
    if (cmd === 'import' || (lifecycleCmd && lifecycleNeedsHsm(cmd))) {
      const k = await openRegistryKeys(dataDir, logger);
      if (!k.ok) return report(out, k.error);
      keys = k.value;
      signer = k.value.signer;
      chain = k.value.chain;
      keysClose = k.value.close;
    }
    const ctx: RegistryContext = {
      db: db.value,
      signer,
      registryChain: chain,
      registryId: cfg.value.registryId,
      clock: systemClock,
      logger,
      ...(keys ? { lifecycle: lifecycleSettings(cfg.value, keys).lifecycle } : {}),
    };
    if (lifecycleCmd) return await runLifecycleCommand(cmd, rest, v, { ctx, dataDir, out });
    return await command(cmd, rest, v, ctx, db.value, out, json);
  } finally {
    if (keysClose) await keysClose();
    await db.value.close();
  }
}

async function command(
  cmd: string,
  rest: string[],
  v: Record<string, string | boolean | string[] | undefined>,
  ctx: RegistryContext,
  _db: RegistryDb,
  out: Out,
  json: (x: unknown) => void,
): Promise<number> {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  switch (cmd) {
    case 'enroll-station': {
      const id = str('id');
      const chainFile = str('chain');
      if (!id || !chainFile) {
        out.err('enroll-station needs --id S --chain station-chain.pem');
        return EXIT.usage;
      }
      if (!existsSync(chainFile)) return report(out, fail('INPUT_INVALID', `${chainFile} not found`).error);
      const wo = str('work-orders');
      const r = await enrollStation(ctx, {
        stationId: id,
        chainPem: readFileSync(chainFile, 'utf8'),
        ...(wo
          ? {
              workOrders: wo
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean),
            }
          : {}),
      });
      if (!r.ok) return reportApi(out, r.error);
      out.log(
        `${r.value.created ? 'enrolled' : 'already enrolled'}: station ${id} (certificate sha256 ${r.value.station.certificateSha256})`,
      );
      return EXIT.ok;
    }
    case 'revoke-station': {
      const id = rest[0];
      if (!id) {
        out.err('revoke-station needs a station id');
        return EXIT.usage;
      }
      const r = await revokeStation(ctx, id);
      if (!r.ok) return reportApi(out, r.error);
      await noteStationRevoked(ctx, id, 'admin'); // the lifecycle log records it too
      out.log(`station ${id} revoked at ${r.value.revokedAt}`);
      return EXIT.ok;
    }
    case 'import': {
      const file = rest[0];
      if (!file) {
        out.err('import needs a bundle FILE');
        return EXIT.usage;
      }
      let text: string;
      try {
        const buf = readFileSync(file);
        if (buf.length > MAX_BUNDLE_BYTES)
          return report(out, fail('INPUT_INVALID', `${file} is larger than ${MAX_BUNDLE_BYTES} bytes`).error);
        text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
      } catch (e) {
        return report(
          out,
          fail('INPUT_INVALID', `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`).error,
        );
      }
      const r = await importBundle(
        ctx,
        { kind: 'admin', allowRevokedStation: v['allow-revoked-station'] === true },
        text,
      );
      if (!r.ok) return reportApi(out, r.error);
      const outFile = str('out') ?? `${file}.receipt.jws`;
      writeFileAtomic(outFile, r.value.receipt + '\n');
      const s = r.value.summary;
      if (v['json']) json(r.value);
      else {
        out.log(
          `bundle ${r.value.bundleId} of station ${r.value.stationId}: ${s.accepted} accepted, ${s.duplicate} duplicate${r.value.repeated ? ' (this bundle was imported before: nothing new)' : ''}, ${s.conflict} conflict, ${s.rejected} rejected`,
        );
        for (const x of r.value.results.filter((x) => x.status === 'rejected' || x.status === 'conflict'))
          out.log(`  #${x.index} ${x.recordId ?? '(unreadable)'}: ${x.reason}: ${x.message}`);
        out.log(`receipt written to ${outFile}`);
      }
      return s.rejected + s.conflict > 0 ? EXIT.refused : EXIT.ok;
    }
    case 'stations': {
      const r = await listStations(ctx);
      if (!r.ok) return reportApi(out, r.error);
      if (v['json']) json({ stations: r.value });
      else
        for (const s of r.value)
          out.log(
            `${s.stationId.padEnd(24)} records ${String(s.records).padStart(7)}  last sync ${s.lastSyncAt ?? '-'}${s.revokedAt ? `  REVOKED ${s.revokedAt}` : ''}`,
          );
      return EXIT.ok;
    }
    case 'stats': {
      const r = await stats(ctx);
      if (!r.ok) return reportApi(out, r.error);
      if (v['json']) json(r.value);
      else
        out.log(
          `stations ${r.value.stations}, devices ${r.value.devices}, records ${r.value.records}, conflicts ${r.value.conflicts}`,
        );
      return EXIT.ok;
    }
    case 'verify-station': {
      const id = rest[0];
      if (!id || rest.length > 1) {
        out.err('verify-station needs exactly one station id');
        return EXIT.usage;
      }
      const r = await verifyStationAudit(ctx, id);
      if (!r.ok) return reportApi(out, r.error);
      const a = r.value;
      if (v['json'])
        json({
          stationId: a.stationId,
          ok: a.ok,
          latest: a.latest,
          anchoredEntries: a.anchoredEntries,
          heads: a.heads.map(({ jws: _jws, ...h }) => h),
          findings: a.findings,
          problems: a.problems,
        });
      else {
        out.log(
          `station ${a.stationId}: ${a.heads.length} audit heads anchored, entries 1..${a.latest?.seq ?? 0}${a.latest ? ` (head ${a.latest.hash.slice(0, 16)}…)` : ''}`,
        );
        for (const f of a.findings)
          out.log(`  FINDING ${f.kind} at entry ${f.atSeq} (${f.detectedAt}, ${f.source} ${f.batchId}): ${f.message}`);
        for (const p of a.problems) out.log(`  PROBLEM ${p}`);
        out.log(a.ok ? 'audit anchoring OK: no rewritten or forked history' : 'audit anchoring: station FLAGGED');
      }
      return a.ok ? EXIT.ok : EXIT.refused;
    }
    case 'device': {
      const key = rest[0];
      if (!key) {
        out.err('device needs a serial number or chip id');
        return EXIT.usage;
      }
      const r = await getDevice(ctx, key);
      if (!r.ok) return reportApi(out, r.error);
      if (v['json']) json(r.value);
      else {
        out.log(
          `device ${r.value.serialNumber} (chip ${r.value.chipId}, ${r.value.model}), current record ${r.value.currentRecordId ?? '-'}`,
        );
        for (const x of r.value.records)
          out.log(
            `  ${x.recordId}  ${x.kind.padEnd(8)} ${x.completedAt}  station ${x.stationId}  work order ${x.workOrder}`,
          );
      }
      return EXIT.ok;
    }
    case 'records': {
      const limit = str('limit');
      if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit)) {
        out.err('--limit must be 1..1000');
        return EXIT.usage;
      }
      const r = await queryRecords(ctx, {
        ...(str('station') ? { station: str('station')! } : {}),
        ...(str('work-order') ? { workOrder: str('work-order')! } : {}),
        ...(str('from') ? { from: str('from')! } : {}),
        ...(str('to') ? { to: str('to')! } : {}),
        ...(limit ? { limit: Number(limit) } : {}),
        ...(str('cursor') ? { cursor: str('cursor')! } : {}),
      });
      if (!r.ok) return reportApi(out, r.error);
      if (v['json']) json(r.value);
      else {
        for (const x of r.value.records)
          out.log(
            `${x.recordId}  ${x.serialNumber.padEnd(12)} ${x.completedAt}  station ${x.stationId}  work order ${x.workOrder}`,
          );
        if (r.value.nextCursor) out.log(`more: --cursor ${r.value.nextCursor}`);
      }
      return EXIT.ok;
    }
    default:
      out.err(`unknown command ${cmd}\n\n${USAGE}`);
      return EXIT.usage;
  }
}
