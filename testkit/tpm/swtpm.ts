/**
 * Test support: real TPM 2.0s from swtpm (Debian `swtpm`, `swtpm-tools`, `tpm2-tools`), manufactured, started and
 * stopped per test, with nothing written outside the caller's directory (no /var/lib/swtpm-localca, no $HOME).
 *
 * - `manufactureTpm` runs `swtpm_setup --tpm2 --create-ek-cert` with its own swtpm_setup.conf and a local CA
 *   (`swtpm_localca`) whose state lives in a directory the caller names: TPMs manufactured with the same `localca`
 *   share one vendor root (the station's trusted TPM vendor root in tests); a second directory makes a second,
 *   untrusted vendor. swtpm 0.7.1 makes an RSA 2048 EK (certificate at NV 0x01c00002, TCG EK Credential Profile
 *   template L-1, persisted at 0x81010001) and an ECC **NIST P-384** EK (high-range template H-3, certificate at
 *   0x01c00016, persisted at 0x81010016). For the ECC P-256 EK the station's contract names (template L-2,
 *   certificate at 0x01c0000a) it then does what a TPM vendor does at manufacture, with tpm2-tools (not our code):
 *   creates the L-2 EK, has the same local CA certify it, and writes the certificate into a platform-created NV
 *   index with the attributes swtpm_setup uses for its own EK certificates.
 * - `startSwtpm` serves a manufactured TPM on a free TCP port pair and gives a `TpmTransmit` to its data port.
 * - `tpm2tools` runs tpm2-tools against a running swtpm (the independent cross-check).
 *
 * Measured here: manufacture ~1.2 s (RSA + ECC P-384) + ~0.3 s for the P-256 EK; start ~50 ms.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, readdir } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fail, stationError } from '../../core/errors.js';
import type { CallOptions } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { TPM_MAX_COMMAND_SIZE, type TpmTransmit } from '../../core/tpm/transport.js';

const run = promisify(execFile);
const HAVE_SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

/** EK kinds a manufactured TPM carries a certificate for (RSA 2048 always; `ecc` adds the P-256 EK). */
export type EkKind = 'rsa' | 'ecc';

/** NV indices of the EK certificates (TCG EK Credential Profile §2.2). */
export const EK_CERT_NV = {
  /** RSA 2048 EK certificate, low range (template L-1). */
  rsa2048: 0x01c00002,
  /** ECC NIST P-256 EK certificate, low range (template L-2). */
  eccP256: 0x01c0000a,
  /** ECC NIST P-384 EK certificate, high range (template H-3): what swtpm_setup 0.7.1 makes for its ECC EK. */
  eccP384: 0x01c00016,
} as const;

/** The local CA that signed a TPM's EK certificates (files under `dir`). */
export interface LocalCa {
  readonly dir: string;
  /** Self-signed root (PEM and DER paths). */
  readonly rootCertPem: string;
  readonly rootCertDer: string;
  /** Intermediate that signs the EK certificates (PEM and DER paths). */
  readonly issuerCertPem: string;
  readonly issuerCertDer: string;
}

export interface ManufacturedTpm {
  /** The directory given to `manufactureTpm` (pass it to `startSwtpm`). */
  readonly dir: string;
  /** swtpm's state directory (`dir/state`). */
  readonly stateDir: string;
  readonly ca: LocalCa;
  /** EK certificates (DER) as written into NV, by kind. `eccP384` is swtpm_setup's own ECC EK. */
  readonly ekCerts: { readonly rsa2048: Uint8Array; readonly eccP384: Uint8Array; readonly eccP256?: Uint8Array };
}

export interface ManufactureOptions {
  /** The TPM's directory (created if missing); everything swtpm_setup writes lands here. */
  readonly dir: string;
  /** EK certificates to provide (default both). RSA 2048 and ECC P-384 are always made by swtpm_setup. */
  readonly ek?: readonly EkKind[];
  /** The local CA's directory (default `dir/localca`). Share it between TPMs for one vendor root. */
  readonly localca?: string;
}

function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error('no PEM certificate');
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

async function writeIfMissing(path: string, text: string): Promise<void> {
  if (!existsSync(path)) await writeFile(path, text, { flag: 'wx' }).catch(() => undefined);
}

