/**
 * `station enroll`: pin the registry (its certificate, and for https its TLS certificate), check the URL policy
 * (station/hq/transport.ts `checkRegistryUrl`), optionally run the delegated revocation signer exchange
 * (station/revocation-signer.ts), and only then write the `registry` section of config.json (certificates copied to
 * pki/). Any refusal leaves config.json as it was: the station is not enrolled. Imports core/, native/, station/
 * (config, sync, revocation-signer) and sibling command modules.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { flagOn, str, type Io, type ParsedArgs } from '../../core/cli/program.js';
import { fromPem, toPem } from '../../core/pki/pem.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { PRIVATE_DIR_MODE } from '../../native/data-dir.js';
import { readArgFile, withEngine, withSetup, type CommandSetup, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor } from './exit.js';

/** Read a PEM certificate file given on the command line (DER), or print the coded error. */
function readCertArg(file: string, o: Io): Uint8Array | null {
  const pem = readArgFile(file, o);
  if (pem === null) return null;
  const der = fromPem(pem, 'CERTIFICATE');
  if (!der.ok) {
    o.err(`INPUT_INVALID: ${file}: ${der.error.message}`);
    return null;
  }
  return der.value;
}

/** `station enroll`. */
export const enrollCommand: StationCommand = {
  name: 'enroll',
  summary: 'pin the headquarters registry and configure sync (and the CRL/OCSP URLs of device certificates)',
  synopsis: '--registry-cert registry.pem [--registry URL] [options]',
  details:
    'http is accepted only to a loopback IP such as 127.0.0.1; https needs --registry-tls-cert (pinned). Without\n' +
    '--registry the station syncs offline, by bundles (station export, station import-receipt). Then enrol the\n' +
    'station at headquarters: registry enroll-station. With --revocation-signer the station is enrolled only if the\n' +
    'registry proves it holds registry.pem.',
  options: {
    'registry-cert': {
      type: 'string',
      arg: 'registry.pem',
      help: "the registry's signing certificate, pinned (required)",
    },
    registry: { type: 'string', arg: 'URL', help: 'the registry URL, for online sync' },
    'registry-tls-cert': {
      type: 'string',
      arg: 'tls.pem',
      help: "the registry's TLS certificate, pinned: required for https",
    },
    'disable-sync': { type: 'boolean', help: 'configure the registry but do not sync in the background' },
    'revocation-signer': {
      type: 'boolean',
      help: "certify headquarters' CRL/OCSP signing key with the issuing CA (needs --registry)",
    },
    'crl-url': { type: 'string', arg: 'URL', help: 'the CRL URL in device certificates (default: at --registry)' },
    'ocsp-url': { type: 'string', arg: 'URL', help: 'the OCSP URL in device certificates (default: at --registry)' },
  },
  run: (args, { io }) => withSetup(args, io, (s) => enroll(s, args, io)),
};

async function enroll(s: CommandSetup, args: ParsedArgs, o: Io): Promise<number> {
  // Loaded when the command runs, not at start (`station --help`).
  const [
    { CONFIG_FILE, defaultRevocationUrls, updateStationConfig },
    { delegateRevocationSigner },
    { checkRegistryUrl },
  ] = await Promise.all([import('../config.js'), import('../revocation-signer.js'), import('../hq/transport.js')]);
  const { dataDir } = s;
  const certFile = str(args, 'registry-cert');
  const tlsFile = str(args, 'registry-tls-cert');
  const url = str(args, 'registry')?.replace(/\/+$/, '');
  const revocationSigner = flagOn(args, 'revocation-signer');
  if (!certFile) {
    o.err('enroll needs --registry-cert registry.pem (and --registry URL for online sync)');
    return EXIT.usage;
  }
  if (revocationSigner && !url) {
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
  if (revocationSigner) {
    const code = await withEngine(s, o, async (engine) => {
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
      return EXIT.ok;
    });
    if (code !== EXIT.ok) return code;
  }
  // The certificates are copied once the new configuration validated, before config.json names them.
  const crlUrl = str(args, 'crl-url');
  const ocspUrl = str(args, 'ocsp-url');
  const disableSync = flagOn(args, 'disable-sync');
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
        enabled: !disableSync,
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
    `registry configured: ${url ?? '(offline: bundles only)'}${disableSync ? ' (background sync disabled)' : ''}\n` +
      `  device certificates: CRL ${rev?.crl ?? '(none)'}, OCSP ${rev?.ocsp ?? '(none)'}\n` +
      `  enrol this station at the registry: registry enroll-station --id ${updated.value.stationId} --chain ${join(dataDir, 'pki', 'station-chain.pem')}`,
  );
  return EXIT.ok;
}
