/**
 * Test support: a process run under `strace -f -y -xx` (fsync, fdatasync, pwrite64, write), its calls in the order
 * the kernel saw them, and the database files as they are certain to be after a power cut at any of those calls
 * (the durability tests: test/integration/durability.test.ts, native/store/durability.test.ts, the registry's
 * test/integration/registry-durability.test.ts).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** One traced system call: its name, the file its first argument names (strace -y), its bytes, its offset. */
export interface TracedCall {
  readonly name: string;
  readonly path: string;
  readonly bytes: Buffer;
  readonly offset: number | null;
}

/** What `traced` returns. */
export interface Traced {
  readonly code: number | null;
  readonly out: string;
  readonly calls: TracedCall[];
}

/**
 * Run `cmd args` under strace (log in `log`) with `env`; resolves when it exits, with its stdout and stderr.
 */
export function traced(
  cmd: string,
  args: readonly string[],
  o: { readonly log: string; readonly env?: NodeJS.ProcessEnv },
): Promise<Traced> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      'strace',
      ['-f', '-y', '-xx', '-s', '65536', '-e', 'trace=fsync,fdatasync,pwrite64,write', '-o', o.log, cmd, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env },
    );
    let out = '';
    const take = (d: Buffer) => (out += d.toString());
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, out, calls: parseStrace(readFileSync(o.log, 'utf8')) }));
  });
}

/**
 * The calls of an `strace -f -y -xx` log. A call interrupted by another thread's (`<unfinished ...>` then
 * `<... resumed>`) is placed where it completed for fsync/fdatasync (durable from then on) and where it started
 * for a write (its bytes may be out from then on): conservative both ways.
 */
export function parseStrace(text: string): TracedCall[] {
  const calls: TracedCall[] = [];
  const pending = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const pid = m[1]!;
    let line = m[2]!;
    const unfinished = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (unfinished) {
      const [name, argText] = [unfinished[1]!, unfinished[2]!];
      if (name === 'write' || name === 'pwrite64') calls.push(callOf(name, argText));
      else pending.set(pid, `${name}(${argText}`);
      continue;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (resumed) {
      const start = pending.get(pid);
      pending.delete(pid);
      if (!start) continue; // a write, counted where it started
      line = start + resumed[2]!;
    }
    const call = /^(\w+)\((.*)\) += (-?\d+)/.exec(line);
    if (call) calls.push(callOf(call[1]!, call[2]!));
  }
  return calls;
}

function callOf(name: string, argText: string): TracedCall {
  const fd = /^\d+<((?:\\x[0-9a-f]{2})*)>/.exec(argText); // -xx prints the path hex-escaped too
  const data = /"((?:\\x[0-9a-f]{2})*)"/.exec(argText);
  const bytes = data ? Buffer.from(data[1]!.replace(/\\x/g, ''), 'hex') : Buffer.alloc(0);
  const off = name === 'pwrite64' ? /, (\d+)$/.exec(argText.replace(/\)$/, '')) : null;
  const path = Buffer.from((fd?.[1] ?? '').replace(/\\x/g, ''), 'hex').toString();
  return { name, path, bytes, offset: off ? Number(off[1]) : null };
}

/** An fsync or fdatasync of `file`. */
export const isSyncOf = (c: TracedCall, file: string): boolean =>
  (c.name === 'fsync' || c.name === 'fdatasync') && c.path === file;

/**
 * Index of the first write whose whole text matches `re` (a marker line on stdout; anchor it: a source file
 * written to a compile cache may contain the same words), or -1.
 */
export function writeMatching(calls: readonly TracedCall[], re: RegExp): number {
  return calls.findIndex((c) => c.name === 'write' && re.test(c.bytes.toString('utf8')));
}

/**
 * The SQLite database `db` as it is certain to be after a power cut at call `at`: the database file and its WAL,
 * each rebuilt from its content before the trace (`base`; absent: empty) and the pwrite64 calls made to it before
 * its last fsync before `at` (what was written later may be lost). The -shm file is not kept (SQLite rebuilds it
 * from the WAL). Written to `dir` under the database file's own name (`station.db`, `registry.db`: its WAL next to
 * it as `<name>-wal`); returns the path of the database file there.
 */
export function durableAt(
  calls: readonly TracedCall[],
  at: number,
  db: string,
  base: ReadonlyMap<string, Buffer>,
  dir: string,
): string {
  mkdirSync(dir, { recursive: true });
  const name = basename(db);
  for (const file of [db, `${db}-wal`]) {
    let lastSync = -1;
    for (let i = 0; i < at; i++) if (isSyncOf(calls[i]!, file)) lastSync = i;
    let content = Buffer.from(base.get(file) ?? Buffer.alloc(0));
    for (let i = 0; i < lastSync; i++) {
      const c = calls[i]!;
      if (c.name !== 'pwrite64' || c.path !== file || c.offset === null) continue;
      const end = c.offset + c.bytes.length;
      if (end > content.length) content = Buffer.concat([content, Buffer.alloc(end - content.length)]);
      c.bytes.copy(content, c.offset);
    }
    if (content.length || file === db) writeFileSync(join(dir, file === db ? name : `${name}-wal`), content);
  }
  return join(dir, name);
}
