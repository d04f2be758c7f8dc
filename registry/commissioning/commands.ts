/**
 * `registry` commands of commissioning (docs/registry-api.md "Commissioning"): `commission-station` (a one-time
 * enrolment code for a station, or the hand-carried request → answer) and `hq-ca` (the HQ CA in the registry token:
 * `init` for a development root, `request` / `install` for the offline-root ceremony, `show`). Imports core/,
 * registry/setup (HQ_FILES), registry/cli; the services, keys and HQ CA when a command runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { flagOn, str } from '../../core/cli/program.js';
import { DEFAULT_ORGANIZATION } from '../../core/hq/commission-defaults.js';
import { fail } from '../../core/errors.js';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { HQ_FILES } from '../setup/hq-ca.js';
import {
  fileProblem,
  given,
  JSON_OPTION,
  printJson,
  usage,
  type Outcome,
  type RegistryCommand,
} from '../cli/command.js';
import { reportApi, reportError } from '../cli/report.js';

/** How long an enrolment code is valid unless `--valid-hours` says (hours; at most the service's MAX_CODE_HOURS). */
export const DEFAULT_CODE_HOURS = 24;

const list = (s: string | undefined): string[] =>
  (s ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

const commissionStation: RegistryCommand = {
  name: 'commission-station',
  summary: 'commission a station: a one-time enrolment code (online), or answer a hand-carried request',
  details:
    'Online: `--id S [--work-orders W1,W2] [--valid-hours H]` prints a one-time enrolment code ONCE (stored hashed,\n' +
    'never logged) for `station commission --registry URL --enrolment-code CODE`.\n' +
    'Hand-carried: `--id S --request R --out A [--work-orders W1,W2]` checks the request, issues the station CA with\n' +
    'the HQ CA key, enrols the station and writes the answer; it prints the request SHA-256 and station id: compare\n' +
    'them with what the station printed before giving the answer back.',
  options: {
    id: { type: 'string', arg: 'S', help: 'the station id', required: true },
    'work-orders': { type: 'string', arg: 'W1,W2', help: 'the work orders it may provision (default: any)' },
    'valid-hours': { type: 'string', arg: 'H', help: `how long the code is valid (default ${DEFAULT_CODE_HOURS})` },
    request: { type: 'string', arg: 'R', help: 'the station’s request file (hand-carried)' },
    out: { type: 'string', arg: 'A', help: 'where to write the answer (hand-carried)' },
    ...JSON_OPTION,
  },
  opens: 'registry',
  hsm: true,
  async run(a, { ctx, out }): Promise<Outcome> {
    const id = given(a, 'id');
    if (!id) return usage('commission-station needs --id S');
    const workOrders = list(given(a, 'work-orders'));
    const requestFile = given(a, 'request');
    if (requestFile === undefined) {
      if (given(a, 'out')) return usage('--out goes with --request (the hand-carried path)');
      const h = given(a, 'valid-hours');
      const validHours = h === undefined ? DEFAULT_CODE_HOURS : /^[0-9]{1,4}$/.test(h) ? Number(h) : NaN;
      const { issueEnrolmentCode } = await import('./service.js');
      const r = await issueEnrolmentCode(ctx, { stationId: id, workOrders, validHours });
      if (!r.ok) return reportApi(out, r.error);
      if (flagOn(a, 'json')) printJson(out, r.value);
      else
        out.log(
          `enrolment code for station ${id} (valid until ${r.value.expiresAt}, once):\n  ${r.value.code}\n` +
            `give it to the station's commissioning officer: station commission --registry URL --registry-cert registry.pem --enrolment-code CODE`,
        );
      return 'ok';
    }
    const outFile = given(a, 'out');
    if (!outFile) return usage('the hand-carried path needs --request R --out A');
    if (given(a, 'valid-hours')) return usage('--valid-hours is for enrolment codes, not with --request');
    let requestJws: string;
    try {
      requestJws = readFileSync(requestFile, 'utf8');
    } catch (e) {
      return reportError(out, fail('INPUT_INVALID', `${requestFile}: ${fileProblem(e)}`).error);
    }
    const { commissionByAdmin } = await import('./service.js');
    const r = await commissionByAdmin(ctx, { stationId: id, requestJws, workOrders });
    if (!r.ok) return reportApi(out, r.error);
    try {
      writeFileAtomic(resolve(outFile), r.value.answer + '\n', 0o644);
    } catch (e) {
      return reportError(out, fail('INPUT_INVALID', `${outFile}: ${fileProblem(e)}`).error);
    }
    const v = { ...r.value, answerFile: resolve(outFile) };
    if (flagOn(a, 'json'))
      printJson(out, {
        stationId: v.stationId,
        requestSha256: v.requestSha256,
        stationCaSha256: v.stationCaSha256,
        repeated: v.repeated,
        answerFile: v.answerFile,
      });
    else
      out.log(
        `station ${v.stationId} ${v.repeated ? 'was already commissioned with this request (the same answer)' : 'commissioned'}\n` +
          `  request sha256 ${v.requestSha256}  (compare with what the station printed)\n` +
          `  station CA sha256 ${v.stationCaSha256}\n  answer: ${v.answerFile}`,
      );
    return 'ok';
  },
};

const hqCa: RegistryCommand = {
  name: 'hq-ca',
  summary: 'the HQ CA in the registry token: init (development root), request / install (offline root), show',
  details:
    'init: the HQ CA key and a self-signed development root (idempotent; registry init does it).\n' +
    'request --out hq-ca.csr: a PKCS#10 request for the token key (made if absent) for the offline root.\n' +
    'install --chain chain.pem: the HQ CA certificate first, the offline root last; checked (the token key, a CA,\n' +
    `chains to the root), then ${HQ_FILES.chain} and ${HQ_FILES.root} in the data dir are replaced.\n` +
    `show: the HQ chain and the root's SHA-256 (what stations pin).`,
  options: {
    out: { type: 'string', arg: 'FILE', help: 'request: where to write the CSR (PEM)' },
    chain: { type: 'string', arg: 'FILE', help: 'install: the HQ CA certificate chain (PEM, root last)' },
    ...JSON_OPTION,
  },
  positionals: [{ name: 'ACTION', help: 'init | request | install | show', required: true }],
  opens: 'config',
  async run(a, { dataDir, logger, out, config }): Promise<Outcome> {
    const action = a.positionals[0];
    if (!action || !['init', 'request', 'install', 'show'].includes(action))
      return usage('hq-ca needs an action: init, request, install or show');
    const [{ openRegistryKeys }, { initDevHqCa, installHqCa, requestHqCa }] = await Promise.all([
      import('../setup/keys.js'),
      import('../setup/hq-ca.js'),
    ]);
    const keys = await openRegistryKeys(dataDir, logger);
    if (!keys.ok) return reportError(out, keys.error);
    const organization = config.commissioning?.organization ?? DEFAULT_ORGANIZATION;
    try {
      if (action === 'init') {
        const r = await initDevHqCa({
          dataDir,
          hsm: keys.value.hsm,
          registryId: config.registryId,
          organization,
          clock: systemClock,
        });
        if (!r.ok) return reportError(out, r.error);
        out.log(
          r.value.created
            ? `development HQ root created: ${resolve(dataDir, HQ_FILES.root)}`
            : 'the HQ CA exists already',
        );
        return 'ok';
      }
      if (action === 'request') {
        const file = str(a, 'out');
        if (!file) return usage('hq-ca request needs --out FILE');
        const r = await requestHqCa({ hsm: keys.value.hsm, registryId: config.registryId, organization });
        if (!r.ok) return reportError(out, r.error);
        writeFileAtomic(resolve(file), toPem(r.value.csr, 'CERTIFICATE REQUEST'), 0o644);
        out.log(
          `HQ CA request written to ${resolve(file)} (key sha256 ${r.value.publicKeySha256}): sign it with the offline root (a CA certificate, pathLen >= 1), then registry hq-ca install --chain chain.pem`,
        );
        return 'ok';
      }
      if (action === 'install') {
        const file = str(a, 'chain');
        if (!file) return usage('hq-ca install needs --chain FILE');
        if (!existsSync(file)) return reportError(out, fail('INPUT_INVALID', `${file} not found`).error);
        const r = await installHqCa({
          dataDir,
          hsm: keys.value.hsm,
          chainPem: readFileSync(file, 'utf8'),
          now: systemClock.now(),
        });
        if (!r.ok) return reportError(out, r.error);
        if (flagOn(a, 'json')) printJson(out, r.value);
        else out.log(`HQ CA installed (valid until ${r.value.notAfter}); HQ root sha256 ${r.value.rootSha256}`);
        return 'ok';
      }
      if (!keys.value.hqCa.ok) return reportError(out, keys.value.hqCa.error);
      const hq = keys.value.hqCa.value;
      if (flagOn(a, 'json'))
        printJson(out, { rootSha256: hq.rootSha256, chain: hq.chain.map((d) => toPem(d, 'CERTIFICATE')) });
      else
        out.log(
          `HQ root sha256 ${hq.rootSha256} (${hq.chain.length} certificate(s) in ${resolve(dataDir, HQ_FILES.chain)})`,
        );
      return 'ok';
    } finally {
      await keys.value.close();
    }
  },
};

/** The commissioning feature's commands. */
export const COMMISSIONING_COMMANDS: readonly RegistryCommand[] = [commissionStation, hqCa];
