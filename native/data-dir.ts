/**
 * Private data directories. A station's or registry's data dir holds operator PIN and badge hashes, HSM token
 * files, development PIN files, bearer tokens, the database and logs: only the user that runs the service may read
 * or change any of it (docs/architecture.md "Data directory permissions").
 *
 * - Every entry point calls `restrictUmask()` first (umask 077), so each folder is created 0700 and each file 0600
 *   from its first write, also by child processes (softhsm2-util, the simulator, a registry the demo starts).
 * - Code that creates files passes those modes explicitly as well (`PRIVATE_DIR_MODE`, `PRIVATE_FILE_MODE`,
 *   `createPrivateFile` before SQLite creates a database), so a caller without the umask still gets them.
 * - Before a data dir is used, `checkPrivateTree` refuses one (or one of its sensitive entries) that group or
 *   others can read or write, or that another user owns: CONFIG_INSECURE_PERMISSIONS, naming the path and the
 *   command that fixes it (`chmod 700 D`, `chmod 600 F`, `chown`). POSIX only: on Windows the check passes and the
 *   data dir relies on the user profile's ACL (Electron's userData folder).
 * - Secret files (PIN files) are read with `readPrivateFile`: opened once without following a symbolic link, then
 *   checked and read through that one descriptor, so the file checked is the file read.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  type Stats,
} from 'node:fs';
import { join, relative } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { fail, type ErrorCode } from '../core/errors.js';
import { ok, type Result } from '../core/result.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** Entry points set this umask: nothing they create is group- or world-accessible. */
export const PRIVATE_UMASK = 0o077;

/** Set the process umask to 077 (entry points call it before anything else; worker threads cannot). */
export function restrictUmask(): void {
  if (isMainThread) process.umask(PRIVATE_UMASK);
}

/**
 * Create `file` empty with mode 0600 when it does not exist (an existing file is left as it is). Called before a
 * library that creates the file with its own default mode (SQLite: 0644 minus the umask; its -wal and -shm files
 * then take the database file's mode).
 */
export function createPrivateFile(file: string): void {
  if (file === '' || file === ':memory:') return;
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
}

/** One path to check: the data dir itself (''), a file or folder in it; `children` also checks what a folder holds. */
export interface PrivateEntry {
  /** Relative to the data dir ('' = the data dir), or absolute. */
  readonly path: string;
  /** Also check every entry directly inside this folder (and one level further for folders, e.g. SoftHSM2 tokens). */
  readonly children?: boolean;
}

const octal = (m: number) => (m & 0o777).toString(8).padStart(4, '0');
const uid = () => (typeof process.geteuid === 'function' ? process.geteuid() : null);

function problem(path: string, st: Stats, me: number | null): string | null {
  const dir = st.isDirectory();
  if (me !== null && st.uid !== me)
    return `${path} is owned by uid ${st.uid}, not by the user running this (uid ${me}); fix: chown -R $(id -un) ${path} && chmod ${dir ? '700' : '600'} ${path}`;
  if ((st.mode & 0o077) !== 0)
    return `${path} has mode ${octal(st.mode)}: group or others can ${st.mode & 0o022 ? 'write' : 'read'} it; fix: chmod ${dir ? '700' : '600'} ${path}`;
  return null;
}

/**
 * Refuse a data dir whose listed entries group or others can read or write, or that another user owns. Missing
 * entries are skipped (a data dir not initialised yet is reported elsewhere). Symbolic links are followed: what is
 * checked is what the code that opens the path reads.
 */
export function checkPrivateTree(dataDir: string, entries: readonly PrivateEntry[]): Result<void> {
  // Windows has no POSIX modes (Node reports 0666/0777 whatever the ACL says): there the user profile's ACL applies.
  if (process.platform === 'win32') return ok(undefined);
  const me = uid();
  const seen = new Set<string>();
  const check = (path: string, depth: number): string | null => {
    if (seen.has(path)) return null;
    seen.add(path);
    let st: Stats;
    try {
      st = statSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
    const p = problem(path, st, me);
    if (p || depth <= 0 || !st.isDirectory()) return p;
    let names: string[];
    try {
      names = readdirSync(path);
    } catch (e) {
      return `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
    for (const n of names) {
      const q = check(join(path, n), depth - 1);
      if (q) return q;
    }
    return null;
  };
  for (const e of entries) {
    const path = e.path === '' ? dataDir : e.path.startsWith('/') ? e.path : join(dataDir, e.path);
    const p = check(path, e.children ? 2 : 0);
    if (p)
      return fail('CONFIG_INSECURE_PERMISSIONS', p, {
        path,
        entry: relative(dataDir, path) || '.',
      });
  }
  return ok(undefined);
}

/**
 * Make a data dir that `init` is about to fill private: created 0700 when missing, tightened to 0700 when it exists,
 * is empty of a configuration and belongs to this user (another user's folder is refused, never taken over).
 */
export function preparePrivateDir(dir: string): Result<void> {
  let st: Stats | null = null;
  try {
    st = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      return fail('CONFIG_INSECURE_PERMISSIONS', `${dir}: ${(e as NodeJS.ErrnoException).code ?? 'not accessible'}`);
  }
  if (st) {
    const me = uid();
    if (me !== null && st.uid !== me) {
      const p = problem(dir, st, me);
      return fail('CONFIG_INSECURE_PERMISSIONS', p ?? `${dir} belongs to another user`, { path: dir, entry: '.' });
    }
    if (st.isDirectory() && (st.mode & 0o077) !== 0) chmodSync(dir, PRIVATE_DIR_MODE);
  }
  return ok(undefined);
}

/**
 * Read a secret file (a PIN file) safely: open it once with O_NOFOLLOW (a symbolic link as the last path component
 * is refused, so it cannot be swapped for a link between check and read), fstat that descriptor (a regular file,
 * owned by this user, mode without group or other bits: 0600 or 0400) and read from the same descriptor.
 * CONFIG_INSECURE_PERMISSIONS for a link, another type of file, another owner or a readable mode; `missingCode`
 * when it does not exist or cannot be opened. POSIX only (on Windows the file is read as it is).
 */
export function readPrivateFile(file: string, missingCode: ErrorCode): Result<string> {
  const posix = process.platform !== 'win32';
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the open; it is refused below as not a regular file.
    const flags = constants.O_RDONLY | (posix ? constants.O_NOFOLLOW | constants.O_NOCTTY | constants.O_NONBLOCK : 0);
    fd = openSync(file, flags);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      return fail('CONFIG_INSECURE_PERMISSIONS', `${file} is a symbolic link: a secret file must be the file itself`, {
        path: file,
      });
    return fail(missingCode, `cannot read ${file}: ${code ?? (e as Error).message}`, { path: file });
  }
  try {
    const st = fstatSync(fd);
    if (posix) {
      if (!st.isFile()) return fail('CONFIG_INSECURE_PERMISSIONS', `${file} is not a regular file`, { path: file });
      const p = problem(file, st, uid());
      if (p) return fail('CONFIG_INSECURE_PERMISSIONS', p, { path: file });
    }
    return ok(readFileSync(fd, 'utf8'));
  } catch (e) {
    return fail(missingCode, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      path: file,
    });
  } finally {
    closeSync(fd);
  }
}