/** Write the local CA's config files (idempotent). swtpm_localca creates its keys on first use. */
async function prepareLocalCa(dir: string): Promise<{ conf: string; options: string }> {
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'swtpm-localca.conf');
  const options = join(dir, 'swtpm-localca.options');
  await writeIfMissing(
    conf,
    [
      `statedir = ${dir}`,
      `signingkey = ${join(dir, 'signkey.pem')}`,
      `issuercert = ${join(dir, 'issuercert.pem')}`,
      `certserial = ${join(dir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  await writeIfMissing(
    options,
    ['--platform-manufacturer LineStation', '--platform-version 2.1', '--platform-model swtpm', ''].join('\n'),
  );
  return { conf, options };
}

async function localCaFiles(dir: string): Promise<LocalCa> {
  const rootPem = join(dir, 'swtpm-localca-rootca-cert.pem');
  const issuerPem = join(dir, 'issuercert.pem');
  const rootDer = join(dir, 'rootca-cert.der');
  const issuerDer = join(dir, 'issuercert.der');
  await writeFile(rootDer, pemToDer(await readFile(rootPem, 'utf8')));
  await writeFile(issuerDer, pemToDer(await readFile(issuerPem, 'utf8')));
  return { dir, rootCertPem: rootPem, rootCertDer: rootDer, issuerCertPem: issuerPem, issuerCertDer: issuerDer };
}

/** Minimal TPM2B_PUBLIC (ECC) reader for the manufacturing step: x and y of the unique field. */
function eccUniqueXY(tpm2bPublic: Uint8Array): { x: string; y: string } {
  const b = Buffer.from(tpm2bPublic);
  let o = 2; // TPM2B size
  if (b.readUInt16BE(o) !== 0x0023) throw new Error('not an ECC public area');
  o += 2 + 2 + 4; // type, nameAlg, objectAttributes
  o += 2 + b.readUInt16BE(o); // authPolicy
  const sym = b.readUInt16BE(o);
  o += 2 + (sym === 0x0010 ? 0 : 4);
  const scheme = b.readUInt16BE(o);
  o += 2 + (scheme === 0x0010 ? 0 : 2);
  o += 2; // curveID
  const kdf = b.readUInt16BE(o);
  o += 2 + (kdf === 0x0010 ? 0 : 2);
  const xl = b.readUInt16BE(o);
  const x = b.subarray(o + 2, o + 2 + xl).toString('hex');
  o += 2 + xl;
  const yl = b.readUInt16BE(o);
  const y = b.subarray(o + 2, o + 2 + yl).toString('hex');
  return { x, y };
}

/**
 * Manufacture a TPM under `dir`: swtpm_setup with its own config, EK certificates from the local CA in
 * `localca` (default `dir/localca`), plus the ECC P-256 EK certificate at 0x01c0000a when `ek` has 'ecc'.
 * Throws on failure (test support).
 */
export async function manufactureTpm(opts: ManufactureOptions): Promise<ManufacturedTpm> {
  const { dir } = opts;
  const ek = opts.ek ?? ['rsa', 'ecc'];
  const caDir = opts.localca ?? join(dir, 'localca');
  const stateDir = join(dir, 'state');
  const certDir = join(dir, 'ek-certs');
  await mkdir(stateDir, { recursive: true });
  await mkdir(certDir, { recursive: true });
  const { conf, options } = await prepareLocalCa(caDir);
  const setupConf = join(dir, 'swtpm_setup.conf');
  await writeFile(
    setupConf,
    [
      'create_certs_tool = /usr/bin/swtpm_localca',
      `create_certs_tool_config = ${conf}`,
      `create_certs_tool_options = ${options}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  const env = { ...process.env, XDG_CONFIG_HOME: dir };
  try {
    await run(
      'swtpm_setup',
      [
        '--tpm2',
        '--tpmstate',
        stateDir,
        '--create-ek-cert',
        '--config',
        setupConf,
        '--overwrite',
        '--write-ek-cert-files',
        certDir,
        '--logfile',
        join(dir, 'swtpm_setup.log'),
      ],
      { env, timeout: 60_000 },
    );
  } catch (e) {
    const log = await readFile(join(dir, 'swtpm_setup.log'), 'utf8').catch(() => '');
    throw new Error(`swtpm_setup failed: ${(e as Error).message}\n${log}`);
  }
  const files = await readdir(certDir);
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(join(certDir, name)));
  const rsaName = files.find((f) => f.startsWith('ek-rsa2048'));
  const p384Name = files.find((f) => f.startsWith('ek-secp384r1'));
  if (!rsaName || !p384Name) throw new Error(`swtpm_setup wrote unexpected EK certificates: ${files.join(', ')}`);
  const ekCerts: { rsa2048: Uint8Array; eccP384: Uint8Array; eccP256?: Uint8Array } = {
    rsa2048: await read(rsaName),
    eccP384: await read(p384Name),
  };
  if (ek.includes('ecc')) ekCerts.eccP256 = await provisionEccP256Ek(dir, stateDir, conf, options, env);
  return { dir, stateDir, ca: await localCaFiles(caDir), ekCerts };
}

