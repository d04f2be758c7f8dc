/**
 * The data dir itself: config.json present and valid, the data dir and its secrets private, enough disk space.
 * Pure functions over the doctor ports (station/doctor/ports.ts).
 */
import { join } from 'node:path';
import type { DoctorCheck } from '../../../core/api.js';
import { check, splitFix } from '../check.js';
import type { DoctorPorts } from '../ports.js';
import { CONFIG_FILE } from '../../config.js';

/** Below this much free space the station fails the check: a board's record and audit entries may not fit. */
export const DISK_FAIL_BELOW_BYTES = 100 * 1024 * 1024;
/** Below this much free space the check warns (the database, logs and bundles grow with every board). */
export const DISK_WARN_BELOW_BYTES = 1024 * 1024 * 1024;

const mib = (n: number) => `${Math.floor(n / (1024 * 1024))} MiB`;

/** config.json present and valid. */
export function checkConfig(p: DoctorPorts): DoctorCheck {
  const file = join(p.dataDir, CONFIG_FILE);
  if (p.config.ok) {
    const c = p.config.value.config;
    return check('config', 'pass', `${file}: station ${c.stationId}`, undefined, { file, stationId: c.stationId });
  }
  const e = p.config.error;
  if (e.code === 'CONFIG_NOT_FOUND')
    return check('config', 'fail', `no station configuration at ${file}`, `station init --data-dir ${p.dataDir}`, {
      code: e.code,
    });
  return check('config', 'fail', e.message, `fix ${file} (docs/operations.md lists its fields)`, { code: e.code });
}

/** The data dir 0700, its configuration, database, logs, secrets, PKI and token files 0600, all this user's. */
export function checkPermissions(p: DoctorPorts): DoctorCheck {
  const r = p.permissions();
  if (r.ok) return check('permissions', 'pass', `${p.dataDir} and its secrets are private to this user (0700/0600)`);
  const { finding, fix } = splitFix(r.error.message);
  return check('permissions', 'fail', finding, fix ?? r.error.guidance, { code: r.error.code, ...r.error.details });
}

/** Free space of the file system holding the data dir, against DISK_FAIL_BELOW_BYTES and DISK_WARN_BELOW_BYTES. */
export function checkDiskSpace(p: DoctorPorts): DoctorCheck {
  const s = p.diskSpace(p.dataDir);
  if (!s) return check('disk-space', 'skipped', `cannot read the free space of ${p.dataDir}`);
  const details = { availableBytes: s.availableBytes, totalBytes: s.totalBytes };
  const text = `${mib(s.availableBytes)} free of ${mib(s.totalBytes)} where ${p.dataDir} lives`;
  const action = `free space on that file system (see: df -h ${p.dataDir}; the station's logs are in ${join(p.dataDir, 'logs')})`;
  if (s.availableBytes < DISK_FAIL_BELOW_BYTES)
    return check('disk-space', 'fail', `${text} (less than ${mib(DISK_FAIL_BELOW_BYTES)})`, action, details);
  if (s.availableBytes < DISK_WARN_BELOW_BYTES)
    return check('disk-space', 'warn', `${text} (less than ${mib(DISK_WARN_BELOW_BYTES)})`, action, details);
  return check('disk-space', 'pass', text, undefined, details);
}
