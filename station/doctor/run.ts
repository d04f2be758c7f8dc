/**
 * `runDoctor`: every check of `station doctor`, in DOCTOR_CHECK_IDS order, over injected ports. The CLI
 * (station/cli/doctor.ts) and the service's `doctor` operation (station/service) both call it. The token is inspected
 * without a login, then (when it is there) logged in to once and released at the end; a check that needs what another
 * could not give is `skipped`, naming that check.
 */
import { DOCTOR_CHECK_IDS, type DoctorCheck, type DoctorReport } from '../../core/api.js';
import type { BoardProfile } from '../../core/provisioning/profiles.js';
import { ok } from '../../core/result.js';
import { check, skipped } from './check.js';
import { checkBacklog } from './checks/backlog.js';
import { checkCertificates } from './checks/certificates.js';
import { checkKeys, checkLogin, checkModule, checkToken, tokenReady, type TokenOutcome } from './checks/hsm.js';
import { checkConfig, checkDiskSpace, checkPermissions } from './checks/local.js';
import { checkMechanisms, probeMechanisms, stationNeeds } from './checks/mechanisms.js';
import { checkClockSkew, checkRegistry } from './checks/registry.js';
import { checkSerialGroup, checkSerialPorts, checkUdevRules } from './checks/serial.js';
import type { DoctorPorts } from './ports.js';
import { packagePath } from '../../native/package-root.js';

/** The udev rules shipped with the station (generated from resources/boards by scripts/gen-udev.ts). */
export const SHIPPED_UDEV_RULES = packagePath('resources', 'udev', '70-line-station.rules');

const NO_CONFIG = 'no valid configuration (see config)';

export interface RunDoctorOptions {
  /** The udev rules file `udev-rules` tells to install (default SHIPPED_UDEV_RULES). */
  readonly udevRulesSource?: string;
}

/** Run every check. Never throws for a station problem: each becomes a check result. */
export async function runDoctor(p: DoctorPorts, o: RunDoctorOptions = {}): Promise<DoctorReport> {
  const out: DoctorCheck[] = [checkConfig(p), checkPermissions(p), checkDiskSpace(p)];
  const cfg = p.config.ok ? p.config.value : null;
  const profilesR = cfg ? p.profiles() : null;
  const profiles: readonly BoardProfile[] = profilesR?.ok ? profilesR.value : [];

  // The token without a login first (module, token, mechanisms): no PIN is tried on a token that is not there.
  const report = p.token ? await p.token.inspect() : null;
  let outcome: TokenOutcome | null = null;
  if (p.token && tokenReady(report)) {
    const opened = await p.token.open();
    outcome = opened.ok ? ok({ session: opened.value, info: await opened.value.hsm.info() }) : opened;
  }
  try {
    out.push(checkModule(p.token, report), checkToken(p.token, report), checkLogin(p.token, report, outcome));
    const session = outcome?.ok ? outcome.value.session : null;
    const keys = cfg?.config.hsm.keys;
    out.push(keys ? checkKeys([keys.issuingCa, keys.station], outcome, report) : skipped('hsm-keys', NO_CONFIG));
    const needs = stationNeeds(profiles);
    const listed = report && tokenReady(report) ? report.requirements : null;
    // Tried by use only where the list has it: a mechanism the token does not list is not called.
    const injectionListed = listed?.find((r) => r.requirement === 'key-injection')?.satisfied === true;
    const probed =
      session && keys ? await probeMechanisms(session.hsm, keys.station, injectionListed ? profiles : []) : null;
    out.push(keys ? checkMechanisms(needs, listed, probed) : skipped('hsm-mechanisms', NO_CONFIG));
    if (cfg && keys) {
      const files = p.certificates();
      out.push(
        await checkCertificates(
          files.ok
            ? ok({
                ...files.value,
                keys: session
                  ? {
                      issuingCa: await session.hsm.signer(keys.issuingCa),
                      station: await session.hsm.signer(keys.station),
                    }
                  : null,
                now: p.clock.now(),
              })
            : files,
        ),
      );
    } else out.push(skipped('certificates', NO_CONFIG));
  } finally {
    if (outcome?.ok) await outcome.value.session.release();
  }

  if (cfg && profilesR && !profilesR.ok) {
    const e = profilesR.error;
    const bad = (id: 'serial-group' | 'udev-rules') =>
      check(id, 'fail', `board profiles: ${e.message}`, `fix the profile files in ${cfg.config.paths.profilesDir}`);
    out.push(bad('serial-group'), bad('udev-rules'));
  } else {
    out.push(
      checkSerialGroup(p.serial, profiles),
      checkUdevRules(p.serial, profiles, o.udevRulesSource ?? SHIPPED_UDEV_RULES),
    );
  }
  out.push(await checkSerialPorts(p.serial, profiles));

  if (cfg) {
    const reg = await checkRegistry(p.registry, p.clock.now());
    out.push(reg.check, checkClockSkew(reg.health));
  } else out.push(skipped('registry', NO_CONFIG), skipped('clock-skew', NO_CONFIG));
  out.push(cfg ? checkBacklog(p.backlog(), p.registry, p.dataDir, p.clock.now()) : skipped('sync-backlog', NO_CONFIG));

  const checks = DOCTOR_CHECK_IDS.map((id) => out.find((c) => c.id === id)!);
  return { checks, ok: checks.every((c) => c.status !== 'fail') };
}
