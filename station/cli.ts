/**
 * `station` command line: init, provision, watch, records, verify-log.
 *
 * Exit codes: 0 success; 1 a board failed or was refused (operator-level); 2 usage error;
 * 3 station not ready (configuration, HSM, database; STATION_BUSY); 4 audit trail or record verification failed;
 * 70 internal error (a bug: see the log).
 */
import 'reflect-metadata';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stationError, type StationError } from '../core/errors.js';
import type { FlowOutcome } from '../core/provisioning/flow.js';
import type { ProgressEvent } from '../core/model.js';
import type { DetectedPort } from '../core/ports.js';
import { ok as okResult, type Result } from '../core/result.js';
import { fromPem, fromPemChain, toPem } from '../core/pki/pem.js';
import { verifyJws } from '../core/pki/jws.js';
import { anchorMismatches } from '../core/provisioning/audit.js';
import { fail } from '../core/errors.js';
import { checkRegistryUrl } from './hq/transport.js';
import { delegateRevocationSigner } from './revocation-signer.js';
import { checkStationDataDir, CONFIG_FILE, defaultRevocationUrls, updateStationConfig } from './config.js';
import { openEngine, type Engine } from './engine.js';
import { initStation } from './init.js';
import { createLogger } from '../native/logger.js';
import { rotateStationKey } from './rotate-key.js';
import { authenticateCli, cmdOperator, cmdServe, OPERATOR_USAGE, type CliCredentials } from './operators-cli.js';
import { writeFileAtomic } from '../native/atomic-file.js';
import { openServiceDb } from '../native/store/queries.js';
import { operatorRevoked } from './service/auth.js';
import { PRIVATE_DIR_MODE, restrictUmask } from '../native/data-dir.js';
import { escapeControlChars } from '../core/display-text.js';

export const EXIT = { ok: 0, boardFailed: 1, usage: 2, notReady: 3, verifyFailed: 4, internal: 70 } as const;

const USAGE = `usage: station <command> [options]

commands:
  init        --data-dir D --attestation-root FILE [--station-id ID] [--port PATH|GLOB ...]
  provision   --data-dir D --port P --work-order W --operator O [--pin-file F]
              [--reprovision [--supervisor S [--supervisor-pin-file F]]]
  watch       --data-dir D --work-order W --operator O [--pin-file F] [--port PATH|GLOB ...] [--exit-when-done] [--count N]
              (a registered operator signs in: PIN from --pin-file, $LINE_STATION_PIN or stdin, never the command
              line; --reprovision needs a supervisor: the operator, or --supervisor with --supervisor-pin-file,
              $LINE_STATION_SUPERVISOR_PIN or the next line of stdin)
  records     --data-dir D [--json] [--limit N] [--serial S] [--work-order W]
  verify-log  --data-dir D [--json] [--against-registry]   (also: the local chain still holds every audit head
                                                            the registry anchored; needs the HSM PIN)
${OPERATOR_USAGE}
  enroll      --data-dir D --registry-cert registry.pem [--registry URL] [--disable-sync]
              [--registry-tls-cert tls.pem]   (the pinned TLS certificate: required for https; http is
                                               accepted only to a loopback IP such as 127.0.0.1)
              [--revocation-signer]           (certify headquarters' CRL/OCSP signing key with the issuing CA;
                                               enrolled only if the registry proves it holds registry.pem)
              [--crl-url URL] [--ocsp-url URL]   (in device certificates; default: at --registry)
  policy      --data-dir D [--json] [--pull] [--policy-file F] [--quotas-file F]
                                                (the registry policy and quotas in force; pull or apply files)
  sync        --data-dir D [--status] [--json]   (send pending records now, or show the sync state)
  export      --data-dir D [--out FILE]          (signed bundle of the records not yet acknowledged)
  import-receipt FILE --data-dir D [--json]     (apply a receipt from registry import)
  rotate-key  --data-dir D [--json]              (new station key: online with the registry; resumes a pending one)
              [--out REQUEST.json | --answer ANSWER.json]   (hand-carried: registry rotate-station-key between)

common: --data-dir (default ./.data/station or $LINE_STATION_DATA_DIR), --verbose
`;

