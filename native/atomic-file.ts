/**
 * Write a file so that after a crash or power loss it holds either the old content or the new one, never a
 * part: write a temporary file next to it, fsync it, rename it over the target, fsync the directory.
 * The file is private (0600) unless the caller asks for another mode; the mode is set on the temporary file
 * before any byte is written (also when a stale temporary file of a crashed run is reused).
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PRIVATE_FILE_MODE } from './data-dir.js';

export function writeFileAtomic(file: string, data: string | Uint8Array, mode = PRIVATE_FILE_MODE): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
