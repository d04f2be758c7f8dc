/**
 * `registry` commands of the revocation feature (docs/lifecycle.md "CRL and OCSP"): crl (a station's current CRL,
 * signed by its delegated revocation signer) and revocation-signers (those signers: active, pending, replaced).
 * Imports core/, native/atomic-file.ts and registry/cli/; the lifecycle service when a command runs.
 */
import { resolve } from 'node:path';
import { flagOn } from '../../core/cli/program.js';
import { toPem } from '../../core/pki/pem.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import { fileProblem, given, JSON_OPTION, printJson, usage, type RegistryCommand } from '../cli/command.js';
import { answer, reportGuided } from '../cli/report.js';

const crl: RegistryCommand = {
  name: 'crl',
  summary: 'write a station\'s current CRL (DER, or PEM "X509 CRL")',
  options: {
    station: { type: 'string', arg: 'S', help: 'the station whose devices it lists', required: true },
    out: { type: 'string', arg: 'FILE', help: 'where to write it', required: true },
    pem: { type: 'boolean', help: 'PEM instead of DER' },
    ...JSON_OPTION,
  },
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out }) {
    const station = given(a, 'station');
    const file = given(a, 'out');
    if (!station || !file) return usage('crl needs --station S --out FILE [--pem]');
    const { currentCrl } = await import('./crl.js');
    const r = await currentCrl(ctx, station);
    if (!r.ok) return reportGuided(out, r.error);
    const pem = flagOn(a, 'pem');
    try {
      writeFileAtomic(file, pem ? toPem(r.value.der, 'X509 CRL') : r.value.der);
    } catch (e) {
      return reportGuided(out, { code: 'INPUT_INVALID', message: `cannot write ${file}: ${fileProblem(e)}` });
    }
    const info = {
      stationId: station,
      crlNumber: r.value.crlNumber,
      thisUpdate: r.value.thisUpdate,
      nextUpdate: r.value.nextUpdate,
      format: pem ? 'pem' : 'der',
      out: resolve(file),
    };
    if (flagOn(a, 'json')) printJson(out, info);
    else
      out.log(
        `CRL #${info.crlNumber} of station ${station} (${info.thisUpdate} .. ${info.nextUpdate}) written to ${info.out} (${info.format.toUpperCase()})`,
      );
    return 'ok';
  },
};

const signers: RegistryCommand = {
  name: 'revocation-signers',
  summary: 'the delegated CRL/OCSP signers, with their certificates (station enroll --revocation-signer)',
  options: { ...JSON_OPTION },
  positionals: [{ name: 'STATION', help: "only this station's" }],
  opens: 'registry',
  hsm: false,
  acting: 'admin-or-officer',
  async run(a, { ctx, out }) {
    const { revocationSignerList } = await import('./signer.js');
    return answer(a, out, await revocationSignerList(ctx, a.positionals[0] ?? null), reportGuided, (list) => {
      if (!list.length) out.log('no revocation signers (station enroll --revocation-signer creates one)');
      for (const x of list)
        out.log(
          `${x.stationId} ${x.state} request ${x.requestId} key "${x.keyLabel}" requested ${x.requestedAt}` +
            (x.certificateSha256 ? ` certificate sha256 ${x.certificateSha256} installed ${x.installedAt}` : ''),
        );
    });
  },
};

/** The revocation feature's commands. */
export const REVOCATION_COMMANDS: readonly RegistryCommand[] = [crl, signers];
