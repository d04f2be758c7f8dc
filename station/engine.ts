/**
 * The station engine: the composition root that wires the Electron-free core to the native adapters
 * (HSM, serial links, SQLite store, discovery) and runs provisioning on one or many ports at once.
 * Used by the CLI, the benchmark, the tests, and (later) the Electron engine host and UI bridge.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail, stationError } from '../core/errors.js';
import { provisionBoard, zeroizeBoard, type FlowOutcome, type StationIdentity } from '../core/provisioning/flow.js';
import { driverFor } from '../core/boards/index.js';
import type { BoardIdentity, ProgressEvent } from '../core/model.js';
import type { BoardClient, Clock, DetectedPort, DeviceDiscovery, Hsm, Logger } from '../core/ports.js';
import { systemClock } from '../core/ports.js';
import type { BoardProfile } from '../core/provisioning/profiles.js';
import { profilesUnsupported, type UnsupportedProfile } from '../core/hsm/requirements.js';
import { err, ok, type Result } from '../core/result.js';
import type { Store, StoredRecord } from '../core/provisioning/store.js';
import { parseWorkOrder, type WorkOrder } from '../core/provisioning/work-order.js';
import { parseCertificate } from '../core/pki/chain.js';
import { lifetimeCappedAt } from '../core/pki/device-cert.js';
import { fromPemChain } from '../core/pki/pem.js';
import type { BoardClientWithStats } from '../core/protocol/client.js';
import { serialOpener } from '../native/serial.js';
import { isStoreError, type StationPorts } from '../native/store/index.js';
import { createDiscovery } from '../native/discovery.js';
import { createUsbWatcher, type UsbWatcher } from '../native/usb.js';
import { loadProfilesFromDir } from '../native/profiles-fs.js';
import { openBoard } from './board-connection.js';
import { registerEngine } from './instance.js';
import { openTokenAndStore } from './token-store.js';
import { loadConfig, readPin, type LoadedConfig } from './config.js';
import { openSync, type SyncService } from './sync.js';
import { checkRegistryUrl } from './hq/transport.js';
import { readRegistryCertificate, readRegistryTlsCertificate } from './hq/pins.js';
import { openLifecycle, type StationLifecycle } from './lifecycle/index.js';

export interface EngineOptions {
  readonly dataDir: string;
  readonly logger: Logger;
  readonly clock?: Clock;
}

export interface ProvisionRequest {
  readonly port: string | DetectedPort;
  readonly workOrder: string;
  readonly operator: string;
  readonly reprovision?: boolean;
  /** The supervisor who approved `reprovision` (a failed rework's revocation names them). */
  readonly supervisor?: string;
  /** Scan-in: the serial number scanned from the board's barcode for this port, checked against identify. */
  readonly expectSerial?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
  /** Wrap the board client (benchmarks time the board's share of a cycle; byte counts via `stats()`). */
  readonly instrumentBoard?: (board: BoardClientWithStats) => BoardClient;
}

export interface Engine {
  readonly config: LoadedConfig;
  readonly clock: Clock;
  readonly store: Store;
  /** The other ports of the station database, on the Store's connection (the process opens it once). */
  readonly db: StationPorts;
  readonly hsm: Hsm;
  readonly profiles: readonly BoardProfile[];
  /** Board profiles the station's token cannot serve (core/hsm/requirements.ts `profilesUnsupported`). */
  readonly refusedProfiles: readonly UnsupportedProfile[];
  readonly station: StationIdentity;
  /** Sync to the registry, when config.json has a `registry` section. The caller starts/stops its loop. */
  readonly sync?: SyncService;
  /** The registry's signed policy and quotas, applied before provisioning (station/lifecycle). */
  readonly lifecycle: StationLifecycle;
  workOrder(id: string): Result<WorkOrder>;
  listWorkOrders(): WorkOrder[];
  provision(req: ProvisionRequest): Promise<Result<FlowOutcome>>;
  /**
   * Erase the identity of the board on `port` through its profile's driver (a supervisor's scrap): the board is
   * identified as for a run of `workOrder` (its profile must be in it), then zeroized. Writes nothing; the caller
   * audits and queues the scrap event. The board's identity as identified.
   */
  zeroize(req: {
    readonly port: string;
    readonly workOrder: string;
    readonly signal?: AbortSignal;
  }): Promise<Result<BoardIdentity>>;
  discovery(): DeviceDiscovery;
  /** USB hotplug (or the reason it is unavailable on this machine). */
  readonly usb: UsbWatcher;
  close(): Promise<void>;
}