const OPTIONS = {
  'data-dir': { type: 'string' },
  'attestation-root': { type: 'string', multiple: true },
  'station-id': { type: 'string' },
  port: { type: 'string', multiple: true },
  'work-order': { type: 'string' },
  operator: { type: 'string' },
  'pin-file': { type: 'string' },
  supervisor: { type: 'string' },
  'supervisor-pin-file': { type: 'string' },
  reprovision: { type: 'boolean' },
  'exit-when-done': { type: 'boolean' },
  count: { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  serial: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  registry: { type: 'string' },
  'registry-cert': { type: 'string' },
  'disable-sync': { type: 'boolean' },
  'crl-url': { type: 'string' },
  'ocsp-url': { type: 'string' },
  status: { type: 'boolean' },
  out: { type: 'string' },
  'registry-tls-cert': { type: 'string' },
  'revocation-signer': { type: 'boolean' },
  pull: { type: 'boolean' },
  'policy-file': { type: 'string' },
  'quotas-file': { type: 'string' },
  answer: { type: 'string' },
  'against-registry': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Out = { out: (s: string) => void; err: (s: string) => void };
const stdio: Out = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

/**
 * Everything the CLI prints goes through core/display-text.ts: control and bidi characters in text a board (or a
 * file, or the registry) chose show as `\uXXXX` and cannot steer the terminal. The CLI's own line breaks stay; JSON
 * output stays valid JSON with the same values.
 */
function escapedOut(o: Out): Out {
  return {
    out: (s) => o.out(escapeControlChars(s, { keepLineBreaks: true })),
    err: (s) => o.err(escapeControlChars(s, { keepLineBreaks: true })),
  };
}

function describeError(e: StationError): string {
  return `${e.code}: ${e.message}\n  -> ${e.guidance}`;
}

function exitFor(e: StationError): number {
  if (e.kind === 'bug') return EXIT.internal;
  // A station revoked by headquarters is not ready to provision anything (docs/lifecycle.md "Policy"); a data dir
  // another process uses (a key rotation, or an engine while rotating) cannot run now (STATION_BUSY).
  // A registry URL the transport policy refuses (config.json edited by hand) is configuration too.
  if (
    /^(CONFIG_|HSM_|STORE_)/.test(e.code) ||
    e.code === 'FLOW_STATION_REVOKED' ||
    e.code === 'STATION_BUSY' ||
    e.code === 'SYNC_INSECURE_URL'
  )
    return EXIT.notReady;
  return EXIT.boardFailed;
}

const ICON: Record<ProgressEvent['status'], string> = {
  pending: '.',
  running: '>',
  done: 'ok',
  failed: 'FAIL',
  skipped: '-',
};

function progressPrinter(o: Out, json: boolean) {
  return (e: ProgressEvent) => {
    if (json) return o.out(JSON.stringify({ event: 'progress', ...e }));
    if (e.status === 'running') return;
    const who = e.serialNumber ? ` ${e.serialNumber}` : '';
    o.out(
      `[${e.port}]${who} ${e.step.padEnd(8)} ${ICON[e.status].padEnd(4)} ${String(e.elapsedMs).padStart(6)} ms${e.message ? `  ${e.message}` : ''}`,
    );
  };
}

function outcomeLine(port: string, r: Result<FlowOutcome>): string {
  if (!r.ok) return `[${port}] FAIL  ${describeError(r.error)}`;
  const v = r.value;
  if (v.status === 'already-provisioned') {
    return `[${port}] PASS  ${v.identity.serialNumber} already provisioned (record ${v.record.recordId}${v.boardMatches ? '' : ', WARNING: board does not hold the recorded certificate'})`;
  }
  return `[${port}] PASS  ${v.identity.serialNumber} provisioned${v.resumed ? ' (resumed)' : ''}: record ${v.record.recordId}, certificate ${v.record.certificateSerial}`;
}

/** Run the CLI; returns the exit code (does not call process.exit). */
export async function main(argv: string[], out: Out = stdio): Promise<number> {
  // Private files from the first write (docs/architecture.md "Data directory permissions").
  restrictUmask();
  const o = escapedOut(out);
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    o.out(USAGE);
    return cmd ? EXIT.ok : EXIT.usage;
  }
  // operators and the UI service (station/operators-cli.ts)
  if (cmd === 'operator') return cmdOperator(rest, o);
  if (cmd === 'serve') return cmdServe(rest, o);
  let args: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
  let positionals: string[];
  try {
    ({ values: args, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    o.err(`${(e as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (positionals.length > (cmd === 'import-receipt' ? 1 : 0)) {
    o.err(`unexpected argument ${positionals.at(-1)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const dataDir = resolve(args['data-dir'] ?? process.env.LINE_STATION_DATA_DIR ?? '.data/station');
  // A data dir others can read or write is refused before anything (even a log line) is written to it.
  if (cmd !== 'init' && existsSync(join(dataDir, CONFIG_FILE))) {
    const insecure = checkStationDataDir(dataDir);
    if (!insecure.ok) {
      o.err(describeError(insecure.error));
      return exitFor(insecure.error);
    }
  }
  const logger = createLogger({
    file: join(dataDir, 'logs', 'station.log'),
    console: args.verbose === true,
    level: args.verbose ? 'debug' : 'info',
  });

  switch (cmd) {
    case 'init': {
      const r = await initStation({
        dataDir,
        attestationRoots: args['attestation-root'] ?? [],
        ...(args['station-id'] ? { stationId: args['station-id'] } : {}),
        extraPorts: args.port ?? [],
        logger,
      });
      if (!r.ok) {
        o.err(describeError(r.error));
        return exitFor(r.error);
      }
      o.out(
        r.value.created
          ? `station ${r.value.config.stationId} initialised in ${dataDir}`
          : `station ${r.value.config.stationId} already initialised in ${dataDir}`,
      );
      return EXIT.ok;
    }
    case 'rotate-key':
      return cmdRotateKey(dataDir, args, logger, o);
    case 'enroll':
      return cmdEnroll(dataDir, args, logger, o);
    case 'policy':
    case 'provision':
    case 'watch':
    case 'records':
    case 'verify-log':
    case 'sync':
    case 'export':
    case 'import-receipt':
      break;
    default:
      o.err(`unknown command ${cmd}\n\n${USAGE}`);
      return EXIT.usage;
  }

  const eng = await openEngine({ dataDir, logger });
  if (!eng.ok) {
    o.err(describeError(eng.error));
    return exitFor(eng.error);
  }
  const engine = eng.value;
  try {
    switch (cmd) {
      case 'provision':
        return await cmdProvision(engine, args, logger, o);
      case 'watch':
        return await cmdWatch(engine, args, logger, o);
      case 'records':
        return cmdRecords(engine, args, o);
      case 'verify-log':
        return await cmdVerifyLog(engine, args, o);
      case 'policy':
        return await cmdPolicy(engine, args, o);
      case 'sync':
      case 'export':
      case 'import-receipt':
        return await cmdSync(cmd, engine, args, positionals, o);
    }
  } finally {
    await engine.close();
  }
}

/** `station rotate-key` (station/rotate-key.ts). Stop `station serve` / `watch` first: they hold the old key. */
async function cmdRotateKey(
  dataDir: string,
  args: Record<string, unknown>,
  logger: ReturnType<typeof createLogger>,
  o: Out,
): Promise<number> {
  const out = args.out as string | undefined;
  const answer = args.answer as string | undefined;
  if (out && answer) {
    o.err('rotate-key: give --out (write the request) or --answer (apply the registry answer), not both');
    return EXIT.usage;
  }
  const r = await rotateStationKey({
    dataDir,
    logger,
    mode: out
      ? { kind: 'request', out: resolve(out) }
      : answer
        ? { kind: 'answer', file: resolve(answer) }
        : { kind: 'online' },
  });
  if (!r.ok) {
    o.err(describeError(r.error));
    return exitFor(r.error);
  }
  const v = r.value;
  if (args.json) o.out(JSON.stringify(v, null, 2));
  else if (v.status === 'requested')
    o.out(
      `key rotation ${v.requestId} requested${v.resumed ? ' (pending request written again)' : ''}: new key "${v.newLabel}" generated, not in use yet\n` +
        `  request written to ${v.out}; at headquarters: registry rotate-station-key --request FILE --out ANSWER.json\n` +
        `  then: station rotate-key --answer ANSWER.json --data-dir ${dataDir}`,
    );
  else
    o.out(
      `station key rotated${v.resumed ? ' (resumed)' : ''}: now "${v.newLabel}" (certificate ${v.certificateSha256.slice(0, 16)}...), ` +
        `registry switched at ${v.rotatedAt ?? '?'}; old key "${v.oldLabel}" destroyed\n  new chain: ${v.chainFile}`,
    );
  return EXIT.ok;
}

/** The operator (and supervisor) of a provision/watch command line; a usage error when --operator is missing. */
function credentials(args: Record<string, unknown>): CliCredentials | null {
  const operatorId = args.operator as string | undefined;
  if (!operatorId) return null;
  const opt = (k: string) => args[k] as string | undefined;
  return {
    operatorId,
    ...(opt('pin-file') ? { pinFile: opt('pin-file')! } : {}),
    ...(opt('supervisor') ? { supervisorId: opt('supervisor')! } : {}),
    ...(opt('supervisor-pin-file') ? { supervisorPinFile: opt('supervisor-pin-file')! } : {}),
  };
}

async function cmdProvision(
  engine: Engine,
  args: Record<string, unknown>,
  logger: ReturnType<typeof createLogger>,
  o: Out,
): Promise<number> {
  const ports = (args.port as string[] | undefined) ?? [];
  const wo = args['work-order'] as string | undefined;
  const cred = credentials(args);
  if (ports.length !== 1 || !wo || !cred) {
    o.err('provision needs exactly one --port, a --work-order and the --operator who signs in');
    return EXIT.usage;
  }
  const reprovision = args.reprovision === true;
  const who = await authenticateCli(engine, reprovision ? 'reprovision' : 'provision', cred, logger);
  if (!who.ok) {
    o.err(describeError(who.error));
    return exitFor(who.error);
  }
  if (reprovision)
    engine.store.appendAudit('override.reprovision', {
      supervisor: who.value.supervisorId,
      operator: who.value.operatorId,
      reason: 'station provision --reprovision',
      port: ports[0]!,
      chipId: null,
    });
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    const r = await engine.provision({
      port: ports[0]!,
      workOrder: wo,
      operator: who.value.operatorId,
      reprovision,
      signal: ac.signal,
      onProgress: progressPrinter(o, args.json === true),
    });
    o.out(outcomeLine(ports[0]!, r));
    return r.ok ? EXIT.ok : exitFor(r.error);
  } finally {
    process.off('SIGINT', onSig);
  }
}

/** Provision boards as they appear, several at once (one per port). */
async function cmdWatch(
  engine: Engine,
  args: Record<string, unknown>,
  logger: ReturnType<typeof createLogger>,
  o: Out,
): Promise<number> {
  const wo = args['work-order'] as string | undefined;
  const cred = credentials(args);
  if (!wo || !cred) {
    o.err('watch needs --work-order and the --operator who signs in');
    return EXIT.usage;
  }
  const who = await authenticateCli(engine, 'watch', cred, logger);
  if (!who.ok) {
    o.err(describeError(who.error));
    return exitFor(who.error);
  }
  const w = engine.workOrder(wo);
  if (!w.ok) {
    o.err(describeError(w.error));
    return EXIT.usage;
  }
  const revoked = engine.lifecycle.checkStation();
  if (!revoked.ok) {
    o.err(describeError(revoked.error));
    return exitFor(revoked.error);
  }
  // Records reach the registry in the background while boards are provisioned (when a registry is configured).
  engine.sync?.start();
  engine.lifecycle.start();
  const extra = (args.port as string[] | undefined) ?? [];
  const count = args.count ? Number(args.count) : undefined;
  const exitWhenDone = args['exit-when-done'] === true;
  const operator = who.value.operatorId;
  // Re-checked before each new board and every 5 s (the UI service's rule, operatorRevoked): a revocation here
  // (`station operator revoke` from any process) or in the registry policy stops new boards.
  const opsDb = openServiceDb(join(engine.config.dataDir, 'station.db'), { logger });
  if (!opsDb.ok) {
    o.err(describeError(opsDb.error));
    return exitFor(opsDb.error);
  }
  const disco = extra.length
    ? (await import('../native/discovery.js')).createDiscovery({ extraPorts: extra, pollMs: 200 })
    : engine.discovery();
  const running = new Map<string, AbortController>();
  /** Ports whose board finished; provisioning again needs a detach + attach. */
  const finished = new Map<string, boolean>();
  let passed = 0;
  let failed = 0;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const ac = new AbortController();
  const onSig = () => {
    o.out('stopping: waiting for boards in progress to reach a checkpoint');
    ac.abort();
    for (const c of running.values()) c.abort();
    if (running.size === 0) resolveDone(failed ? EXIT.boardFailed : EXIT.ok);
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  /** Set once the operator is found revoked: no new board starts; the exit code once boards in progress end. */
  let revokedError: StationError | null = null;
  const checkDone = () => {
    if (revokedError && running.size === 0) resolveDone(exitFor(revokedError));
    if (count !== undefined && passed + failed >= count && running.size === 0)
      resolveDone(failed ? EXIT.boardFailed : EXIT.ok);
    if (exitWhenDone && running.size === 0 && finished.size > 0) resolveDone(failed ? EXIT.boardFailed : EXIT.ok);
    if (ac.signal.aborted && running.size === 0) resolveDone(failed ? EXIT.boardFailed : EXIT.ok);
  };
  const checkRevoked = (): boolean => {
    if (revokedError) return true;
    if (!operatorRevoked(engine.lifecycle, opsDb.value.operators, operator)) return false;
    revokedError = stationError(
      'AUTH_REVOKED',
      `operator ${operator} has been revoked: no new boards are started${running.size ? ` (${running.size} in progress finish first)` : ''}`,
      { operatorId: operator },
    );
    logger.log('warn', 'watch: operator revoked, no new boards are started', { operatorId: operator });
    o.err(describeError(revokedError));
    checkDone();
    return true;
  };
  const recheck = setInterval(checkRevoked, 5000);
  recheck.unref();
  const start = (port: DetectedPort) => {
    if (ac.signal.aborted || running.has(port.path) || finished.has(port.path)) return;
    if (checkRevoked()) {
      o.err(`[${port.path}] not started: AUTH_REVOKED (operator ${operator} has been revoked)`);
      return;
    }
    const c = new AbortController();
    running.set(port.path, c);
    o.out(`[${port.path}] board attached`);
    void engine
      .provision({
        port,
        workOrder: wo,
        operator,
        signal: c.signal,
        onProgress: progressPrinter(o, args.json === true),
      })
      .then((r) => {
        running.delete(port.path);
        o.out(outcomeLine(port.path, r));
        // A board unplugged mid-step resumes when it is plugged in again: not finished.
        if (!r.ok && (r.error.code === 'LINK_DISCONNECTED' || r.error.code === 'FLOW_CANCELLED')) {
          if (ac.signal.aborted) failed++;
        } else {
          finished.set(port.path, r.ok);
          if (r.ok) passed++;
          else failed++;
        }
        checkDone();
      });
  };
  const stop = disco.watch((ev) => {
    if (ev.type === 'attached') start(ev.port);
    else if (ev.type === 'detached') {
      running.get(ev.port.path)?.abort();
      finished.delete(ev.port.path);
      o.out(`[${ev.port.path}] board detached`);
    } else o.err(`[${ev.path}] ${ev.code}: ${ev.message}`);
  });
  for (const p of await disco.list()) start(p);
  o.out(`watching for boards (work order ${wo}); Ctrl-C to stop`);
  const code = await done;
  clearInterval(recheck);
  opsDb.value.close();
  stop();
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  o.out(`${passed} boards passed, ${failed} failed`);
  return code;
}

function cmdRecords(engine: Engine, args: Record<string, unknown>, o: Out): number {
  const limit = args.limit ? Number(args.limit) : 100;
  const rows = engine.store.listRecords({
    limit,
    ...(args.serial ? { serialNumber: args.serial as string } : {}),
    ...(args['work-order'] ? { workOrder: args['work-order'] as string } : {}),
  });
  if (args.json) {
    const out = rows.map((r) => {
      const rec = JSON.parse(r.recordJson) as { certificate: { pem: string }; chain: string[] };
      return {
        recordId: r.recordId,
        runId: r.runId,
        chipId: r.chipId,
        serialNumber: r.serialNumber,
        workOrder: r.workOrder,
        operator: r.operator,
        kind: r.kind,
        supersedesRecordId: r.supersedesRecordId,
        createdAt: r.createdAt,
        certificateSerial: r.certificateSerial,
        certificatePem: rec.certificate.pem,
        chain: rec.chain,
        recordSha256: r.recordSha256,
        record: JSON.parse(r.recordJson) as unknown,
        jws: r.jws,
      };
    });
    o.out(JSON.stringify(out, null, 2));
    return EXIT.ok;
  }
  o.out(`${'created'.padEnd(24)} ${'serial'.padEnd(12)} ${'work order'.padEnd(12)} ${'kind'.padEnd(9)} record`);
  for (const r of rows)
    o.out(
      `${r.createdAt.padEnd(24)} ${r.serialNumber.padEnd(12)} ${r.workOrder.padEnd(12)} ${r.kind.padEnd(9)} ${r.recordId}`,
    );
  o.out(`${rows.length} of ${engine.store.countRecords()} records`);
  return EXIT.ok;
}

async function cmdVerifyLog(engine: Engine, args: Record<string, unknown>, o: Out): Promise<number> {
  const chain = engine.store.verifyAudit();
  const anchors = fromPemChain(readFileSync(engine.config.path(engine.config.config.pki.caChain), 'utf8'));
  if (!anchors.ok) {
    o.err(describeError(anchors.error));
    return EXIT.notReady;
  }
  // Every record's signature must verify against the station PKI (root at the end of the CA chain).
  const root = anchors.value.slice(-1);
  let badRecords = 0;
  let checked = 0;
  const problems: string[] = [];
  for (let off = 0; ; off += 500) {
    const rows = engine.store.listRecords({ limit: 500, offset: off });
    for (const r of rows) {
      checked++;
      const v = await verifyJws(r.jws, { trustAnchors: root, clock: engine.clock });
      if (!v.ok) {
        badRecords++;
        problems.push(`record ${r.recordId}: ${v.error.message}`);
      } else if (new TextDecoder().decode(v.value.payload) !== r.recordJson) {
        badRecords++;
        problems.push(`record ${r.recordId}: stored JSON differs from the signed payload`);
      }
    }
    if (rows.length < 500) break;
  }
  const anchored = args['against-registry'] === true ? await checkAnchoredHeads(engine) : null;
  if (anchored && !anchored.ok && anchored.error.code !== 'STORE_AUDIT_NOT_ANCHORED') {
    o.err(describeError(anchored.error));
    return exitFor(anchored.error);
  }
  const ok = chain.ok && badRecords === 0 && (anchored === null || anchored.ok);
  const registry =
    anchored === null ? undefined : anchored.ok ? anchored.value : { ...anchored.error.details, error: anchored.error };
  if (args.json) {
    o.out(
      JSON.stringify(
        { ok, audit: chain, records: { checked, invalid: badRecords, problems }, ...(registry ? { registry } : {}) },
        null,
        2,
      ),
    );
  } else {
    if (chain.ok) o.out(`audit chain OK: ${chain.entries} entries, head ${chain.headHash.slice(0, 16)}...`);
    else o.out(`audit chain BROKEN at ${chain.at}: ${chain.reason}: ${chain.message}`);
    o.out(
      badRecords === 0 ? `records OK: ${checked} signatures verified` : `records INVALID: ${badRecords} of ${checked}`,
    );
    for (const p of problems.slice(0, 20)) o.out(`  ${p}`);
    if (anchored?.ok)
      o.out(
        `registry anchors OK: ${anchored.value.heads} anchored heads held by the local chain (latest ${anchored.value.latest?.seq ?? 'none'})`,
      );
    else if (anchored) o.out(`registry anchors MISMATCH: ${describeError(anchored.error)}`);
  }
  return ok ? EXIT.ok : EXIT.verifyFailed;
}

/**
 * `verify-log --against-registry`: fetch the heads the registry anchored (signed, checked against the registry
 * certificate) and check the local chain holds each at its sequence number (docs/audit.md). STORE_AUDIT_NOT_ANCHORED
 * (details: mismatches, registry findings) when it does not, or when the registry recorded a finding.
 */
async function checkAnchoredHeads(
  engine: Engine,
): Promise<Result<{ latest: { seq: number; hash: string } | null; heads: number; findings: number }>> {
  if (!engine.sync)
    return fail('CONFIG_INVALID', 'no registry is configured: run station enroll --registry URL --registry-cert F');
  const r = await engine.sync.anchoredHeads();
  if (!r.ok) return r;
  const heads = [...r.value.heads, ...(r.value.latest ? [r.value.latest] : [])];
  const mismatches = anchorMismatches(heads, (seq) => {
    const e = engine.store.listAudit(seq, 1)[0];
    return e && e.seq === seq ? e.hash : null;
  });
  const findings = r.value.findings;
  if (mismatches.length || findings.length) {
    const first = mismatches[0];
    const why = first
      ? first.localHash === null
        ? `the local audit chain ends before entry ${first.seq}, which the registry anchored: entries were removed (restored backup or truncation)`
        : `local audit entry ${first.seq} hashes to ${first.localHash.slice(0, 16)}…, the registry anchored ${first.anchoredHash.slice(0, 16)}…: the history was rewritten`
      : `the registry recorded ${findings.length} finding(s) for this station: ${findings[0]!.kind} at entry ${findings[0]!.atSeq}: ${findings[0]!.message}`;
    return fail(
      'STORE_AUDIT_NOT_ANCHORED',
      `${why} (${mismatches.length} of ${heads.length} anchored heads not held)`,
      { mismatches: mismatches.slice(0, 20), findings },
    );
  }
  return okResult({ latest: r.value.latest, heads: r.value.heads.length, findings: 0 });
}

// ---------------------------------------------------------------- sync with the registry (station/sync.ts)

/** Read a PEM certificate file given on the command line (DER), or print the coded error. */
function readCertArg(file: string, o: Out): Uint8Array | null {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    o.err(`INPUT_INVALID: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return null;
  }
  const der = fromPem(pem, 'CERTIFICATE');
  if (!der.ok) {
    o.err(`INPUT_INVALID: ${file}: ${der.error.message}`);
    return null;
  }
  return der.value;
}

/**
 * `station enroll`: pin the registry (its certificate, and for https its TLS certificate), check the URL policy
 * (station/sync.ts `checkRegistryUrl`), optionally run the delegated revocation signer exchange
 * (station/revocation-signer.ts), and only then write the `registry` section of config.json (certificates copied to
 * pki/). Any refusal leaves config.json as it was: the station is not enrolled.
 */
async function cmdEnroll(
  dataDir: string,
  args: Record<string, unknown>,
  logger: ReturnType<typeof createLogger>,
  o: Out,
): Promise<number> {
  const certFile = args['registry-cert'] as string | undefined;
  const tlsFile = args['registry-tls-cert'] as string | undefined;
  const url = (args.registry as string | undefined)?.replace(/\/+$/, '');
  if (!certFile) {
    o.err('enroll needs --registry-cert registry.pem (and --registry URL for online sync)');
    return EXIT.usage;
  }
  if (args['revocation-signer'] && !url) {
    o.err('enroll --revocation-signer needs --registry URL');
    return EXIT.usage;
  }
  const cfgFile = join(dataDir, CONFIG_FILE);
  if (!existsSync(cfgFile)) {
    o.err(`CONFIG_NOT_FOUND: no station configuration at ${cfgFile}; run: station init --data-dir ${dataDir}`);
    return EXIT.notReady;
  }
  const registryCert = readCertArg(certFile, o);
  if (!registryCert) return EXIT.usage;
  const tlsCert = tlsFile ? readCertArg(tlsFile, o) : null;
  if (tlsFile && !tlsCert) return EXIT.usage;
  if (url) {
    const policy = checkRegistryUrl(url, tlsCert);
    if (!policy.ok) {
      o.err(describeError(policy.error));
      return EXIT.notReady;
    }
  }
  if (args['revocation-signer']) {
    const eng = await openEngine({ dataDir, logger });
    if (!eng.ok) {
      o.err(describeError(eng.error));
      return exitFor(eng.error);
    }
    const engine = eng.value;
    try {
      const d = await delegateRevocationSigner({
        url: url!,
        registryCertificate: registryCert,
        tlsCertificate: tlsCert,
        stationId: engine.station.id,
        signer: engine.station.signer,
        caSigner: engine.station.caSigner,
        caChain: engine.station.caChain,
        clock: engine.clock,
        audit: (type: string, payload: Readonly<Record<string, unknown>>) => {
          engine.store.appendAudit(type, payload);
        },
      });
      if (!d.ok) {
        o.err(`${describeError(d.error)}\n  the station is NOT enrolled (config.json unchanged)`);
        return EXIT.notReady;
      }
      o.out(
        `revocation signer certified for registry ${d.value.registryId}: serial ${d.value.serialNumber}, sha256 ${d.value.certificateSha256}, valid until ${d.value.notAfter}`,
      );
    } finally {
      await engine.close();
    }
  }
  // The certificates are copied once the new configuration validated, before config.json names them.
  const crlUrl = args['crl-url'] as string | undefined;
  const ocspUrl = args['ocsp-url'] as string | undefined;
  const updated = updateStationConfig(
    dataDir,
    (cfg) => ({
      ...cfg,
      ...(url || crlUrl || ocspUrl
        ? {
            revocation: {
              ...(url ? defaultRevocationUrls(url, String(cfg['stationId'])) : {}),
              ...(crlUrl ? { crl: crlUrl } : {}),
              ...(ocspUrl ? { ocsp: ocspUrl } : {}),
            },
          }
        : {}),
      registry: {
        ...(url ? { url } : {}),
        certificate: join('pki', 'registry.pem'),
        ...(tlsCert ? { tlsCertificate: join('pki', 'registry-tls.pem') } : {}),
        enabled: args['disable-sync'] !== true,
      },
    }),
    () => {
      mkdirSync(join(dataDir, 'pki'), { recursive: true, mode: PRIVATE_DIR_MODE });
      writeFileAtomic(join(dataDir, 'pki', 'registry.pem'), toPem(registryCert, 'CERTIFICATE'));
      if (tlsCert) writeFileAtomic(join(dataDir, 'pki', 'registry-tls.pem'), toPem(tlsCert, 'CERTIFICATE'));
    },
  );
  if (!updated.ok) {
    o.err(`${updated.error.code}: ${updated.error.message}`);
    return updated.error.code === 'CONFIG_INVALID' ? EXIT.usage : exitFor(updated.error);
  }
  const rev = updated.value.revocation;
  o.out(
    `registry configured: ${url ?? '(offline: bundles only)'}${args['disable-sync'] ? ' (background sync disabled)' : ''}\n` +
      `  device certificates: CRL ${rev?.crl ?? '(none)'}, OCSP ${rev?.ocsp ?? '(none)'}\n` +
      `  enrol this station at the registry: registry enroll-station --id ${updated.value.stationId} --chain ${join(dataDir, 'pki', 'station-chain.pem')}`,
  );
  return EXIT.ok;
}

async function cmdSync(
  cmd: 'sync' | 'export' | 'import-receipt',
  engine: Engine,
  args: Record<string, unknown>,
  positionals: string[],
  o: Out,
): Promise<number> {
  const sync = engine.sync;
  if (!sync) {
    o.err(
      'CONFIG_INVALID: no registry is configured\n  -> run: station enroll --registry URL --registry-cert registry.pem',
    );
    return EXIT.notReady;
  }
  const json = args.json === true;
  if (cmd === 'export') {
    const r = await sync.exportBundle();
    if (!r.ok) {
      o.err(describeError(r.error));
      return exitFor(r.error);
    }
    const file = resolve((args.out as string | undefined) ?? r.value.fileName);
    writeFileAtomic(file, r.value.content);
    if (json) o.out(JSON.stringify({ file, count: r.value.count, revocationEvents: r.value.revocationEvents }));
    else
      o.out(
        `${r.value.count} records and ${r.value.revocationEvents} revocation events exported to ${file}\n  import it at headquarters: registry import ${file}`,
      );
    return EXIT.ok;
  }
  if (cmd === 'import-receipt') {
    const file = positionals[0];
    if (!file) {
      o.err('import-receipt needs the receipt FILE');
      return EXIT.usage;
    }
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch (e) {
      o.err(`INPUT_INVALID: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return EXIT.usage;
    }
    const r = await sync.importReceipt(content);
    if (!r.ok) {
      o.err(describeError(r.error));
      return exitFor(r.error);
    }
    o.out(json ? JSON.stringify(r.value) : r.value.message);
    return EXIT.ok;
  }
  if (args.status === true) {
    await sync.checkHealth();
    const st = sync.status();
    if (json) o.out(JSON.stringify(st, null, 2));
    else printStatus(st, o);
    return EXIT.ok;
  }
  const r = await sync.syncOnce();
  const st = sync.status();
  // Then the registry's policy and quotas (verified; never rolled back) and queued scrap / failed-issuance events.
  const pulled = r.ok ? await engine.lifecycle.pull() : null;
  const revs = r.ok ? await engine.lifecycle.sendRevocations() : null;
  if (json)
    o.out(
      JSON.stringify(
        {
          ...(r.ok ? st : { ...st, error: r.error }),
          lifecycle: pulled ? (pulled.ok ? pulled.value : { error: pulled.error }) : null,
          revocations: revs ? (revs.ok ? revs.value : { error: revs.error }) : null,
        },
        null,
        2,
      ),
    );
  else {
    printStatus(st, o);
    if (!r.ok) o.err(describeError(r.error));
    if (pulled?.ok)
      o.out(
        `policy version ${pulled.value.policy.version} (${pulled.value.policy.outcome}), quotas version ${pulled.value.quotas.version} (${pulled.value.quotas.outcome})`,
      );
    else if (pulled) o.err(`policy not updated: ${describeError(pulled.error)}`);
    if (revs?.ok && revs.value.unsupported) o.out('revocation events queued: the registry does not accept them yet');
    else if (revs?.ok && revs.value.sent) o.out(`${revs.value.sent} revocation event(s) acknowledged by the registry`);
    else if (revs && !revs.ok) o.err(`revocation events not sent: ${describeError(revs.error)}`);
  }
  return r.ok ? EXIT.ok : exitFor(r.error);
}

function printStatus(st: ReturnType<NonNullable<Engine['sync']>['status']>, o: Out): void {
  o.out(
    `registry ${st.registryUrl ?? '(none: offline)'}: ${st.reachable === null ? 'not checked' : st.reachable ? 'reachable' : 'NOT reachable'}`,
  );
  o.out(`records: ${st.acknowledged} acknowledged, ${st.pending} pending, ${st.sent} sent, ${st.failed} failed`);
  if (st.lastReceipt)
    o.out(`last receipt ${st.lastReceipt.receiptId} at ${st.lastReceipt.at} (${st.lastReceipt.count} records)`);
  if (st.lastError) o.out(`last error: ${st.lastError}`);
}

// ---------------------------------------------------------------- identity lifecycle (station/lifecycle)

/** `station policy`: the registry policy and quotas in force (optionally pulled, or applied from files). */
async function cmdPolicy(engine: Engine, args: Record<string, unknown>, o: Out): Promise<number> {
  const lc = engine.lifecycle;
  const problems: string[] = [];
  for (const [flag, apply] of [
    ['policy-file', lc.applyPolicy],
    ['quotas-file', lc.applyQuotas],
  ] as const) {
    const f = args[flag] as string | undefined;
    if (!f) continue;
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      o.err(`INPUT_INVALID: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return EXIT.usage;
    }
    const r = await apply(text.trim().startsWith('{') ? String((JSON.parse(text) as { jws?: unknown }).jws) : text);
    if (!r.ok) problems.push(describeError(r.error));
  }
  if (args.pull === true) {
    const r = await lc.pull();
    if (!r.ok) problems.push(describeError(r.error));
  }
  const st = lc.status();
  if (args.json === true) o.out(JSON.stringify({ ...st, problems }, null, 2));
  else {
    o.out(
      st.policyVersion === null
        ? 'policy: none (no policy from the registry yet)'
        : `policy version ${st.policyVersion} issued ${st.policyIssuedAt} (fetched ${st.policyFetchedAt})`,
    );
    o.out(
      `  revoked operators ${st.revokedOperators}, blocked serials ${st.blockedSerials}, blocked chip ids ${st.blockedChipIds}` +
        (st.firmwareOverrides.length ? `, firmware set for ${st.firmwareOverrides.join(', ')}` : ''),
    );
    if (st.profileOverrides.length) o.out(`  certificate profile overrides for ${st.profileOverrides.join(', ')}`);
    if (st.reenrollment)
      o.out(
        `  re-enrolment: certificate lifetime ${st.reenrollment.certificateLifetimeSeconds} s, rotate ${st.reenrollment.rotateBeforeSeconds} s before expiry`,
      );
    if (st.stationRevoked)
      o.out(
        `  REVOKED: this station has been revoked by headquarters${st.stationRevokedAt ? ` at ${st.stationRevokedAt}` : ''} (${st.stationRevokedBy === 'station-status' ? 'signed answer of the registry, kept' : 'policy'}); it refuses to provision (contact your supervisor)`,
      );
    else if (st.registryConfirmedActiveAt)
      o.out(`  the registry confirmed this station active at ${st.registryConfirmedActiveAt} (signed)`);
    o.out(
      `  device certificates: CRL ${st.revocationUrls?.crl ?? '(none)'}, OCSP ${st.revocationUrls?.ocsp ?? '(none)'}`,
    );
    o.out(
      st.quotaVersion === null
        ? `quotas: none (${st.requireQuota ? 'work orders without a quota are refused' : 'unlimited, with a warning'})`
        : `quotas version ${st.quotaVersion}`,
    );
    for (const q of st.quotas)
      o.out(
        `  ${q.workOrder.padEnd(14)} ${q.quantity === null ? 'no quota' : `quota ${q.quantity}`}: ${q.committed} provisioned, ${q.reserved} in progress, ${q.released} released, ${q.scrapped} scrapped${q.remaining === null ? '' : `, ${q.remaining} left`}`,
      );
    o.out(
      `revocation requests: ${st.revocations.queued} queued, ${st.revocations.sent} sent, ${st.revocations.acknowledged} acknowledged`,
    );
    for (const p of problems) o.err(p);
  }
  return problems.length ? EXIT.boardFailed : EXIT.ok;
}
