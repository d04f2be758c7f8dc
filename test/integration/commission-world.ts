/**
 * The world of the commissioning tests (test/integration/commission*.test.ts), all real parts: a headquarters
 * registry (`registry init` with its development HQ root, `registry serve` as its own process group on a free port),
 * a station token made the way security staff would (SoftHSM2 by softhsm2-util, or an NSS softoken key database with
 * its user PIN set through PKCS#11: testkit/tokens.ts), `station commission` and the registry CLI run as processes
 * (bin/*.mjs), the board simulator on ptys, and openssl as the independent verifier of chains and CRLs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import type { Logger } from '../../core/ports.js';
import { openStore } from '../../native/store/index.js';
import { openEngine, type Engine } from '../../station/engine.js';
import { createKindToken, type KindToken, type TestTokenKind } from '../../testkit/tokens.js';
import { startSimulator, type SimulatorHandle } from '../sim/simulator.js';

/** The environment of registry processes: never the station's SoftHSM2 configuration. */
function registryEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['SOFTHSM2_CONF'];
  delete env['LINE_STATION_HSM_PIN'];
  return env;
}

export interface Run {
  readonly status: number | null;
  readonly out: string;
  readonly stdout: string;
}

/** `registry <args> --data-dir D` as a process. */
export function registryCli(dir: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, ['bin/registry.mjs', ...args, '--data-dir', dir], {
    encoding: 'utf8',
    env: registryEnv(),
    timeout: 60_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

export interface Hq {
  readonly dir: string;
  readonly url: string;
  readonly registryPem: string;
  readonly hqRootPem: string;
  readonly hqChainPem: string;
  readonly serve: ChildProcess;
  /** A one-time enrolment code for `stationId` (`registry commission-station --id S --json`). */
  code(stationId: string): string;
  stop(): void;
}

/** `registry init` in `dir`, then `registry serve --port 0` in its own process group. */
export async function startHq(dir: string, registryId: string): Promise<Hq> {
  const init = registryCli(dir, 'init', '--registry-id', registryId);
  if (init.status !== 0) throw new Error(`registry init: ${init.out}`);
  const serve = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--data-dir', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: registryEnv(),
    detached: true,
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no listening line: ${buf}`)), 30_000);
    const onData = (c: Buffer) => {
      buf += c.toString();
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    serve.stdout!.on('data', onData);
    serve.stderr!.on('data', onData);
    serve.once('exit', (c) => reject(new Error(`serve exited ${c}: ${buf}`)));
  });
  return {
    dir,
    url,
    registryPem: join(dir, 'registry.pem'),
    hqRootPem: join(dir, 'hq-root.pem'),
    hqChainPem: join(dir, 'hq-chain.pem'),
    serve,
    code(stationId) {
      const r = registryCli(dir, 'commission-station', '--id', stationId, '--json');
      if (r.status !== 0) throw new Error(`commission-station: ${r.out}`);
      return (JSON.parse(r.stdout) as { code: string }).code;
    },
    stop() {
      if (serve.exitCode === null && serve.pid) process.kill(-serve.pid, 'SIGKILL');
    },
  };
}

/** `station commission` arguments naming the token (NSS: its profile and key database directory too). */
export function tokenArgs(tok: KindToken): string[] {
  return [
    '--module',
    tok.module,
    '--token-label',
    tok.tokenLabel,
    ...(tok.kind === 'nss-softoken' ? ['--token-profile', 'nss-softoken', '--token-dir', join(tok.dir, 'nssdb')] : []),
  ];
}

/**
 * `station commission --data-dir D --station-id ID <token> --attestation-root ROOT ... --pin-stdin`: the arguments
 * every commissioning test starts from (`more`: between the attestation root and --pin-stdin, e.g. --port).
 */
export function commissionArgs(o: {
  readonly dataDir: string;
  readonly stationId: string;
  readonly tok: KindToken;
  readonly attestationRoot: string;
  readonly more?: readonly string[];
}): string[] {
  return [
    'commission',
    '--data-dir',
    o.dataDir,
    '--station-id',
    o.stationId,
    ...tokenArgs(o.tok),
    '--attestation-root',
    o.attestationRoot,
    ...(o.more ?? []),
    '--pin-stdin',
  ];
}

/** The environment of station processes: the token's SoftHSM2 configuration, never a registry's. */
export function stationEnv(tok: KindToken, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (tok.kind === 'softhsm2') env['SOFTHSM2_CONF'] = join(tok.dir, 'softhsm2.conf');
  else delete env['SOFTHSM2_CONF'];
  return env;
}

/** `station <args>` as a process, `input` on its stdin. */
export function stationCli(args: string[], env: NodeJS.ProcessEnv, input = ''): Run {
  const r = spawnSync(process.execPath, ['bin/station.mjs', ...args], {
    encoding: 'utf8',
    env,
    input,
    timeout: 90_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

/** `station <args>` started in its own process group (to kill it mid-way), `input` written to its stdin. */
export function spawnStation(args: string[], env: NodeJS.ProcessEnv, input: string): ChildProcess {
  const c = spawn(process.execPath, ['bin/station.mjs', ...args], {
    env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  c.stdin!.end(input);
  return c;
}

/** Kill a process group started by spawnStation/startHq and wait for its leader to exit. */
export async function killGroup(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  process.kill(-c.pid!, 'SIGKILL');
  await exited;
}

/** GET a DER object (CRL) from the registry and write it as PEM `X509 CRL` to `file`. */
export async function fetchCrlPem(url: string, file: string): Promise<void> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  writeFileSync(file, toPem(new Uint8Array(await res.arrayBuffer()), 'X509 CRL'));
}

/** The delegated revocation signer certificates the station issued (its `revocation-signer.issued` audit entries). */
export function revocationSignerPems(dataDir: string): string[] {
  const s = openStore(join(dataDir, 'station.db'));
  if (!s.ok) throw new Error(s.error.message);
  try {
    return s.value
      .listAudit(0, 100_000)
      .filter((e) => e.type === 'revocation-signer.issued')
      .map((e) => String((e.payload as { certificatePem: string }).certificatePem));
  } finally {
    s.value.close();
  }
}

/** Open the commissioned station's engine in this process. */
export async function openStation(dataDir: string, logger: Logger): Promise<Engine> {
  const e = await openEngine({ dataDir, logger });
  if (!e.ok) throw new Error(`${e.error.code}: ${e.error.message}`);
  return e.value;
}

/** A board the engine provisioned: its record (the first one whose serial `seen` did not hold; added to it). */
export interface ProvisionedBoard {
  readonly serial: string;
  readonly recordId: string;
  readonly pem: string;
  readonly keyMode: string;
}

/** Provision the board on `port` (work order WO-DEMO-1, operator op-7) and return the record it made. */
export async function provisionBoard(engine: Engine, port: string, seen: Set<string>): Promise<ProvisionedBoard> {
  const r = await engine.provision({ port, workOrder: 'WO-DEMO-1', operator: 'op-7' });
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  const rec = engine.store.listRecords({}).find((x) => !seen.has(x.serialNumber))!;
  seen.add(rec.serialNumber);
  const j = JSON.parse(rec.recordJson) as { certificate: { pem: string }; key: { mode: string } };
  return { serial: rec.serialNumber, recordId: rec.recordId, pem: j.certificate.pem, keyMode: j.key.mode };
}

/** The device certificate (PEM) and chain of the record of `serial` in the station's database. */
export function deviceCertOf(engine: Engine, serial: string): { cert: string; chain: string[] } {
  const rec = engine.store.listRecords({}).find((r) => r.serialNumber === serial);
  if (!rec) throw new Error(`no record for ${serial}`);
  const j = JSON.parse(rec.recordJson) as { certificate: { pem: string }; chain: string[] };
  return { cert: j.certificate.pem, chain: j.chain };
}

/** What openssl says about a device certificate, three ways (see `opensslCheckDevice`). */
export interface OpensslVerdict {
  /** The station CA's certificate against the HQ root and the HQ CRL (`-crl_check_all`). */
  readonly stationCa: Run;
  /** The device certificate against the station CRL, its path to the HQ root (`-crl_check`). */
  readonly device: Run;
  /**
   * The device certificate with `-crl_check_all` and both CRLs in one run, the station CRL's signer certified by the
   * HQ CA (`GET /v1/hq/crl-signer/S.pem`).
   */
  readonly all: Run;
}

/**
 * openssl (`-extended_crl`; trust = the HQ root only; CRLs fetched now from the registry: the HQ CRL and the
 * station CRL, which the registry signs with the station's delegated revocation signer) on a device certificate:
 * the station CA against the HQ CRL, the device against the station CRL with the station-issued signer certificate,
 * and the whole path in one `-crl_check_all` run with the HQ-certified signer certificate (with the station-issued
 * one openssl would check the signer against the CRL it signed itself and refuse: error 54; docs/lifecycle.md).
 */
export async function opensslCheckDevice(p: {
  work: string;
  hq: Hq;
  stationId: string;
  dataDir: string;
  devicePem: string;
  name: string;
}): Promise<OpensslVerdict> {
  const f = (n: string) => join(p.work, `${p.name}-${n}`);
  writeFileSync(f('dev.pem'), p.devicePem);
  const chain = fromPemChain(readFileSync(join(p.dataDir, 'pki', 'ca-chain.pem'), 'utf8'));
  if (!chain.ok) throw new Error(chain.error.message);
  const pem = (ders: readonly Uint8Array[]) => ders.map((d) => toPem(d, 'CERTIFICATE')).join('');
  writeFileSync(f('station-ca.pem'), pem(chain.value.slice(0, 1)));
  writeFileSync(f('hq-intermediates.pem'), pem(chain.value.slice(1, -1)));
  writeFileSync(f('untrusted.pem'), pem(chain.value.slice(0, -1)) + revocationSignerPems(p.dataDir).join(''));
  await fetchCrlPem(`${p.hq.url}/v1/hq/ca.crl`, f('hq-crl.pem'));
  await fetchCrlPem(`${p.hq.url}/v1/crl/${p.stationId}.crl`, f('station-crl.pem'));
  const signer = await fetch(`${p.hq.url}/v1/hq/crl-signer/${p.stationId}.pem`);
  if (signer.status !== 200) throw new Error(`crl-signer: ${signer.status} ${await signer.text()}`);
  writeFileSync(f('hq-signed.pem'), pem(chain.value.slice(0, -1)) + (await signer.text()));
  const openssl = (args: string[]): Run => {
    const r = spawnSync('openssl', ['verify', '-extended_crl', '-CAfile', p.hq.hqRootPem, ...args], {
      encoding: 'utf8',
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
  };
  const hqIntermediates = chain.value.length > 2 ? ['-untrusted', f('hq-intermediates.pem')] : [];
  const crls = ['-CRLfile', f('hq-crl.pem'), '-CRLfile', f('station-crl.pem')];
  return {
    stationCa: openssl(['-crl_check_all', ...hqIntermediates, '-CRLfile', f('hq-crl.pem'), f('station-ca.pem')]),
    device: openssl(['-crl_check', '-untrusted', f('untrusted.pem'), ...crls, f('dev.pem')]),
    all: openssl(['-crl_check_all', '-untrusted', f('hq-signed.pem'), ...crls, f('dev.pem')]),
  };
}

/** A commissioning test's world: temp dir, registry, station token, simulator (one on-board SE and two basic boards). */
export interface CommissionWorld {
  readonly work: string;
  readonly hq: Hq;
  readonly tok: KindToken;
  readonly sim: SimulatorHandle;
  /** The engine a test opened (closed by teardown). */
  engine: Engine | null;
  teardown(): Promise<void>;
}

/**
 * Make the world: `registry init` + `serve`, the station token of `kind` (SoftHSM2: SOFTHSM2_CONF now points at it),
 * `before(tok)` (e.g. more tokens, made before this process opens one), the simulator, and the PIN as
 * $LINE_STATION_HSM_PIN for the engine this process opens.
 */
export async function createCommissionWorld(o: {
  readonly kind: TestTokenKind;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly registryId: string;
  readonly before?: (tok: KindToken) => Promise<void>;
}): Promise<CommissionWorld> {
  const work = mkdtempSync(join(tmpdir(), `ls-commission-${o.kind}-`));
  const hq = await startHq(join(work, 'hq'), o.registryId);
  const tok = await createKindToken(o.kind, o.tokenLabel, o.pin, { dir: join(work, 'token') });
  await o.before?.(tok);
  process.env['LINE_STATION_HSM_PIN'] = o.pin;
  const sim = await startSimulator({
    dir: join(work, 'ports'),
    stateDir: join(work, 'sim-state'),
    boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-BASIC' }],
  });
  const w: CommissionWorld = {
    work,
    hq,
    tok,
    sim,
    engine: null,
    async teardown() {
      await w.engine?.close();
      await sim.stop();
      hq.stop();
      delete process.env['LINE_STATION_HSM_PIN'];
      rmSync(work, { recursive: true, force: true });
    },
  };
  return w;
}
