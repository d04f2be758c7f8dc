/**
 * Test support: a lifecycle registry on loopback for a development test station (test/harness.ts world), with the
 * station enrolled and the registry's delegated revocation signer certified by the station (`station enroll
 * --revocation-signer`), so that the registry signs CRLs and OCSP answers for the station's certificates. Also
 * writes `ca.pem` (issuing CA) and `root.pem` in the world's dir for `openssl ocsp`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import type { Engine } from '../../station/engine.js';
import { must } from '../pki/test-util.js';
import { runStationCli } from '../station-cli.js';
import { startLifecycleRegistry } from './lifecycle.js';

/** What the helper needs of a test world. */
export interface RevocationWorld {
  readonly dir: string;
  readonly dataDir: string;
  readonly engine: Engine;
  reopen(): Promise<unknown>;
}

/** The running registry and the HSM session its lifecycle signs with; `close()` stops both. */
export interface RevocationRegistry {
  readonly reg: RunningRegistry;
  close(): Promise<void>;
}

/** Start the registry (SQLite in the world's dir), enrol the station and its revocation signer, reopen the engine. */
export async function startRevocationRegistry(
  w: RevocationWorld,
  o: { readonly registryId: string; readonly adminToken: string },
): Promise<RevocationRegistry> {
  const chainPem = readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8');
  const chain = must(fromPemChain(chainPem));
  writeFileSync(join(w.dir, 'ca.pem'), toPem(chain[1]!, 'CERTIFICATE'));
  writeFileSync(join(w.dir, 'root.pem'), toPem(chain[2]!, 'CERTIFICATE'));
  // The registry's token lives in the SoftHSM2 configuration the module was loaded with (the station's root token).
  const pin = readFileSync(join(w.dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  const hsm: HsmAdmin = must(
    await openHsm({ module: w.engine.config.config.hsm.module, tokenLabel: 'LS Offline Root', pin }),
  );
  const reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: o.registryId,
    adminToken: o.adminToken,
    lifecycle: { hsm, crlIntervalS: 600 },
  });
  const close = async () => {
    await reg.close();
    await hsm.close();
  };
  const regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(await enrollStation(reg.context, { stationId: w.engine.station.id, chainPem }));
  const args = ['enroll', '--data-dir', w.dataDir, '--registry', reg.url, '--registry-cert', regCertFile];
  const r = await runStationCli([...args, '--revocation-signer']);
  if (r.code !== 0) {
    await close();
    throw new Error(`station enroll --revocation-signer: ${r.text}`);
  }
  await w.reopen();
  return { reg, close };
}
