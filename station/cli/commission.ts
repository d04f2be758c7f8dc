/**
 * `station commission`: commission this station on an existing PKCS#11 token (station/commission/): online with a
 * one-time enrolment code (`--registry URL --registry-cert PEM --enrolment-code C`), or hand-carried (`--out
 * request.jws`, then `--answer answer.jws --registry-cert PEM`). The PIN comes from stdin (`--pin-stdin`, not
 * echoed at a terminal), a 0600 file (`--pin-file`) or the environment (`--pin-env NAME`, default
 * LINE_STATION_HSM_PIN); never from the command line. config.json records the source, never the PIN. Also the
 * registry options `station init` shares. Imports core/, station/ (commission) and sibling command modules.
 */
import { resolve } from 'node:path';
import { flagOn, list, positiveInt, str, type Io, type ParsedArgs } from '../../core/cli/program.js';
import { fromPem } from '../../core/pki/pem.js';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import type { CommissionAuthority, CommissionOutcome } from '../commission/commission.js';
import type { CommissionTokenRef } from '../commission/token.js';
import { readArgFile, withSetup, type CommandSetup, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';
import { readSecret, readStdin } from './pin-input.js';

export { DEFAULT_PIN_ENV, ENROLMENT_CODE_ENV, REGISTRY_OPTIONS } from './commission-options.js';
import { DEFAULT_PIN_ENV, ENROLMENT_CODE_ENV, REGISTRY_OPTIONS } from './commission-options.js';

/** A PEM certificate named on the command line (DER), or INPUT_INVALID. */
function certArg(file: string, io: Io): Result<Uint8Array> {
  const text = readArgFile(file, io);
  if (text === null) return fail('INPUT_INVALID', `cannot read ${file}`);
  const der = fromPem(text, 'CERTIFICATE');
  return der.ok ? der : fail('INPUT_INVALID', `${file}: ${der.error.message}`);
}

/** The online authority of the registry options (null: no --registry), checked before anything is done. */
export async function registryAuthority(
  args: ParsedArgs,
  io: Io,
): Promise<Result<Extract<CommissionAuthority, { kind: 'registry' }> | null>> {
  const url = str(args, 'registry')?.replace(/\/+$/, '');
  if (!url) return ok(null);
  const certFile = str(args, 'registry-cert');
  if (!certFile) return fail('INPUT_INVALID', '--registry needs --registry-cert registry.pem (the certificate to pin)');
  const cert = certArg(certFile, io);
  if (!cert.ok) return cert;
  const tlsFile = str(args, 'registry-tls-cert');
  const tls = tlsFile ? certArg(tlsFile, io) : null;
  if (tls && !tls.ok) return tls;
  const { checkRegistryUrl } = await import('../hq/transport.js');
  const policy = checkRegistryUrl(url, tls ? tls.value : null);
  if (!policy.ok) return policy;
  const hqRootFile = str(args, 'hq-root');
  const hqRoot = hqRootFile ? certArg(hqRootFile, io) : null;
  if (hqRoot && !hqRoot.ok) return hqRoot;
  const typed =
    str(args, 'enrolment-code') ?? process.env[ENROLMENT_CODE_ENV] ?? (await readStdin('enrolment code, then Enter: '));
  const { normaliseEnrolmentCode } = await import('../../core/hq/commission.js');
  const code = normaliseEnrolmentCode(typed);
  if (!code)
    return fail(
      'INPUT_INVALID',
      'the enrolment code is not a code of registry commission-station (LS- then 6 groups of 4 letters A-Z and digits 2-7)',
    );
  return ok({
    kind: 'registry',
    url,
    registryCertificate: cert.value,
    tlsCertificate: tls ? tls.value : null,
    code,
    revocationSigner: true,
    hqRoot: hqRoot ? hqRoot.value : null,
  });
}

/** Lines for the operator about the token (board profiles it cannot serve; key protection it does not enforce). */
export function printOutcome(o: Io, r: CommissionOutcome, dataDir: string): void {
  if (r.status === 'already') {
    o.out(`station ${r.config.stationId} is already commissioned in ${dataDir}: nothing to do`);
    return;
  }
  const facts = r.facts;
  if (facts) {
    for (const u of facts.unsupportedProfiles) o.err(`warning: ${u.error.code}: ${u.error.message}`);
    if (facts.protectionEnforced === false)
      o.err(
        `warning: token profile ${facts.token.profile ?? '?'} does not enforce key protection: for development and tests only (docs/hsm.md)`,
      );
  }
  if (r.status === 'request-written') {
    o.out(
      `commissioning request for station ${r.stationId} written to ${r.out}\n` +
        `  request id ${r.requestId}\n  request SHA-256 ${r.requestSha256}\n` +
        '  the HQ officer compares this SHA-256, then runs: registry commission-station --request REQUEST --out ANSWER\n' +
        `  then here: station commission --data-dir ${dataDir} --answer ANSWER --registry-cert registry.pem`,
    );
    return;
  }
  const c = r.config;
  o.out(
    `station ${c.stationId} commissioned${r.resumed ? ' (resumed)' : ''} in ${dataDir}\n` +
      `  token "${c.hsm.tokenLabel}" of ${c.hsm.module}\n` +
      `  chain: ${dataDir}/${c.pki.stationChain} (pinned HQ root ${dataDir}/${c.pki.hqRoot ?? c.pki.caChain})` +
      (c.registry ? `\n  registry: ${c.registry.url ?? '(offline: bundles only)'}` : ''),
  );
  if (r.revocationSigner)
    o.out(
      `  revocation signer certified for registry ${r.revocationSigner.registryId}: serial ${r.revocationSigner.serialNumber}`,
    );
}

/** `station commission`. */
export const commissionCommand: StationCommand = {
  name: 'commission',
  summary: "commission the station on an existing PKCS#11 token: its issuing CA certified by headquarters' root",
  synopsis:
    '--station-id ID --module PATH --token-label L --attestation-root FILE (--registry URL --registry-cert PEM | --out request.jws)\n' +
    '       station commission --answer answer.jws --registry-cert PEM',
  details: [
    'Generates the issuing-CA key and the station signing key in the token (sensitive, never extractable; refused',
    'with HSM_TOKEN_LACKS_MECHANISM before anything is made when the token cannot), signs the request, and imports',
    'the answer after verifying it with the pinned registry certificate: online with the one-time enrolment code of',
    'registry commission-station, or hand-carried (--out, then --answer). PIN: --pin-stdin, --pin-file F (0600) or',
    `$${DEFAULT_PIN_ENV} (--pin-env NAME); config.json keeps only the source. Re-running is safe; an interrupted`,
    'commissioning resumes with its keys and the same request (docs/deployment.md).',
  ].join('\n'),
  options: {
    'station-id': { type: 'string', arg: 'ID', help: 'the station id headquarters knows it by' },
    organization: {
      type: 'string',
      arg: 'O',
      help: 'O of the station CA and station certificate (default Line Station)',
    },
    module: { type: 'string', arg: 'PATH', help: 'the PKCS#11 module of the token (.so)' },
    'token-label': { type: 'string', arg: 'LABEL', help: 'the token, by label' },
    slot: { type: 'string', arg: 'N', help: 'the token, by slot id (pkcs11-tool --list-slots), instead of a label' },
    'token-profile': { type: 'string', arg: 'ID', help: 'token profile of resources/tokens (default: matched)' },
    'token-dir': { type: 'string', arg: 'DIR', help: "the token's directory (NSS softoken key database)" },
    'pin-stdin': { type: 'boolean', help: 'read the HSM user PIN from the first line of stdin (not echoed)' },
    'pin-file': { type: 'string', arg: 'FILE', help: 'the HSM user PIN file (0600, this user): kept as the source' },
    'pin-env': {
      type: 'string',
      arg: 'NAME',
      help: `the variable the station reads its PIN from (default ${DEFAULT_PIN_ENV})`,
    },
    'attestation-root': {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: "a board vendor's attestation root (PEM)",
    },
    port: { type: 'string', multiple: true, arg: 'PATH|GLOB', help: 'serial ports to watch besides the detected ones' },
    ...REGISTRY_OPTIONS,
    out: { type: 'string', arg: 'FILE', help: 'hand-carried: write the signed request here (and print its SHA-256)' },
    answer: { type: 'string', arg: 'FILE', help: 'hand-carried: import this answer (with --registry-cert)' },
  },
  run: (args, { io }) => withSetup(args, io, (s) => commission(s, args, io), { checkDataDir: false }),
};

async function commission(s: CommandSetup, args: ParsedArgs, io: Io): Promise<number> {
  const pinEnv = str(args, 'pin-env') ?? DEFAULT_PIN_ENV;
  const pinFile = str(args, 'pin-file');
  if (pinFile && flagOn(args, 'pin-stdin')) return usage(io, 'give --pin-stdin or --pin-file, not both');
  // With --pin-stdin the PIN is the first line of stdin (an enrolment code from stdin the second).
  const stdinPin = flagOn(args, 'pin-stdin') ? await readStdin('HSM user PIN, then Enter: ') : null;
  const authority = await authorityOf(args, io);
  if (!authority.ok)
    return authority.error.code === 'INPUT_INVALID' ? usage(io, authority.error) : reportError(io, authority.error);
  const token = await tokenOf(args);
  if (!token.ok) return token.error.code === 'INPUT_INVALID' ? usage(io, token.error) : reportError(io, token.error);
  const pin = async (): Promise<Result<string>> => {
    if (pinFile) return readSecret(resolve(pinFile), pinEnv, '');
    if (stdinPin !== null) return ok(stdinPin);
    const v = process.env[pinEnv];
    return v ? ok(v) : fail('HSM_PIN_INCORRECT', `no HSM PIN: set ${pinEnv}, or give --pin-stdin or --pin-file FILE`);
  };
  const stationId = str(args, 'station-id');
  const organization = str(args, 'organization');
  const { commissionStation } = await import('../commission/commission.js');
  const r = await commissionStation({
    dataDir: s.dataDir,
    ...(stationId ? { stationId } : {}),
    ...(organization ? { organization } : {}),
    ...(token.value ? { token: token.value } : {}),
    pinSource: pinFile ? { file: resolve(pinFile) } : { env: pinEnv },
    pin: async () => {
      const p = await pin();
      return p.ok && p.value.length === 0 ? fail('HSM_PIN_INCORRECT', 'the HSM PIN is empty') : p;
    },
    attestationRoots: list(args, 'attestation-root'),
    extraPorts: list(args, 'port'),
    authority: authority.value,
    logger: s.logger,
  });
  if (!r.ok) return reportError(io, r.error);
  printOutcome(io, r.value, s.dataDir);
  return EXIT.ok;
}

/** Print a usage problem (a coded error or a message) and answer the usage exit code. */
function usage(io: Io, e: string | { code: string; message: string }): number {
  io.err(typeof e === 'string' ? `INPUT_INVALID: ${e}` : `${e.code}: ${e.message}`);
  return EXIT.usage;
}

/** The token named by --module and --token-label or --slot (null: none given, a resumed commissioning's own). */
async function tokenOf(args: ParsedArgs): Promise<Result<CommissionTokenRef | null>> {
  const module = str(args, 'module');
  const label = str(args, 'token-label');
  const slot = str(args, 'slot') !== undefined ? positiveInt(args, 'slot') : undefined;
  if (!module) {
    if (label || slot !== undefined) return fail('INPUT_INVALID', '--token-label and --slot need --module PATH');
    return ok(null);
  }
  if (label && slot !== undefined) return fail('INPUT_INVALID', 'give --token-label or --slot, not both');
  let tokenLabel = label;
  if (!tokenLabel) {
    if (slot === undefined) return fail('INPUT_INVALID', '--module needs --token-label LABEL (or --slot N)');
    const { tokenLabelOfSlot } = await import('../commission/token.js');
    const l = tokenLabelOfSlot(resolve(module), slot);
    if (!l.ok) return l;
    tokenLabel = l.value;
  }
  const profile = str(args, 'token-profile');
  const tokenDir = str(args, 'token-dir');
  return ok({
    module: resolve(module),
    tokenLabel,
    ...(profile ? { profile } : {}),
    ...(tokenDir ? { tokenDir: resolve(tokenDir) } : {}),
  });
}

/** Online, hand-carried request, or hand-carried answer: exactly one. */
async function authorityOf(args: ParsedArgs, io: Io): Promise<Result<CommissionAuthority>> {
  const out = str(args, 'out');
  const answer = str(args, 'answer');
  const online = str(args, 'registry');
  if ([out, answer, online].filter(Boolean).length !== 1)
    return fail('INPUT_INVALID', 'give exactly one of --registry URL (online), --out FILE (request), --answer FILE');
  if (out) return ok({ kind: 'request', out });
  if (answer) {
    const certFile = str(args, 'registry-cert');
    if (!certFile) return fail('INPUT_INVALID', '--answer needs --registry-cert registry.pem (the certificate to pin)');
    const cert = certArg(certFile, io);
    if (!cert.ok) return cert;
    const text = readArgFile(answer, io);
    if (text === null) return fail('INPUT_INVALID', `cannot read ${answer}`);
    const hqRootFile = str(args, 'hq-root');
    const hqRoot = hqRootFile ? certArg(hqRootFile, io) : null;
    if (hqRoot && !hqRoot.ok) return hqRoot;
    return ok({
      kind: 'answer',
      answerJws: text.trim(),
      registryCertificate: cert.value,
      hqRoot: hqRoot ? hqRoot.value : null,
    });
  }
  const reg = await registryAuthority(args, io);
  if (!reg.ok) return reg;
  return reg.value ? ok(reg.value) : fail('INTERNAL', 'no authority');
}
