/**
 * `registry` commands of the stations feature: init (the registry's data dir, HSM key, certificate and tokens),
 * enroll-station, revoke-station, stations (the list), revoke-operator. Imports core/, registry/setup/hq-ca.ts (its
 * file names) and registry/cli/; the registry services when a command runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { flagOn, str } from '../../core/cli/program.js';
import { fail } from '../../core/errors.js';
import { systemClock } from '../../core/ports.js';
import { HQ_FILES } from '../setup/hq-ca.js';
import { isRevocationReason, REVOCATION_REASONS } from '../../core/lifecycle.js';
import { given, JSON_OPTION, printJson, usage, type RegistryCommand } from '../cli/command.js';
import { answer, reportApi, reportError, reportGuided } from '../cli/report.js';

const init: RegistryCommand = {
  name: 'init',
  summary: 'create the registry: HSM receipt key, certificate, HQ CA (development root), admin and officer tokens',
  details: 'Idempotent. The data dir is created private (0700); the tokens are 0600 files in it, never printed.',
  options: { 'registry-id': { type: 'string', arg: 'ID', help: 'the registry id (default: generated)' } },
  opens: 'data-dir',
  async run(a, { dataDir, logger, out }) {
    const registryId = str(a, 'registry-id');
    const db = str(a, 'db');
    const { initRegistry } = await import('../setup/keys.js');
    const r = await initRegistry({
      dataDir,
      ...(registryId ? { registryId } : {}),
      ...(db ? { db } : {}),
      clock: systemClock,
      logger,
    });
    if (!r.ok) return reportError(out, r.error);
    const c = r.value.config;
    out.log(
      r.value.created
        ? `registry ${c.registryId} initialised in ${dataDir}\n  certificate (give it to stations): ${resolve(dataDir, c.certificate)}\n  HQ root (stations pin it; development root until the offline-root ceremony, docs/deployment.md): ${resolve(dataDir, HQ_FILES.root)}\n  admin token: ${resolve(dataDir, c.adminToken.file)} (0600)\n  security officer token: ${resolve(dataDir, c.securityOfficerToken?.file ?? '')} (0600)`
        : `registry already initialised in ${dataDir} (${c.registryId})`,
    );
    return 'ok';
  },
};

const enroll: RegistryCommand = {
  name: 'enroll-station',
  summary: "enrol a station: its certificate chain (the station's pki/station-chain.pem)",
  options: {
    id: { type: 'string', arg: 'S', help: 'the station id (the CN of its certificate)', required: true },
    chain: { type: 'string', arg: 'FILE', help: 'the station certificate chain (PEM)', required: true },
    'work-orders': { type: 'string', arg: 'W1,W2', help: 'the work orders it may provision' },
  },
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const id = given(a, 'id');
    const chainFile = given(a, 'chain');
    if (!id || !chainFile) return usage('enroll-station needs --id S --chain station-chain.pem');
    if (!existsSync(chainFile)) return reportError(out, fail('INPUT_INVALID', `${chainFile} not found`).error);
    const wo = given(a, 'work-orders');
    const workOrders = wo
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const { enrollStation } = await import('./service.js');
    const r = await enrollStation(ctx, {
      stationId: id,
      chainPem: readFileSync(chainFile, 'utf8'),
      ...(workOrders ? { workOrders } : {}),
    });
    if (!r.ok) return reportApi(out, r.error);
    out.log(
      `${r.value.created ? 'enrolled' : 'already enrolled'}: station ${id} (certificate sha256 ${r.value.station.certificateSha256})`,
    );
    return 'ok';
  },
};

const revoke: RegistryCommand = {
  name: 'revoke-station',
  summary: 'revoke a station and its HQ-issued station CA: its later bundles are refused (its past records stay)',
  details:
    'The station CA certificate goes on the HQ CRL (GET /v1/hq/ca.crl) and OCSP answers revoked, in the same\n' +
    'transaction as the station. A stolen station: --reason keyCompromise.',
  options: {
    reason: {
      type: 'string',
      arg: 'R',
      help: `the station CA's CRL reason: ${REVOCATION_REASONS.join(', ')} (default unspecified)`,
    },
  },
  positionals: [{ name: 'S', help: 'the station id', required: true }],
  opens: 'registry',
  hsm: true,
  async run(a, { ctx, out }) {
    const id = a.positionals[0];
    if (!id) return usage('revoke-station needs a station id');
    const reason = given(a, 'reason');
    if (reason !== undefined && !isRevocationReason(reason))
      return usage(`--reason must be one of ${REVOCATION_REASONS.join(', ')}`);
    const { revokeStation } = await import('./service.js');
    const r = await revokeStation(ctx, id, { actor: 'admin', ...(reason ? { reason } : {}) });
    if (!r.ok) return reportApi(out, r.error);
    out.log(`station ${id} revoked at ${r.value.revokedAt}`);
    return 'ok';
  },
};

const list: RegistryCommand = {
  name: 'stations',
  summary: 'the enrolled stations: HQ-certified or own root, records, last sync, revocation',
  options: { ...JSON_OPTION },
  opens: 'registry',
  hsm: false,
  async run(a, { ctx, out }) {
    const { listStations } = await import('./queries.js');
    const r = await listStations(ctx);
    if (!r.ok) return reportApi(out, r.error);
    if (flagOn(a, 'json')) printJson(out, { stations: r.value });
    else
      for (const s of r.value)
        out.log(
          `${s.stationId.padEnd(24)} ${s.hqCertified ? 'HQ-certified' : 'own root    '}  records ${String(s.records).padStart(7)}  last sync ${s.lastSyncAt ?? '-'}${s.revokedAt ? `  REVOKED ${s.revokedAt}` : ''}`,
        );
    return 'ok';
  },
};

const revokeOperatorCommand: RegistryCommand = {
  name: 'revoke-operator',
  summary: 'revoke an operator: records signed after that are refused',
  options: {
    reason: { type: 'string', arg: 'R', help: 'why (recorded in the lifecycle log)', required: true },
    ...JSON_OPTION,
  },
  positionals: [{ name: 'ID', help: 'the operator id', required: true }],
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    const id = a.positionals[0];
    if (!id) return usage('revoke-operator needs exactly one operator ID');
    const reason = given(a, 'reason');
    if (!reason) return usage('revoke-operator needs --reason R');
    const { revokeOperator } = await import('./operators.js');
    return answer(a, out, await revokeOperator(ctx, role, id, reason), reportGuided, (v) =>
      out.log(`operator ${id} revoked at ${v.revokedAt}: records signed after that are refused`),
    );
  },
};

/** The stations feature's commands, in `registry --help` order. */
export const STATION_COMMANDS: readonly RegistryCommand[] = [init, enroll, revoke, list, revokeOperatorCommand];
