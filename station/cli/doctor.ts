/**
 * `station doctor [--json] [--pin-stdin]`: every readiness check of the station in a data dir (station/doctor:
 * module, token, login, keys, mechanisms, certificates, serial access, disk, permissions, registry, clock, sync
 * backlog), each pass | warn | fail | skipped with what to do. It opens each part on its own and writes nothing to the
 * data dir, so it also runs on a data dir the other commands refuse. Exit 0 when no check failed, else
 * `checkFailed` (5). Imports core/, station/doctor and sibling command modules.
 */
import { flagOn, type Io } from '../../core/cli/program.js';
import type { DoctorReport, DoctorStatus } from '../../core/api.js';
import { dataDirOf, type StationCommand } from './context.js';
import { EXIT } from './exit.js';
import { readStdin } from './pin-input.js';

const LABEL: Readonly<Record<DoctorStatus, string>> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skipped: 'SKIP' };

/** The report as lines for people: one per check, its action under it, then the counts. */
export function printReport(r: DoctorReport, dataDir: string, o: Io): void {
  o.out(`station doctor: ${dataDir}`);
  const width = Math.max(...r.checks.map((c) => c.id.length));
  for (const c of r.checks) {
    o.out(`  ${LABEL[c.status]}  ${c.id.padEnd(width)}  ${c.summary}`);
    if (c.action && c.status !== 'pass') o.out(`  ${' '.repeat(6 + width)}  -> ${c.action}`);
  }
  const n = (s: DoctorStatus) => r.checks.filter((c) => c.status === s).length;
  o.out(`${n('fail')} failed, ${n('warn')} warnings, ${n('skipped')} skipped, ${n('pass')} passed`);
}

/** `station doctor`. */
export const doctorCommand: StationCommand = {
  name: 'doctor',
  summary: 'check that this station is ready (HSM, keys, certificates, serial access, disk, registry, clock, sync)',
  details: [
    'Each check answers pass, warn, fail or skipped (it needs what another check could not give), a one-line',
    'finding and, when it does not pass, what to do. The HSM user PIN comes from the configured source (the',
    'environment variable or file in config.json) or, with --pin-stdin, from the first line of stdin; the report names',
    'the source, never the PIN. A wrong PIN counts towards the token lock like any login. Nothing is written to the',
    'data dir. Exit 0 when no check failed, 5 otherwise (docs/operations.md "station doctor").',
  ].join('\n'),
  options: {
    json: { type: 'boolean', help: 'one JSON document {checks:[{id,status,summary,action?,details?}], ok}' },
    'pin-stdin': { type: 'boolean', help: 'read the HSM user PIN from the first line of stdin (not echoed)' },
  },
  async run(args, { io }) {
    // Loaded when the command runs (`station --help` does not load the checks).
    const [{ dataDirPorts }, { runDoctor }] = await Promise.all([
      import('../doctor/data-dir-ports.js'),
      import('../doctor/run.js'),
    ]);
    const dataDir = dataDirOf(args);
    const ports = dataDirPorts({
      dataDir,
      ...(flagOn(args, 'pin-stdin') ? { stdinPin: () => readStdin('HSM user PIN, then Enter: ') } : {}),
    });
    const report = await runDoctor(ports);
    if (flagOn(args, 'json')) io.out(JSON.stringify(report, null, 2));
    else printReport(report, dataDir, io);
    return report.ok ? EXIT.ok : EXIT.checkFailed;
  },
};