/** Open the station in a data dir: configuration, HSM session, database, profiles, station identity. */
export async function openEngine(o: EngineOptions): Promise<Result<Engine>> {
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const cfgR = loadConfig(o.dataDir);
  if (!cfgR.ok) return cfgR;
  const cfg = cfgR.value;
  const c = cfg.config;

  const profiles = loadProfilesFromDir(cfg.path(c.paths.profilesDir));
  if (!profiles.ok) return profiles;

  const pin = readPin(cfg);
  if (!pin.ok) return pin;
  // Not while `station rotate-key` runs in another process (it switches and destroys the station key).
  const registered = registerEngine(cfg.dataDir);
  if (!registered.ok) return registered;
  const release = registered.value;
  const opened = await openTokenAndStore(cfg, pin.value, {
    clock,
    hsmLogger: log.child('[hsm]'),
    storeLogger: log.child('[store]'),
  });
  if (!opened.ok) {
    release();
    return opened;
  }
  const { hsm, store, db } = opened.value;
  let closed = false;
  const fail2 = async <T>(r: Result<T>): Promise<Result<never>> => {
    db.close();
    await hsm.close();
    release();
    return r as Result<never>;
  };

  const guarded = await keysProtected(hsm, [c.hsm.keys.issuingCa, c.hsm.keys.station]);
  if (!guarded.ok) return fail2(guarded);
  // Board profiles that need a mechanism the token lacks (keyMode injected without RFC 5649 wrap, …) are refused:
  // a work order naming one fails with HSM_TOKEN_LACKS_MECHANISM before a board is touched (docs/hsm.md).
  const reqs = await hsm.checkRequirements();
  if (!reqs.ok) return fail2(reqs);
  const refusedProfiles = profilesUnsupported({ requirements: reqs.value }, profiles.value);
  for (const u of refusedProfiles) log.log('error', u.error.message, { profile: u.profileId, code: u.error.code });
  if (hsm.profile && !hsm.profile.keyProtection.enforced)
    log.log('warn', 'the token does not enforce key protection: for development and tests only', {
      profile: hsm.profile.id,
    });
  const caSigner = await hsm.signer(c.hsm.keys.issuingCa);
  if (!caSigner.ok) return fail2(caSigner);
  const stSigner = await hsm.signer(c.hsm.keys.station);
  if (!stSigner.ok) return fail2(stSigner);
  const caChain = fromPemChain(readFileSync(cfg.path(c.pki.caChain), 'utf8'));
  if (!caChain.ok) return fail2(caChain);
  const stChain = fromPemChain(readFileSync(cfg.path(c.pki.stationChain), 'utf8'));
  if (!stChain.ok) return fail2(stChain);
  const roots: Uint8Array[] = [];
  for (const f of c.pki.attestationRoots) {
    const r = fromPemChain(readFileSync(cfg.path(f), 'utf8'));
    if (!r.ok) return fail2(r);
    roots.push(...r.value);
  }
  // A device certificate never outlives the issuing CA: say so when the CA is too close to its end for a profile.
  for (const p of profiles.value) {
    const capped = caChain.value[0]
      ? lifetimeCappedAt({ certificate: caChain.value[0] }, p.certificate.validityDays, clock.now())
      : null;
    if (capped)
      log.log('warn', 'device certificates are capped at the issuing CA expiry: plan a new issuing CA', {
        profile: p.id,
        validityDays: p.certificate.validityDays,
        issuingCaNotAfter: capped,
      });
  }
  /** A certificate cut to the issuing CA's end (issueDeviceCertificate): logged and audited `certificate.capped`. */
  const caCert = caChain.value[0] ? parseCertificate(caChain.value[0], 'issuing CA certificate') : null;
  const caNotAfter = caCert?.ok ? caCert.value.notAfter.getTime() : null;
  const reportCapped = (rec: StoredRecord) => {
    const cert = store.listIssuedCertificates(rec.chipId).find((x) => x.serialNumber === rec.certificateSerial);
    if (!cert || caNotAfter === null || Date.parse(cert.notAfter) !== caNotAfter) return;
    const detail = { serialNumber: rec.serialNumber, certificateSerial: cert.serialNumber, notAfter: cert.notAfter };
    log.log('warn', 'device certificate capped at the issuing CA expiry', detail);
    store.appendAudit('certificate.capped', { ...detail, recordId: rec.recordId }, rec.runId);
  };
  const station: StationIdentity = {
    id: c.stationId,
    signer: stSigner.value,
    chain: stChain.value,
    caSigner: caSigner.value,
    caChain: caChain.value,
  };

  const woDir = cfg.path(c.paths.workOrdersDir);
  const loadWorkOrders = (): Result<WorkOrder[]> => {
    const out: WorkOrder[] = [];
    for (const f of readdirSync(woDir)
      .filter((n) => n.endsWith('.json'))
      .sort()) {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(join(woDir, f), 'utf8'));
      } catch (e) {
        return fail('INPUT_INVALID', `${f}: not valid JSON (${(e as Error).message})`);
      }
      const w = parseWorkOrder(json, f);
      if (!w.ok) return w;
      out.push(w.value);
    }
    return ok(out);
  };
  const wos = loadWorkOrders();
  if (!wos.ok) return fail2(wos);

  // USB hotplug triggers an immediate re-poll of the ports; on machines without USB it degrades to polling.
  const usb = await createUsbWatcher({ logger: log });
  let sync: SyncService | undefined;
  let registryCert: Uint8Array | null = null;
  let registryTls: Uint8Array | null = null;
  if (c.registry) {
    const cert = readRegistryCertificate(cfg.path(c.registry.certificate));
    if (!cert.ok) return fail2(cert);
    registryCert = cert.value;
    const tls = readRegistryTlsCertificate(cfg);
    if (!tls.ok) return fail2(tls);
    registryTls = tls.value;
    if (c.registry.url) {
      const policy = checkRegistryUrl(c.registry.url, registryTls);
      if (!policy.ok) return fail2(policy);
    }
  }
  // Boards a provisioning attempt is working on (chip id, from its identify progress): their runs do not expire mid-attempt.
  const inFlight = new Map<string, number>();
  const lcR = openLifecycle({
    db: db.lifecycle,
    stationId: c.stationId,
    signer: stSigner.value,
    chain: stChain.value,
    registryUrl: c.registry?.url ?? null,
    registryCertificate: registryCert,
    registryTlsCertificate: registryTls,
    requireQuota: c.lifecycle?.requireQuota ?? false,
    pullIntervalS: c.lifecycle?.pullIntervalS ?? 300,
    ...(c.lifecycle ? { activeRunLifetimeS: c.lifecycle.activeRunLifetimeS } : {}),
    inFlightChips: () => new Set(inFlight.keys()),
    store,
    clock,
    logger: log.child('[lifecycle]'),
    ...(c.revocation ? { revocationUrls: c.revocation } : {}),
  });
  if (!lcR.ok) return fail2(lcR);
  const lifecycle = lcR.value;
  // Work orders: those headquarters signed to this station with its quotas, then the local files whose id it did
  // not sign (docs/lifecycle.md "Work orders from headquarters").
  const workOrders = (): WorkOrder[] => {
    const hq = lifecycle.hqWorkOrders();
    const ids = new Set(hq.map((w) => w.id));
    return [...hq, ...wos.value.filter((w) => !ids.has(w.id))];
  };
  if (c.registry && registryCert) {
    const s = openSync({
      outbox: db.outbox,
      stationId: c.stationId,
      signer: stSigner.value,
      chain: stChain.value,
      registryUrl: c.registry.url ?? null,
      registryCertificate: registryCert,
      registryTlsCertificate: registryTls,
      enabled: c.registry.enabled,
      clock,
      logger: log.child('[sync]'),
      // Bundles carry the queued scrap and failed-issuance events too (docs/sync.md).
      revocationEvents: {
        list: (max) => lifecycle.revocationEvents(max),
        apply: (results, ids) => lifecycle.applyRevocationResults(results, ids),
      },
      // An unsigned 403 AUTH_STATION_REVOKED is not believed: it triggers the signed station-status check.
      onStationRevokedAnswer: () =>
        void lifecycle.checkRevocation().catch((e: unknown) => {
          // e.g. the engine closed meanwhile: the next pull asks again.
          log.log('warn', 'station status check failed', { error: e instanceof Error ? e.message : String(e) });
        }),
    });
    if (!s.ok) {
      lifecycle.close();
      return fail2(s);
    }
    sync = s.value;
  }
  // Active runs whose board never came back within the lifetime end now (their certificates are revoked).
  const expired = await lifecycle.expireActiveRuns();
  if (!expired.ok) log.log('warn', 'expired active runs not ended yet', { code: expired.error.code });
  // Failed-issuance events queued by a run that failed just before a crash are signed now (their payload is fixed).
  const signed = await lifecycle.signFailedIssuances();
  if (!signed.ok) log.log('warn', 'failed-issuance events not signed yet; kept queued', { code: signed.error.code });

  const opener = serialOpener({ logger: log.child('[serial]') });
  const busyPorts = new Set<string>();
  let disco: DeviceDiscovery | null = null;

  const engine: Engine = {
    config: cfg,
    clock,
    store,
    db,
    hsm,
    profiles: profiles.value,
    station,
    ...(sync ? { sync } : {}),
    lifecycle,
    refusedProfiles,
    workOrder(id) {
      const all = workOrders();
      const w = all.find((x) => x.id === id);
      const refused = w && refusedProfiles.find((u) => w.profiles.includes(u.profileId));
      if (refused) return err(refused.error);
      return w ? ok(w) : fail('INPUT_INVALID', `unknown work order ${id} (known: ${all.map((x) => x.id).join(', ')})`);
    },
    listWorkOrders: () => workOrders(),
    async zeroize(req) {
      const wo = engine.workOrder(req.workOrder);
      if (!wo.ok) return wo;
      if (busyPorts.has(req.port))
        return err(stationError('FLOW_BOARD_BUSY', `port ${req.port} is already provisioning`));
      busyPorts.add(req.port);
      const plog = log.child(`[serial ${req.port}]`);
      try {
        const board = await openBoard(opener, req.port, {
          logger: plog,
          clock,
          ...(req.signal ? { signal: req.signal } : {}),
        });
        if (!board.ok) return err(board.error.error);
        try {
          return await zeroizeBoard(
            {
              board: board.value,
              hsm,
              clock,
              logger: plog,
              attestationRoots: roots,
              profiles: profiles.value,
              driverFor,
              workOrder: lifecycle.effectiveWorkOrder(wo.value),
              port: { path: req.port, source: 'configured' },
              random: (n) => new Uint8Array(randomBytes(n)),
            },
            req.signal ? { signal: req.signal } : {},
          );
        } finally {
          await board.value.close();
        }
      } finally {
        busyPorts.delete(req.port);
      }
    },
    async provision(req) {
      const port: DetectedPort = typeof req.port === 'string' ? { path: req.port, source: 'configured' } : req.port;
      const woFile = engine.workOrder(req.workOrder);
      if (!woFile.ok) return woFile;
      // The registry's policy: a revoked station provisions nothing (no board is touched; records from before
      // still sync), a revoked operator cannot provision; its firmware digests replace the file's.
      const stOk = lifecycle.checkStation();
      if (!stOk.ok) {
        req.onProgress?.({
          port: port.path,
          step: 'detect',
          status: 'failed',
          elapsedMs: 0,
          message: stOk.error.message,
        });
        return stOk;
      }
      const opOk = lifecycle.checkOperator(req.operator);
      if (!opOk.ok) return opOk;
      // A board back after its run's lifetime starts a fresh run: the expired one ends first (never resumed).
      const expiredRuns = await lifecycle.expireActiveRuns();
      if (!expiredRuns.ok) return expiredRuns;
      const wo = ok(lifecycle.effectiveWorkOrder(woFile.value));
      if (busyPorts.has(port.path))
        return err(stationError('FLOW_BOARD_BUSY', `port ${port.path} is already provisioning`));
      busyPorts.add(port.path);
      const plog = log.child(`[serial ${port.path}]`);
      /** The board as identify reported it (for a refusal the createRun transaction makes: the quota race). */
      const seen: { board: { chipId: string; serialNumber: string; model: string } | null } = { board: null };
      try {
        const board = await openBoard(opener, port.path, {
          logger: plog,
          clock,
          ...(req.signal ? { signal: req.signal } : {}),
        });
        if (!board.ok) {
          const { step, error } = board.error;
          if (step === 'identify') req.onProgress?.({ port: port.path, step: 'detect', status: 'done', elapsedMs: 0 });
          req.onProgress?.({ port: port.path, step, status: 'failed', elapsedMs: 0, message: error.message });
          return err(error);
        }
        req.onProgress?.({ port: port.path, step: 'detect', status: 'done', elapsedMs: 0 });
        const attempt: { chip: string | null } = { chip: null };
        try {
          const out = await provisionBoard(
            {
              board: req.instrumentBoard ? req.instrumentBoard(board.value) : board.value,
              hsm,
              store,
              clock,
              logger: plog,
              station,
              attestationRoots: roots,
              profiles: profiles.value,
              driverFor,
              workOrder: wo.value,
              operator: req.operator,
              port,
              random: (n) => new Uint8Array(randomBytes(n)),
              newId: () => randomUUID(),
              gate: lifecycle.gate,
              revocationUrls: lifecycle.revocationUrls(),
            },
            {
              ...(req.reprovision ? { reprovision: true } : {}),
              ...(req.supervisor ? { supervisor: req.supervisor } : {}),
              ...(req.expectSerial !== undefined ? { expectSerial: req.expectSerial } : {}),
              ...(req.signal ? { signal: req.signal } : {}),
              onProgress: (e) => {
                // From identify on, the board's run is in flight here (expireActiveRuns leaves it alone).
                if (e.step === 'identify' && e.status === 'done' && e.chipId && e.serialNumber)
                  seen.board = { chipId: e.chipId, serialNumber: e.serialNumber, model: e.model ?? '' };
                if (attempt.chip === null && e.chipId) {
                  attempt.chip = e.chipId;
                  inFlight.set(e.chipId, (inFlight.get(e.chipId) ?? 0) + 1);
                }
                req.onProgress?.(e);
              },
            },
          );
          // A run that failed holding a certificate queued its failed-issuance event (failRun): sign it now, so
          // the background loop can send it (docs/lifecycle.md "Failed issuance").
          const fi = await lifecycle.signFailedIssuances();
          if (!fi.ok) plog.log('warn', 'failed-issuance event not signed yet; kept queued', { code: fi.error.code });
          if (out.ok && out.value.status === 'provisioned') reportCapped(out.value.record);
          return out;
        } finally {
          const chip = attempt.chip;
          if (chip !== null) {
            const n = (inFlight.get(chip) ?? 1) - 1;
            if (n > 0) inFlight.set(chip, n);
            else inFlight.delete(chip);
          }
          await board.value.close();
        }
      } catch (e) {
        // Store methods throw a typed StoreError (database failure or misuse): surface its StationError.
        if (isStoreError(e, 'quota-exhausted')) {
          // Two ports raced for the last unit: the createRun trigger refused the second one.
          plog.log('warn', 'quota used up (refused in the createRun transaction)', { workOrder: req.workOrder });
          const refused = fail('FLOW_QUOTA_EXHAUSTED', `work order ${req.workOrder}: quota used up`, {
            workOrder: req.workOrder,
          });
          // Refused before its run existed, like the flow's own refusals: recorded (docs/audit.md "Refusals").
          try {
            if (seen.board)
              store.recordRefusal({
                ...seen.board,
                port: port.path,
                workOrder: req.workOrder,
                operator: req.operator,
                stationId: station.id,
                code: refused.error.code,
                message: refused.error.message,
                ...(refused.error.params ? { params: refused.error.params } : {}),
                scanned: req.expectSerial ?? null,
              });
          } catch (x) {
            plog.log('error', `store: refusal not recorded: ${(x as Error).message}`);
          }
          return refused;
        }
        if (isStoreError(e)) {
          plog.log('error', `store: ${e.message}`);
          return err(e.error);
        }
        plog.log('error', `bug: ${(e as Error).stack ?? String(e)}`);
        return fail('INTERNAL', (e as Error).message);
      } finally {
        busyPorts.delete(port.path);
      }
    },
    discovery() {
      disco ??= createDiscovery({
        extraPorts: c.ports.extra,
        pollMs: c.ports.pollMs,
        usb,
        logger: log.child('[detect]'),
      });
      return disco;
    },
    usb,
    async close() {
      if (closed) return; // idempotent
      closed = true;
      await sync?.close();
      lifecycle.close();
      usb.close();
      db.close();
      await hsm.close();
      release();
    },
  };
  return ok(engine);
}

/**
 * Refuse to run with an issuing CA or station key that could leave the token (`HsmKeyInfo.unprotected`, e.g. a
 * key generated extractable for the former escrow): docs/hsm.md "Key attributes".
 */
async function keysProtected(hsm: Hsm, labels: readonly string[]): Promise<Result<void>> {
  const info = await hsm.info();
  if (!info.ok) return info;
  for (const label of labels) {
    const k = info.value.keys.find((x) => x.class === 'private' && x.label === label);
    if (k?.unprotected && k.unprotected.length > 0)
      return fail('HSM_KEY_EXPORTABLE', `the key "${label}" can leave the token: ${k.unprotected.join(', ')}`, {
        label,
        attributes: k.unprotected,
      });
  }
  return ok(undefined);
}