/** The vendor step for the L-2 ECC P-256 EK: create it, certify it with the local CA, write the certificate to NV. */
async function provisionEccP256Ek(
  dir: string,
  stateDir: string,
  conf: string,
  options: string,
  env: NodeJS.ProcessEnv,
): Promise<Uint8Array> {
  const tpm = await startSwtpm({ dir, stateDir });
  try {
    const tools = tpm2tools(tpm);
    const pub = join(dir, 'ek-p256.pub');
    await tools('tpm2_createek', ['-c', '-', '-G', 'ecc', '-u', pub]);
    const { x, y } = eccUniqueXY(new Uint8Array(await readFile(pub)));
    const out = join(dir, 'ek-p256');
    await mkdir(out, { recursive: true });
    await run(
      'swtpm_localca',
      [
        '--type',
        'ek',
        '--ek',
        `x=${x},y=${y},id=secp256r1`,
        '--dir',
        out,
        '--tpm-spec-family',
        '2.0',
        '--tpm-spec-level',
        '0',
        '--tpm-spec-revision',
        '164',
        '--tpm-manufacturer',
        'id:00001014',
        '--tpm-model',
        'swtpm',
        '--tpm-version',
        'id:20191023',
        '--tpm2',
        '--configfile',
        conf,
        '--optsfile',
        options,
      ],
      { env, timeout: 60_000 },
    );
    const cert = new Uint8Array(await readFile(join(out, 'ek.cert')));
    const index = `0x${EK_CERT_NV.eccP256.toString(16).padStart(8, '0')}`;
    // Same attributes as swtpm_setup's EK certificate indices (0x42072001 before the first write).
    const attrs = 'ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate';
    await tools('tpm2_nvdefine', [index, '-C', 'p', '-s', String(cert.length), '-a', attrs]);
    const certFile = join(dir, 'ek-certs', 'ek-secp256r1.crt');
    await writeFile(certFile, cert);
    await tools('tpm2_nvwrite', [index, '-C', 'p', '-i', certFile]);
    return cert;
  } finally {
    await tpm.stop();
  }
}

export interface RunningSwtpm {
  readonly port: number;
  readonly ctrlPort: number;
  /** The real swtpm process id. */
  readonly pid: number;
  /** Raw TPM 2.0 commands to the data port, one at a time (a fresh connection per command). */
  readonly transmit: TpmTransmit;
  /** Kill the swtpm process (SIGTERM, SIGKILL after 2 s) and wait for it to exit. Idempotent. */
  stop(): Promise<void>;
}

/** A TCP port P such that P and P+1 were both free a moment ago (bind to port 0, then probe P+1). */
async function freePortPair(): Promise<number> {
  const listen = (port: number): Promise<ReturnType<typeof createServer> | undefined> =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(s));
    });
  const close = (s: ReturnType<typeof createServer>): Promise<void> => new Promise((r) => s.close(() => r()));
  for (let i = 0; i < 50; i++) {
    const a = await listen(0);
    if (!a) continue;
    const port = (a.address() as { port: number }).port;
    const b = port < 65535 ? await listen(port + 1) : undefined;
    await close(a);
    if (b) {
      await close(b);
      return port;
    }
  }
  throw new Error('no free TCP port pair');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Start swtpm on a manufactured TPM (`dir` as given to `manufactureTpm`; `stateDir` defaults to `dir/state`):
 * `swtpm socket --tpm2 --server type=tcp,port=P --ctrl type=tcp,port=P+1 --flags not-need-init,startup-clear`.
 * Resolves once the data port accepts connections. Throws if swtpm cannot be started (test support).
 */
