/**
 * The serial side: the station's user is in the group the profiles' udev rules name (dialout, plugdev, ...), the
 * udev rules are installed (UDEV_RULES_PATH, what the .deb installs) and cover every USB id of the loaded profiles,
 * and the device nodes of the ports detected now can be opened for reading and writing.
 */
import type { DoctorCheck } from '../../../core/api.js';
import { hex4, type BoardProfile } from '../../../core/provisioning/profiles.js';
import { check, skipped } from '../check.js';
import type { DoctorSerial } from '../ports.js';

/** Where the station's udev rules are installed (resources/linux/after-install.sh copies them there). */
export const UDEV_RULES_PATH = '/etc/udev/rules.d/70-line-station.rules';

/** The command that installs the rules shipped with the station (`source`: resources/udev/70-line-station.rules). */
export function udevInstallCommand(source: string): string {
  return `sudo cp ${source} /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger`;
}

/** The groups the profiles' udev rules give access (sorted, unique). */
export function profileGroups(profiles: readonly BoardProfile[]): string[] {
  return [...new Set(profiles.map((p) => p.udev.group))].sort();
}

/** serial-group: the user (and this process, since the last login) is in every group the profiles name. */
export function checkSerialGroup(serial: DoctorSerial, profiles: readonly BoardProfile[]): DoctorCheck {
  const groups = profileGroups(profiles);
  const user = serial.user();
  if (!user) return skipped('serial-group', 'no POSIX user and groups on this system');
  if (groups.length === 0) return skipped('serial-group', 'no board profile names a group');
  if (user.uid === 0) return check('serial-group', 'pass', `running as root: every device node is open to it`);
  const notInAccount = groups.filter((g) => !user.accountGroups.includes(g));
  const notInProcess = groups.filter((g) => !user.processGroups.includes(g));
  const details = { user: user.name, required: groups, processGroups: user.processGroups };
  if (notInAccount.length)
    return check(
      'serial-group',
      'fail',
      `user ${user.name} is not in group ${notInAccount.join(', ')} (the profiles' udev rules give board ports to it)`,
      `${notInAccount.map((g) => `sudo usermod -aG ${g} ${user.name}`).join(' && ')}, then log out and in again`,
      details,
    );
  if (notInProcess.length)
    return check(
      'serial-group',
      'fail',
      `user ${user.name} was added to ${notInProcess.join(', ')} after this session started: this process is not in it yet`,
      'log out and in again (or restart the station service) so the new group applies',
      details,
    );
  return check('serial-group', 'pass', `user ${user.name} is in ${groups.join(', ')}`, undefined, details);
}

/** The USB ids (vvvv:pppp) and group of every tty rule in a udev rules file. */
function ruleEntries(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('#') || !/SUBSYSTEM=="tty"/.test(line)) continue;
    const v = /idVendor\}=="([0-9a-fA-F]{4})"/.exec(line)?.[1];
    const p = /idProduct\}=="([0-9a-fA-F]{4})"/.exec(line)?.[1];
    const g = /GROUP="([^"]+)"/.exec(line)?.[1];
    if (v && p && g) out.add(`${v.toLowerCase()}:${p.toLowerCase()}:${g}`);
  }
  return out;
}

/** udev-rules: installed, and a tty rule for every USB id of the profiles, with the profile's group. */
export function checkUdevRules(serial: DoctorSerial, profiles: readonly BoardProfile[], source: string): DoctorCheck {
  const wanted = profiles.flatMap((p) =>
    p.match.usb.map((u) => ({ profile: p.id, key: `${hex4(u.vendorId)}:${hex4(u.productId)}:${p.udev.group}` })),
  );
  if (wanted.length === 0) return skipped('udev-rules', 'no board profile matches a USB device');
  const text = serial.udevRules();
  const action = udevInstallCommand(source);
  if (text === null)
    return check('udev-rules', 'fail', `${serial.udevRulesPath} is not installed`, action, {
      path: serial.udevRulesPath,
    });
  const have = ruleEntries(text);
  const missing = wanted.filter((w) => !have.has(w.key));
  if (missing.length)
    return check(
      'udev-rules',
      'warn',
      `${serial.udevRulesPath} has no rule for ${missing.map((m) => `${m.key} (${m.profile})`).join(', ')}: a profile changed since it was installed`,
      action,
      { path: serial.udevRulesPath, missing: missing.map((m) => m.key) },
    );
  return check('udev-rules', 'pass', `${serial.udevRulesPath} covers the ${wanted.length} USB ids of the profiles`);
}

/** serial-ports: each detected port's device node opens for reading and writing. */
export async function checkSerialPorts(serial: DoctorSerial, profiles: readonly BoardProfile[]): Promise<DoctorCheck> {
  const ports = await serial.ports();
  if (ports.length === 0) return skipped('serial-ports', 'no board port is detected now');
  const denied = ports.map((p) => ({ path: p.path, code: serial.access(p.path) })).filter((x) => x.code !== null);
  const details = { ports: ports.map((p) => p.path) };
  if (denied.length) {
    const groups = profileGroups(profiles);
    return check(
      'serial-ports',
      'fail',
      denied.map((d) => `${d.path}: ${d.code}`).join(', '),
      `give this user the device: ${groups.length ? `group ${groups.join('/')} (see serial-group) and ` : ''}the udev rules (see udev-rules), then re-plug the board; check with: ls -l ${denied[0]!.path}`,
      { ...details, denied },
    );
  }
  return check(
    'serial-ports',
    'pass',
    `${ports.length} port(s) open for reading and writing: ${details.ports.join(', ')}`,
    undefined,
    details,
  );
}
