/**
 * Move a development station (made by `station init` on SoftHSM2) onto another PKCS#11 token of the suite: new
 * issuing CA and station keys generated in that token, certified by the dev root (whose key stays in the SoftHSM2
 * root token), certificate objects imported, pki/*.pem rewritten, config.json `hsm` pointed at the token (module,
 * label, token profile, tokenDir, PIN file). Until `station commission` exists (issue 15), this is how an end-to-end
 * test runs the station with its CA key on the second implementation. Test support only.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { systemClock } from '../core/ports.js';
import { issueCaCertificate, issueStationCertificate } from '../core/pki/ca.js';
import { fromPem, toPem } from '../core/pki/pem.js';
import { openHsm } from '../native/hsm/index.js';
import { KEY_LABELS, ROOT_TOKEN, ISSUING_CA_DAYS, STATION_CERT_DAYS } from '../station/commission/init.js';
import { loadConfig, type StationConfig } from '../station/config.js';
import type { KindToken } from './tokens.js';

function must<T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.code} ${r.error.message}`);
  return r.value;
}

/**
 * Re-home the station in `dataDir` onto `tok` (created under the data dir, e.g. `<dataDir>/tokens/nss`). The token's
 * PIN goes to `secrets/<kind>-user.pin` (0600). Returns the new issuing CA certificate (DER).
 */
export async function moveStationToToken(dataDir: string, tok: KindToken): Promise<{ issuingCa: Uint8Array }> {
  const cfg = must(loadConfig(dataDir), 'loadConfig');
  const c = cfg.config;
  if (c.hsm.softhsmConf) process.env['SOFTHSM2_CONF'] = cfg.path(c.hsm.softhsmConf);
  const rootPin = readFileSync(join(dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  const rootHsm = must(await openHsm({ module: c.hsm.module, tokenLabel: ROOT_TOKEN, pin: rootPin }), 'root token');
  const target = must(await openHsm({ ...tok.open, pin: tok.pin }), 'target token');
  try {
    const rootSigner = must(await rootHsm.signer(KEY_LABELS.root), 'root signer');
    const root = must(fromPem(readFileSync(join(dataDir, 'pki', 'root.pem'), 'utf8')), 'root.pem');
    const ck = must(await target.generateSigningKey(KEY_LABELS.issuingCa, 'P-256'), 'issuing CA key');
    const sk = must(await target.generateSigningKey(KEY_LABELS.station, 'P-256'), 'station key');
    const ca = must(
      await issueCaCertificate({
        issuer: { signer: rootSigner, certificate: root },
        subjectPublicKeySpki: ck.publicKeySpki,
        subject: { commonName: `Line Station Issuing CA ${c.stationId} (${tok.kind})`, organization: 'Line Station' },
        validityDays: ISSUING_CA_DAYS,
        pathLength: 0,
        clock: systemClock,
      }),
      'issuing CA certificate',
    );
    const caSigner = must(await target.signer(KEY_LABELS.issuingCa), 'CA signer');
    const st = must(
      await issueStationCertificate({
        issuer: { signer: caSigner, certificate: ca },
        subjectPublicKeySpki: sk.publicKeySpki,
        stationId: c.stationId,
        validityDays: STATION_CERT_DAYS,
        clock: systemClock,
      }),
      'station certificate',
    );
    for (const [label, der] of [
      [KEY_LABELS.issuingCa, ca],
      [KEY_LABELS.station, st],
    ] as const)
      must(await target.importCertificate(label, der), `import ${label}`);
    const pem = (ders: Uint8Array[]) => ders.map((d) => toPem(d, 'CERTIFICATE')).join('');
    writeFileSync(join(dataDir, 'pki', 'ca-chain.pem'), pem([ca, root]), { mode: 0o600 });
    writeFileSync(join(dataDir, 'pki', 'station-chain.pem'), pem([st, ca, root]), { mode: 0o600 });
    const pinFile = join('secrets', `${tok.kind}-user.pin`);
    writeFileSync(join(dataDir, pinFile), tok.pin, { mode: 0o600 });
    const hsm: StationConfig['hsm'] = {
      module: tok.module,
      tokenLabel: tok.tokenLabel,
      profile: tok.kind,
      ...(tok.kind === 'nss-softoken' ? { tokenDir: relative(dataDir, join(tok.dir, 'nssdb')) } : {}),
      pin: { file: pinFile },
      keys: { issuingCa: KEY_LABELS.issuingCa, station: KEY_LABELS.station },
    };
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ ...c, hsm }, null, 2) + '\n', { mode: 0o600 });
    return { issuingCa: ca };
  } finally {
    await target.close();
    await rootHsm.close();
  }
}