export async function startSwtpm(opts: { dir: string; stateDir?: string }): Promise<RunningSwtpm> {
  const stateDir = opts.stateDir ?? join(opts.dir, 'state');
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePortPair();
    // Where util-linux setpriv exists it sets PR_SET_PDEATHSIG and execs swtpm (same pid): swtpm then dies with
    // this process even on SIGKILL (a killed test or simulator leaves no TPM behind; test/sim/pty.ts does the same).
    const child = spawn(
      HAVE_SETPRIV ? 'setpriv' : 'swtpm',
      [
        ...(HAVE_SETPRIV ? ['--pdeathsig', 'KILL', '--', 'swtpm'] : []),
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${stateDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
        '--log',
        `file=${join(opts.dir, 'swtpm.log')},level=1`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
    child.once('error', (e) => (stderr += e.message));
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline && !(await canConnect(port))) await sleep(20);
    if (!exited && child.pid !== undefined && Date.now() < deadline) {
      return runningSwtpm(child, child.pid, port, exit);
    }
    if (!exited) child.kill('SIGKILL');
    await exit;
    lastError = stderr; // most likely the port pair was taken in between: try another
  }
  throw new Error(`swtpm did not start: ${lastError}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function runningSwtpm(child: ChildProcess, pid: number, port: number, exit: Promise<void>): RunningSwtpm {
  let stopped = false;
  return {
    port,
    ctrlPort: port + 1,
    pid,
    transmit: serialised((command, opts) => transmitTcp(port, command, opts)),
    async stop() {
      if (!stopped) {
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
          await exit;
          clearTimeout(timer);
        }
      }
      await exit;
    },
  };
}

/** One command at a time: each call waits for the previous one to settle. */
export function serialised(transmit: TpmTransmit): TpmTransmit {
  let tail: Promise<unknown> = Promise.resolve();
  return (command, opts) => {
    const next = tail.then(() => transmit(command, opts));
    tail = next.catch(() => undefined);
    return next;
  };
}

const HEADER = 10;

/** Send one command over a fresh TCP connection; read the response to the size in its header. */
export function transmitTcp(port: number, command: Uint8Array, opts?: CallOptions): Promise<Result<Uint8Array>> {
  if (command.length < HEADER || command.length > TPM_MAX_COMMAND_SIZE) {
    return Promise.resolve(
      fail('PROTOCOL_REQUEST_TOO_LARGE', `TPM command of ${command.length} bytes (10..${TPM_MAX_COMMAND_SIZE})`),
    );
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    let done = false;
    const conn: { socket?: Socket } = {};
    const finish = (r: Result<Uint8Array>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts?.signal?.removeEventListener('abort', onAbort);
      conn.socket?.destroy();
      resolve(r);
    };
    const onAbort = (): void => finish(fail('FLOW_CANCELLED', 'TPM command cancelled'));
    const timer = setTimeout(
      () => finish(fail('PROTOCOL_TIMEOUT', `swtpm on port ${port} did not answer in time`)),
      opts?.timeoutMs ?? 30_000,
    );
    if (opts?.signal?.aborted) return onAbort();
    opts?.signal?.addEventListener('abort', onAbort, { once: true });
    const socket = createConnection({ port, host: '127.0.0.1' });
    conn.socket = socket;
    socket.once('connect', () => socket.write(command));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got < HEADER) return;
      const all = Buffer.concat(chunks);
      const size = all.readUInt32BE(2);
      if (size < HEADER || size > TPM_MAX_COMMAND_SIZE) {
        return finish(
          fail('TPM_RESPONSE_MALFORMED', `TPM response header announces ${size} bytes`, { announced: size }),
        );
      }
      if (got > size) {
        return finish(fail('TPM_RESPONSE_MALFORMED', `TPM response longer than announced (${got} > ${size})`));
      }
      if (got === size) finish(ok(new Uint8Array(all)));
    });
    socket.once('error', (e) =>
      finish({ ok: false, error: stationError('LINK_DISCONNECTED', `swtpm on port ${port}: ${e.message}`) }),
    );
    socket.once('close', () =>
      finish(fail('LINK_DISCONNECTED', `swtpm on port ${port} closed the connection after ${got} bytes`)),
    );
  });
}

/** Output of one tpm2-tools command. */
export interface ToolOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * tpm2-tools against a running swtpm (TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=P): `tools('tpm2_nvread',
 * ['0x01c00002', '-C', 'o', '-o', file])`. Throws with stderr on a non-zero exit (test support).
 */
export function tpm2tools(tpm: {
  readonly port: number;
}): (tool: string, args: readonly string[]) => Promise<ToolOutput> {
  const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${tpm.port}` };
  return async (tool, args) => {
    if (!/^tpm2_[a-z_]+$/.test(tool)) throw new Error(`not a tpm2-tools command: ${tool}`);
    try {
      const { stdout, stderr } = await run(tool, [...args], { env, timeout: 60_000 });
      return { stdout, stderr };
    } catch (e) {
      const x = e as Error & { stderr?: string };
      throw new Error(`${tool} ${args.join(' ')} failed: ${x.stderr ?? x.message}`);
    }
  };
}

/**
 * Put a running TPM into dictionary-attack lockout, with tpm2-tools (a fault for tests): lower the DA policy to
 * `maxTries` failures and a long recovery, then fail that many authorisations on a password-protected NV index.
 * Afterwards TPM_PT_PERMANENT has inLockout and DA-protected authorisations answer TPM_RC_LOCKOUT.
 */
export async function induceLockout(tpm: { readonly port: number }, maxTries = 2): Promise<void> {
  const tools = tpm2tools(tpm);
  const index = '0x015000ff';
  await tools('tpm2_dictionarylockout', ['-s', '-n', String(maxTries), '-t', '3600', '-l', '3600']);
  await tools('tpm2_nvdefine', [index, '-C', 'o', '-s', '8', '-a', 'authread|authwrite', '-p', 'lockout-fault']);
  for (let i = 0; i < maxTries; i++) {
    await tools('tpm2_nvread', [index, '-C', index, '-P', 'wrong', '-s', '8']).catch(() => undefined);
  }
}
