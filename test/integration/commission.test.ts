/**
 * "Done means" of issue 15 on SoftHSM2 (the NSS softoken variant: commission-second-token.test.ts). A station
 * token made with softhsm2-util (not `station init`), `station commission` as a process against a real `registry
 * serve` process:
 *
 * - a wrong enrolment code is refused by the registry; killed (process group) while the registry holds the request,
 *   and again after the registry answered but before the station heard it, the same commissioning resumes with the
 *   same keys and the same request, and the registry gives its stored answer: one station CA, one key pair per label;
 * - a used code is refused; another data dir on the same token is refused (HSM_KEY_EXISTS) with nothing written;
 * - re-running is a no-op; the PIN (stdin) is not in /proc/<pid>/cmdline, the log, the database or config.json;
 * - station doctor pins the HQ root (pki.hqRoot): another root there fails `certificates`;
 * - boards provisioned end to end (simulator on ptys); `openssl verify -crl_check_all -extended_crl` with the HQ root,
 *   the HQ CRL and the station CRL accepts their device certificates; after `registry revoke-station` (CLI) a device
 *   certificate the offline ("stolen") station makes afterwards is rejected by openssl and by `registry import` of
 *   its hand-carried bundle; the issuance invariant holds;
 * - hand-carried: `--out` prints the request SHA-256 the registry prints too; a forged answer (signed by another
 *   key), another station's genuine answer and a wrong `--hq-root` pin are refused with nothing written; the genuine
 *   answer commissions.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootCertificate } from '../../core/pki/ca.js';
import { signJws } from '../../core/pki/jws.js';
import { systemClock } from '../../core/ports.js';
import { initToken } from '../../native/softhsm-dev.js';
import { openHsm } from '../../native/hsm/index.js';
import type { Engine } from '../../station/engine.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import type { KindToken } from '../../testkit/tokens.js';
import { checkIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { createLogger } from '../../native/logger.js';
import type { SimulatorHandle } from '../sim/simulator.js';
import {
  commissionArgs,
  killGroup,
  openStation,
  opensslCheckDevice,
  registryCli,
  spawnStation,
  stationCli,
  stationEnv,
  createCommissionWorld,
  provisionBoard,
  type ProvisionedBoard,
  type CommissionWorld,
  type Hq,
} from './commission-world.js';

const PIN = 'vendor-PIN-7731';
const S = 'line-7-station';
const WRONG_CODE = 'LS-AAAA-BBBB-CCCC-DDDD-EEEE-FFFF';

let world: CommissionWorld;
let work: string;
let hq: Hq;
let tok: KindToken;
let sim: SimulatorHandle;
let engine: Engine | null = null;
const D = () => join(work, 'station');
const cmdlines: string[] = [];
/** The answer the registry gave the first station (kept by the proxy) and the code it used. */
let firstAnswer = '';
let usedCode = '';

