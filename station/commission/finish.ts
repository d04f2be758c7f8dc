/**
 * The last step of commissioning, once an answer verified: the certificates into the token (beside their keys, the
 * HQ root as `hq-root`), pki/ (ca-chain.pem, station-chain.pem, hq-root.pem; the pinned registry certificate), the
 * audit entry `station.commissioned` (hashes and token facts, no secret), then config.json, which makes the data dir
 * a station. Every step can run again: a commissioning killed between two of them finishes on the next run.
 */
import { join } from 'node:path';
import { sha256Hex } from '../../core/bytes.js';
import { fail } from '../../core/errors.js';
import type { CommissionTokenInfo } from '../../core/hq/commission.js';
import type { Logger } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import type { HsmAdmin } from '../../native/hsm/index.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { PACKAGE_ROOT } from '../../native/package-root.js';
import { openStore } from '../../native/store/index.js';
import { CONFIG_FILE, defaultRevocationUrls, StationConfigSchema, type StationConfig } from '../config.js';
import type { CommissionState } from './state.js';
import type { VerifiedAnswer } from './documents.js';

const REPO_ROOT = PACKAGE_ROOT;

/** The label of the HQ root's certificate object in the station token. */
export const HQ_ROOT_LABEL = 'hq-root';

/** pki/ files a commissioned station has (relative to the data dir). */
export const PKI_FILES = {
  caChain: 'pki/ca-chain.pem',
  stationChain: 'pki/station-chain.pem',
  hqRoot: 'pki/hq-root.pem',
  registry: 'pki/registry.pem',
  registryTls: 'pki/registry-tls.pem',
} as const;

/** How the station talks to headquarters after commissioning (config.json `registry`). */
export type RegistrySettings =
  | { readonly kind: 'none' }
  | { readonly kind: 'offline'; readonly registryCertificate: Uint8Array }
  | {
      readonly kind: 'online';
      readonly url: string;
      readonly registryCertificate: Uint8Array;
      readonly tlsCertificate: Uint8Array | null;
    };

export interface FinishParams {
  readonly dataDir: string;
  readonly state: CommissionState;
  readonly hsm: HsmAdmin;
  readonly verified: VerifiedAnswer;
  readonly stationCertificate: Uint8Array;
  readonly requestSha256: string;
  readonly tokenInfo: CommissionTokenInfo;
  readonly registry: RegistrySettings;
  /** What issued the station CA, for the audit entry: `registry`, `hand-carried` or `development-hq`. */
  readonly authority: string;
  readonly logger: Logger;
}

const pem = (ders: readonly Uint8Array[]) => ders.map((d) => toPem(d, 'CERTIFICATE')).join('');

/** The configuration of a commissioned station (validated before anything names it). */
export function commissionedConfig(s: CommissionState, registry: RegistrySettings): Result<StationConfig> {
  const raw = {
    schema: 'line-station/station-config/v1',
    stationId: s.stationId,
    hsm: {
      module: s.token.module,
      tokenLabel: s.token.tokenLabel,
      ...(s.token.softhsmConf ? { softhsmConf: s.token.softhsmConf } : {}),
      ...(s.token.profile ? { profile: s.token.profile } : {}),
      ...(s.token.tokenDir ? { tokenDir: s.token.tokenDir } : {}),
      pin: s.pin,
      keys: s.keys,
    },
    pki: {
      caChain: PKI_FILES.caChain,
      stationChain: PKI_FILES.stationChain,
      hqRoot: PKI_FILES.hqRoot,
      attestationRoots: s.attestationRoots,
    },
    paths: {
      profilesDir: join(REPO_ROOT, 'resources', 'boards'),
      workOrdersDir: join(REPO_ROOT, 'resources', 'work-orders'),
    },
    ports: { extra: s.extraPorts, pollMs: 250 },
    ...(registry.kind === 'online'
      ? {
          registry: {
            url: registry.url,
            certificate: PKI_FILES.registry,
            ...(registry.tlsCertificate ? { tlsCertificate: PKI_FILES.registryTls } : {}),
            enabled: true,
          },
          revocation: defaultRevocationUrls(registry.url, s.stationId),
        }
      : registry.kind === 'offline'
        ? { registry: { certificate: PKI_FILES.registry, enabled: true } }
        : {}),
  };
  const parsed = StationConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return fail('CONFIG_INVALID', `the new configuration: ${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'}`);
  }
  return ok(parsed.data);
}

/**
 * Certificates into the token, pki/, audit, and (with `beforeConfig` run just before) config.json. The HSM stays open
 * (the caller closes it).
 */
export async function finishCommissioning(
  p: FinishParams,
  beforeConfig: () => void = () => {},
): Promise<Result<StationConfig>> {
  const { dataDir: dir, state, hsm, verified } = p;
  const config = commissionedConfig(state, p.registry);
  if (!config.ok) return config;
  for (const [label, der] of [
    [state.keys.issuingCa, verified.caCertificate],
    [state.keys.station, p.stationCertificate],
    [HQ_ROOT_LABEL, verified.hqRoot],
  ] as const) {
    const imp = await hsm.importCertificate(label, der);
    if (!imp.ok) return imp;
  }
  const caChain = [verified.caCertificate, ...verified.hqChain];
  writeFileAtomic(join(dir, PKI_FILES.caChain), pem(caChain));
  writeFileAtomic(join(dir, PKI_FILES.stationChain), pem([p.stationCertificate, ...caChain]));
  writeFileAtomic(join(dir, PKI_FILES.hqRoot), pem([verified.hqRoot]));
  if (p.registry.kind !== 'none') {
    writeFileAtomic(join(dir, PKI_FILES.registry), pem([p.registry.registryCertificate]));
    if (p.registry.kind === 'online' && p.registry.tlsCertificate)
      writeFileAtomic(join(dir, PKI_FILES.registryTls), pem([p.registry.tlsCertificate]));
  }
  const store = openStore(join(dir, 'station.db'));
  if (!store.ok) return store;
  try {
    store.value.appendAudit('station.commissioned', {
      stationId: state.stationId,
      requestId: state.requestId,
      authority: p.authority,
      registryId: verified.answer.registryId,
      requestSha256: p.requestSha256,
      issuingCaSha256: await sha256Hex(verified.caCertificate),
      stationCertSha256: await sha256Hex(p.stationCertificate),
      hqRootSha256: await sha256Hex(verified.hqRoot),
      token: p.tokenInfo,
      module: state.token.module,
      keys: state.keys,
    });
  } finally {
    store.value.close();
  }
  beforeConfig();
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(config.value, null, 2) + '\n');
  p.logger.log('info', 'station commissioned', {
    stationId: state.stationId,
    requestId: state.requestId,
    authority: p.authority,
  });
  return config;
}
