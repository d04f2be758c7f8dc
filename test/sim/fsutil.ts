/** Small file helpers for the simulator's persistent state. */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Write a file atomically: write `path.tmp`, fsync it, rename over `path`, fsync the directory. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // directory fsync is best effort (not supported on every filesystem)
  }
}

/**
 * Replace a file atomically without blocking the event loop: write `path.tmp`, rename it over `path`, each step in
 * libuv's thread pool. Not fsynced: the file survives a crash or kill of the process (the page cache is the kernel's),
 * not a power cut of the machine. A rename over an existing file on ext4 also starts writing the new file out
 * (auto_da_alloc), ~2 ms on this disk: in the pool, one board's write no longer holds up the others.
 */
export async function replaceFile(path: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}
