/**
 * Crash worker (test only) for test/integration/audit-anchor-crash.test.ts: opens the station in the data dir given
 * as argv[2] (its engine: config, SoftHSM2 station key, database) and runs one sync whose `audit-head-signed`
 * failpoint prints `audit-head-signed <seq>` and then waits: the test kills this very process with SIGKILL there,
 * after the head was signed in the HSM and before any byte of the batch went on the wire.
 * Usage: node --import tsx test/integration/anchor-crash-worker.ts <data-dir>
 */
import 'reflect-metadata';
import { join } from 'node:path';
import { openEngine } from '../../station/engine.js';
import { createLogger } from '../../native/logger.js';
import { openSync } from '../../station/sync.js';
import { readRegistryCertificate } from '../../station/hq/pins.js';

const dataDir = process.argv[2];
if (!dataDir) {
  process.stderr.write('usage: anchor-crash-worker.ts <data-dir>\n');
  process.exit(2);
}
const logger = createLogger({ file: join(dataDir, 'logs', 'crash-worker.log'), level: 'debug' });
const eng = await openEngine({ dataDir, logger });
if (!eng.ok) {
  process.stderr.write(`${eng.error.code}: ${eng.error.message}\n`);
  process.exit(3);
}
const c = eng.value.config.config;
if (!c.registry?.url) {
  process.stderr.write('the station has no registry URL\n');
  process.exit(3);
}
const cert = readRegistryCertificate(eng.value.config.path(c.registry.certificate));
if (!cert.ok) {
  process.stderr.write(`${cert.error.message}\n`);
  process.exit(3);
}
const s = openSync({
  outbox: eng.value.db.outbox,
  stationId: c.stationId,
  signer: eng.value.station.signer,
  chain: eng.value.station.chain,
  registryUrl: c.registry.url,
  registryCertificate: cert.value,
  logger,
  failpoint: async (p, d) => {
    process.stdout.write(`${p} ${d.seq}\n`);
    await new Promise(() => undefined); // killed here
  },
});
if (!s.ok) {
  process.stderr.write(`${s.error.message}\n`);
  process.exit(3);
}
const r = await s.value.syncOnce();
process.stdout.write(`finished ${r.ok ? 'ok' : r.error.code}\n`);
process.exit(0);