/** A proxy in front of the registry that holds the commissioning request: `hold` never forwards it; `forward` sends it on and keeps the answer from the station. */
interface Proxy {
  readonly url: string;
  mode: 'hold' | 'forward';
  readonly bodies: string[];
  readonly answers: string[];
  next(): Promise<void>;
  close(): Promise<void>;
}
async function startProxy(target: string): Promise<Proxy> {
  let wake: (() => void) | null = null;
  const p: Proxy = {
    url: '',
    mode: 'hold',
    bodies: [],
    answers: [],
    next: () => new Promise<void>((r) => (wake = r)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((req: IncomingMessage, _res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      p.bodies.push(body);
      if (p.mode === 'hold') return wake?.();
      void fetch(`${target}${req.url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        .then((r) => r.text())
        .then((t) => {
          p.answers.push(t);
          wake?.();
        });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (p as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return p;
}

const baseArgs = (dataDir: string, t: KindToken, id = S) =>
  commissionArgs({
    dataDir,
    stationId: id,
    tok: t,
    attestationRoot: sim.vendorRootPath,
    more: ['--port', join(work, 'ports', 'board-*')],
  });
const online = (dataDir: string, t: KindToken, url: string, code: string, id = S) => [
  ...baseArgs(dataDir, t, id),
  '--registry',
  url,
  '--registry-cert',
  hq.registryPem,
  '--enrolment-code',
  code,
];
const state = (dataDir: string) =>
  JSON.parse(readFileSync(join(dataDir, 'commission-state.json'), 'utf8')) as {
    phase: string;
    requestId: string;
    request?: string;
  };

/** Private key objects per label in a token (through our own session with the user PIN). */
async function keyCount(t: KindToken, label: string): Promise<number> {
  const h = await openHsm({ ...t.open, pin: t.pin });
  if (!h.ok) throw new Error(h.error.message);
  try {
    const info = await h.value.info();
    if (!info.ok) throw new Error(info.error.message);
    return info.value.keys.filter((k) => k.label === label && k.class === 'private').length;
  } finally {
    await h.value.close();
  }
}
async function certificateObjects(t: KindToken): Promise<number> {
  const h = await openHsm({ ...t.open, pin: t.pin });
  if (!h.ok) throw new Error(h.error.message);
  try {
    const info = await h.value.info();
    if (!info.ok) throw new Error(info.error.message);
    return info.value.keys.filter((k) => k.class === 'certificate').length;
  } finally {
    await h.value.close();
  }
}

/** Record the command line of a running station process (the PIN must never be on it). */
function watchCmdline(pid: number): void {
  try {
    cmdlines.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    /* already gone */
  }
}

beforeAll(async () => {
  world = await createCommissionWorld({
    kind: 'softhsm2',
    tokenLabel: 'Vendor Station',
    pin: PIN,
    registryId: 'hq-commission-test',
    // Two more tokens in the same SoftHSM2 configuration, made now: a token made after the module was initialised
    // in this process stays invisible to it until every session closed.
    before: async (t) => {
      const env = { conf: join(t.dir, 'softhsm2.conf'), tokenDir: join(t.dir, 'tokens'), module: t.module };
      for (const label of ['Vendor Station B', 'Vendor Station C']) {
        const made = await initToken(env, { label, soPin: 'so-pin-0000', pin: PIN });
        if (!made.ok) throw new Error(made.error.message);
      }
    },
  });
  ({ work, hq, tok, sim } = world);
}, 120_000);

afterAll(async () => {
  world.engine = engine;
  await world?.teardown();
});

describe('online commissioning against a registry serve process, on a SoftHSM2 token', () => {
  it('a wrong enrolment code is refused by the registry; the keys and the request are kept for a resume', () => {
    const r = stationCli(online(D(), tok, hq.url, WRONG_CODE), stationEnv(tok), `${PIN}\n`);
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toMatch(/SYNC_REJECTED: POST \/v1\/stations\/commission: registry answered 40\d COMMISSION_REFUSED/);
    expect(existsSync(join(D(), 'config.json'))).toBe(false);
    expect(state(D()).phase).toBe('requested');
  }, 60_000);

  it('killed while the registry holds the request, then after it answered: resumes to one commissioning with the same request', async () => {
    const code = hq.code(S);
    const proxy = await startProxy(hq.url);
    try {
      const before = state(D());
      // 1. the registry (behind the proxy) never sees the request: killed while waiting
      let c = spawnStation(online(D(), tok, proxy.url, code), stationEnv(tok), `${PIN}\n`);
      let got = proxy.next();
      await got;
      watchCmdline(c.pid!);
      await killGroup(c);
      expect(existsSync(join(D(), 'config.json'))).toBe(false);
      // 2. the registry commissions, the answer never reaches the station: killed again
      proxy.mode = 'forward';
      c = spawnStation(online(D(), tok, proxy.url, code), stationEnv(tok), `${PIN}\n`);
      got = proxy.next();
      await got;
      watchCmdline(c.pid!);
      await killGroup(c);
      firstAnswer = (JSON.parse(proxy.answers[0]!) as { answer: string }).answer;
      usedCode = code;
      expect(existsSync(join(D(), 'config.json'))).toBe(false);
      // every attempt sent the same request (the kept JWS) with the same request id
      const sent = proxy.bodies.map((b) => (JSON.parse(b) as { request: string }).request);
      expect(sent).toHaveLength(2);
      expect(new Set([...sent, before.request]).size).toBe(1);
      expect(state(D()).requestId).toBe(before.requestId);
    } finally {
      await proxy.close();
    }
    // 3. directly: the registry answers the same request with its stored answer (the code is used, for this request)
    const r = stationCli(online(D(), tok, hq.url, code), stationEnv(tok), `${PIN}\n`);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(new RegExp(`station ${S} commissioned \\(resumed\\)`));
    expect(r.out).toMatch(/revocation signer certified for registry hq-commission-test/);
    expect(existsSync(join(D(), 'commission-state.json'))).toBe(false);
    for (const label of ['issuing-ca', 'station-signing']) expect(await keyCount(tok, label)).toBe(1);
    const cfg = JSON.parse(readFileSync(join(D(), 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg['hsm']).toMatchObject({
      module: tok.module,
      tokenLabel: 'Vendor Station',
      pin: { env: 'LINE_STATION_HSM_PIN' },
    });
    expect(cfg['registry']).toMatchObject({ url: hq.url, certificate: 'pki/registry.pem', enabled: true });
    expect(cfg['pki']).toMatchObject({ hqRoot: 'pki/hq-root.pem' });
    expect(readFileSync(join(D(), 'pki', 'hq-root.pem'), 'utf8')).toBe(readFileSync(hq.hqRootPem, 'utf8'));
    // the chain: station -> station CA -> HQ chain, verified by openssl against the HQ root alone
    const v = stationCliOpenssl(join(D(), 'pki', 'station-chain.pem'));
    expect(v).toMatch(/OK/);
    const stations = registryCli(hq.dir, 'stations');
    expect(stations.out).toContain(S);
  }, 120_000);

  it('the used code is refused for another data dir; another data dir on the same token is refused before anything is written', async () => {
    const used = usedCode;
    const other = join(work, 'other');
    const same = stationCli(online(other, tok, hq.url, used), stationEnv(tok), `${PIN}\n`);
    expect(same.status).not.toBe(0);
    expect(same.out).toMatch(/HSM_KEY_EXISTS/);
    expect(existsSync(join(other, 'commission-state.json'))).toBe(false);
    expect(existsSync(join(other, 'config.json'))).toBe(false);
    // on a token of its own, the used code reaches the registry and is refused there
    const tokB = { ...tok, tokenLabel: 'Vendor Station B', open: { ...tok.open, tokenLabel: 'Vendor Station B' } };
    const r = stationCli(online(join(work, 'b'), tokB, hq.url, used, 'line-7-other'), stationEnv(tok), `${PIN}\n`);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/COMMISSION_REFUSED/);
    expect(existsSync(join(work, 'b', 'config.json'))).toBe(false);
  }, 60_000);

  it('re-running is a no-op; the PIN is not on a command line, in the log, the database or config.json', () => {
    const cfg = readFileSync(join(D(), 'config.json'));
    const r = stationCli(online(D(), tok, hq.url, WRONG_CODE), stationEnv(tok), `${PIN}\n`);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/already commissioned in .*: nothing to do/);
    expect(readFileSync(join(D(), 'config.json')).equals(cfg)).toBe(true);
    expect(cmdlines.length).toBeGreaterThan(0);
    for (const c of cmdlines) expect(c).not.toContain(PIN);
    for (const f of ['logs/station.log', 'station.db', 'config.json', 'pki/station-chain.pem'])
      expect(readFileSync(join(D(), f)).includes(Buffer.from(PIN)), f).toBe(false);
    expect(readFileSync(join(D(), 'logs', 'station.log'), 'utf8')).toContain('station commissioned');
  });

  it('station doctor pins the HQ root: the chains pass; another root in pki/hq-root.pem fails certificates', () => {
    const env = stationEnv(tok);
    const doctor = () => {
      const r = stationCli(['doctor', '--data-dir', D(), '--json'], env);
      const rep = JSON.parse(r.stdout) as {
        checks: { id: string; status: string; summary: string; details?: unknown }[];
      };
      return rep.checks.find((c) => c.id === 'certificates')!;
    };
    const good = doctor();
    expect(good.status, good.summary).toBe('pass');
    expect(good.details).toMatchObject({ pinnedRootSource: 'pki.hqRoot' });
    const pinned = readFileSync(join(D(), 'pki', 'hq-root.pem'));
    try {
      writeFileSync(join(D(), 'pki', 'hq-root.pem'), readFileSync(sim.vendorRootPath));
      const bad = doctor();
      expect(bad.status).toBe('fail');
      expect(bad.summary).toMatch(/does not chain to the pinned HQ root/);
    } finally {
      writeFileSync(join(D(), 'pki', 'hq-root.pem'), pinned, { mode: 0o600 });
    }
  }, 60_000);
});

describe('provisioning, the HQ CRL and a stolen station', () => {
  const provisioned: ProvisionedBoard[] = [];

  const seen = new Set<string>();
  async function provision(i: number): Promise<ProvisionedBoard> {
    const out = await provisionBoard(engine!, sim.ports[i]!, seen);
    provisioned.push(out);
    return out;
  }

  it('provisions boards; openssl -crl_check_all -extended_crl (the HQ root, the HQ CRL, the station CRL) accepts their certificates', async () => {
    engine = await openStation(D(), createLogger({ file: join(work, 'engine.log'), level: 'debug' }));
    for (const i of [0, 1]) {
      const d = await provision(i);
      const v = await opensslCheckDevice({ work, hq, stationId: S, dataDir: D(), devicePem: d.pem, name: `d${i}` });
      expect(v.stationCa.out).toMatch(/station-ca.pem: OK/);
      expect(v.device.out).toMatch(/dev.pem: OK/);
      expect(v.all.status, v.all.out).toBe(0);
      expect(v.all.out).toMatch(/dev.pem: OK/);
    }
  }, 120_000);

  it('after registry revoke-station, a certificate the offline station makes is rejected by openssl and by registry import', async () => {
    // X.509 times are whole seconds and a certificate issued in the revocation's second counts as made after it
    // (registry/transitions/ingest-hooks.ts): the revocation comes in a later second than the boards provisioned before it.
    await new Promise((r) => setTimeout(r, 1100));
    const rv = registryCli(hq.dir, 'revoke-station', S, '--reason', 'keyCompromise');
    expect(rv.status, rv.out).toBe(0);
    // the stolen station, offline, still issues (it cannot know)
    const after = await provision(2);
    const v = await opensslCheckDevice({ work, hq, stationId: S, dataDir: D(), devicePem: after.pem, name: 'after' });
    expect(v.stationCa.status).not.toBe(0);
    expect(v.stationCa.out).toMatch(/certificate revoked/);
    expect(v.device.out).toMatch(/dev.pem: OK/); // not revoked itself: its CA is
    expect(v.all.status).not.toBe(0);
    expect(v.all.out).toMatch(/error 23 at 1 depth lookup: certificate revoked/);
    // its bundle, carried by hand to headquarters, is refused for the record made after the revocation
    await engine!.close();
    engine = null;
    const bundle = join(work, 'stolen-bundle.json');
    const ex = stationCli(['export', '--data-dir', D(), '--out', bundle], stationEnv(tok));
    expect(ex.status, ex.out).toBe(0);
    const imp = registryCli(hq.dir, 'import', bundle, '--json');
    expect(imp.status, imp.out).toBe(1);
    expect(imp.out).toMatch(/AUTH_STATION_REVOKED/);
    // taking in what it completed before the revocation: the record made afterwards is still refused
    const allow = registryCli(hq.dir, 'import', bundle, '--allow-revoked-station', '--json');
    expect(allow.status, allow.out).toBe(1);
    const res = JSON.parse(allow.stdout) as {
      summary: { accepted: number; rejected: number };
      results: { recordId: string; status: string; reason: string | null }[];
    };
    expect(res.summary).toMatchObject({ accepted: 2, rejected: 1 });
    const refusedOne = res.results.find((x) => x.status === 'rejected')!;
    expect(refusedOne.recordId).toBe(after.recordId);
    expect(refusedOne.reason).toMatch(/REVOKED/);
    for (const before of provisioned.slice(0, 2)) {
      const dev = registryCli(hq.dir, 'device', before.serial);
      expect(dev.status, dev.out).toBe(0);
    }
    expect(registryCli(hq.dir, 'device', after.serial).status).toBe(1);
    // invariant: every certificate the station issued is in one of its records
    const inv = await checkIssuanceInvariant({ dbFile: join(D(), 'station.db') });
    expect(inv.certificates).toBe(3);
    expect(inv.inRecord).toBe(3);
  }, 120_000);
});

describe('hand-carried commissioning', () => {
  const H = () => join(work, 'hand');
  const tokC = () => ({
    ...tok,
    tokenLabel: 'Vendor Station C',
    open: { ...tok.open, tokenLabel: 'Vendor Station C' },
  });
  const ID = 'line-9-station';

  it('--out prints the request SHA-256 the registry prints; forged, foreign and wrongly pinned answers are refused with nothing written; the genuine one commissions', async () => {
    const t = tokC() as KindToken;
    const req = join(work, 'request.jws');
    const out = stationCli([...baseArgs(H(), t, ID), '--out', req], stationEnv(tok), `${PIN}\n`);
    expect(out.status, out.out).toBe(0);
    const sha = createHash('sha256').update(readFileSync(req, 'utf8')).digest('hex');
    expect(out.out).toContain(`request SHA-256 ${sha}`);
    const ansFile = join(work, 'answer.jws');
    const hqSide = registryCli(hq.dir, 'commission-station', '--id', ID, '--request', req, '--out', ansFile, '--json');
    expect(hqSide.status, hqSide.out).toBe(0);
    expect(JSON.parse(hqSide.stdout)).toMatchObject({ stationId: ID, requestSha256: sha, repeated: false });

    const answerArgs = (file: string, extra: string[] = []) => [
      'commission',
      '--data-dir',
      H(),
      '--answer',
      file,
      '--registry-cert',
      hq.registryPem,
      '--pin-stdin',
      ...extra,
    ];
    const nothingWritten = async () => {
      expect(existsSync(join(H(), 'config.json'))).toBe(false);
      expect(existsSync(join(H(), 'pki', 'ca-chain.pem'))).toBe(false);
      expect(await certificateObjects(t)).toBe(0);
    };
    // forged: the genuine payload signed by another key (x5c its own certificate)
    const genuine = readFileSync(ansFile, 'utf8').trim();
    const attacker = await createTestSigner('P-256');
    const attackerCert = await createRootCertificate({
      signer: attacker,
      subject: { commonName: 'registry' },
      validityDays: 1,
      clock: systemClock,
    });
    if (!attackerCert.ok) throw new Error(attackerCert.error.message);
    const payload = Buffer.from(genuine.split('.')[1]!, 'base64url');
    const header = JSON.parse(Buffer.from(genuine.split('.')[0]!, 'base64url').toString('utf8')) as { typ: string };
    const forged = await signJws({
      signer: attacker,
      payload: new Uint8Array(payload),
      header: { typ: header.typ, x5c: [attackerCert.value] },
    });
    if (!forged.ok) throw new Error(forged.error.message);
    writeFileSync(join(work, 'forged.jws'), forged.value);
    let r = stationCli(answerArgs(join(work, 'forged.jws')), stationEnv(tok), `${PIN}\n`);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/COMMISSION_ANSWER_INVALID|SYNC_REGISTRY_UNTRUSTED/);
    await nothingWritten();
    // genuine (the registry signed it), but the first station's answer: its CA is for another key
    expect(firstAnswer).not.toBe('');
    const foreign = join(work, 'foreign-answer.jws');
    writeFileSync(foreign, firstAnswer);
    r = stationCli(answerArgs(foreign), stationEnv(tok), `${PIN}\n`);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/COMMISSION_ANSWER_INVALID/);
    await nothingWritten();
    // the genuine answer, pinned to another HQ root
    r = stationCli(answerArgs(ansFile, ['--hq-root', sim.vendorRootPath]), stationEnv(tok), `${PIN}\n`);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/COMMISSION_ANSWER_INVALID: .*pinned root/);
    await nothingWritten();
    // the genuine answer, pinned to the right root
    r = stationCli(answerArgs(ansFile, ['--hq-root', hq.hqRootPem]), stationEnv(tok), `${PIN}\n`);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(new RegExp(`station ${ID} commissioned`));
    const cfg = JSON.parse(readFileSync(join(H(), 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg['registry']).toEqual({ certificate: 'pki/registry.pem', enabled: true });
    expect(stationCliOpenssl(join(H(), 'pki', 'station-chain.pem'))).toMatch(/OK/);
    expect(await certificateObjects(t)).toBe(3);
  }, 120_000);
});

/** openssl verify of a PEM chain file (leaf first) against the HQ root alone; its output. */
function stationCliOpenssl(chainFile: string): string {
  const pems = readFileSync(chainFile, 'utf8')
    .split(/(?<=-----END CERTIFICATE-----\n)/)
    .filter((x) => x.trim());
  writeFileSync(join(work, 'leaf.pem'), pems[0]!);
  writeFileSync(join(work, 'mid.pem'), pems.slice(1, -1).join(''));
  const args = ['verify', '-x509_strict', '-CAfile', hq.hqRootPem];
  if (pems.length > 2) args.push('-untrusted', join(work, 'mid.pem'));
  const r = spawnSync('openssl', [...args, join(work, 'leaf.pem')], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}
