/**
 * Which commits reach the disk, checked on the real path: `station provision` of a simulated board over a pty,
 * in its own process under `strace -f` (fsync, fdatasync, the pwrite64 of the database files, the writes to the
 * pty and to stdout, in the order the kernel saw them). docs/audit.md "Power loss and crashes":
 * - a board costs exactly two fsyncs of the station database: the certify checkpoint and completeRun;
 * - the certify checkpoint's fsync completes before the first byte of the `installCert` frame is written to the
 *   board, and completeRun's before PASS is printed;
 * - power loss: the database rebuilt from the bytes that were written to its files before the last fsync of each
 *   file (what survives a power cut for certain: anything written later may be lost) holds the issued certificate
 *   at the instant `installCert` starts, and the record at the instant PASS is printed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cobsDecode } from '../../core/protocol/framing.js';
import { openStationDb } from '../../native/store/index.js';
import { must } from '../../testkit/pki/test-util.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'station.mjs');
const PIN = '602813';
const OPCODE_INSTALL_CERT = 0x07;
const OPCODE_LOCK = 0x09;

let w: World;
beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [{ id: 'durable-op', role: 'operator', pin: PIN }]);
  await w.engine.close(); // the station runs in a traced child process from here on
}, 120_000);
afterAll(async () => {
  await w?.teardown();
});

/** One traced system call: its name, the file its first argument names (strace -y), its bytes, its offset. */
interface Call {
  readonly name: string;
  readonly path: string;
  readonly bytes: Buffer;
  readonly offset: number | null;
}

/** `station ARGS` under strace; the completed calls in the order they completed (starts of writes: see below). */
function traced(args: string[], log: string): Promise<{ code: number | null; out: string; calls: Call[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      'strace',
      [
        '-f',
        '-y',
        '-xx',
        '-s',
        '65536',
        '-e',
        'trace=fsync,fdatasync,pwrite64,write',
        '-o',
        log,
        process.execPath,
        BIN,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINE_STATION_PIN: PIN } },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, out, calls: parseStrace(readFileSync(log, 'utf8')) }));
  });
}

/**
 * The calls of an `strace -f -y -xx` log. A call interrupted by another thread's (`<unfinished ...>` then
 * `<... resumed>`) is placed where it completed for fsync/fdatasync (durable from then on) and where it started
 * for a write (bytes may reach the board from then on): the order is conservative both ways.
 */
function parseStrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    let line = rest;
    const unfinished = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (unfinished) {
      const [, name, argText] = unfinished as unknown as [string, string, string];
      if (name === 'write' || name === 'pwrite64') calls.push(callOf(name, argText));
      else pending.set(pid, `${name}(${argText}`);
      continue;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (resumed) {
      const start = pending.get(pid);
      pending.delete(pid);
      if (!start) continue; // a write, counted when it started
      line = start + resumed[2]!;
    }
    const call = /^(\w+)\((.*)\) += (-?\d+)/.exec(line);
    if (!call) continue;
    calls.push(callOf(call[1]!, call[2]!));
  }
  return calls;
}

function callOf(name: string, argText: string): Call {
  const fd = /^\d+<((?:\\x[0-9a-f]{2})*)>/.exec(argText); // -xx prints the path hex-escaped too
  const data = /"((?:\\x[0-9a-f]{2})*)"/.exec(argText);
  const bytes = data ? Buffer.from(data[1]!.replace(/\\x/g, ''), 'hex') : Buffer.alloc(0);
  const off = name === 'pwrite64' ? /, (\d+)\)?$/.exec(argText.replace(/ <unfinished \.\.\.>$/, '')) : null;
  const path = Buffer.from((fd?.[1] ?? '').replace(/\\x/g, ''), 'hex').toString();
  return { name, path, bytes, offset: off ? Number(off[1]) : null };
}

/** Index (in `calls`) of the write that starts the first request frame with `opcode` to a pty, or -1. */
function frameStart(calls: Call[], opcode: number): number {
  let buf = Buffer.alloc(0);
  let startIdx = -1;
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i]!;
    if (c.name !== 'write' || !c.path.startsWith('/dev/pts/')) continue;
    for (const b of c.bytes) {
      if (b === 0) {
        const f = buf.length ? cobsDecode(buf) : null;
        if (f && f[1] === 1 && f[4] === opcode) return startIdx;
        buf = Buffer.alloc(0);
        startIdx = -1;
      } else {
        if (buf.length === 0) startIdx = i;
        buf = Buffer.concat([buf, Buffer.from([b])]);
      }
    }
  }
  return -1;
}

const isDbSync = (c: Call, db: string): boolean =>
  (c.name === 'fsync' || c.name === 'fdatasync') && (c.path === db || c.path === `${db}-wal`);

/**
 * The database as it is certain to be after a power cut at `at` (an index in `calls`): every file of it (db, WAL)
 * rebuilt from its content before the run (`base`) and the pwrite64 calls made to it up to its last fsync before
 * `at`. The -shm file is not kept (SQLite rebuilds it from the WAL).
 */
function durableAt(calls: Call[], at: number, db: string, base: Map<string, Buffer>, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const file of [db, `${db}-wal`]) {
    let lastSync = -1;
    for (let i = 0; i < at; i++)
      if ((calls[i]!.name === 'fsync' || calls[i]!.name === 'fdatasync') && calls[i]!.path === file) lastSync = i;
    let content = Buffer.from(base.get(file) ?? Buffer.alloc(0));
    for (let i = 0; i < lastSync; i++) {
      const c = calls[i]!;
      if (c.name !== 'pwrite64' || c.path !== file || c.offset === null) continue;
      const end = c.offset + c.bytes.length;
      if (end > content.length) content = Buffer.concat([content, Buffer.alloc(end - content.length)]);
      c.bytes.copy(content, c.offset);
    }
    const name = join(dir, file === db ? 'station.db' : 'station.db-wal');
    if (content.length || file === db) writeFileSync(name, content);
  }
  return join(dir, 'station.db');
}

describe('durable commits of a provisioning run (strace)', () => {
  it(
    'two fsyncs per board: the certificate is on disk before installCert, the record before PASS; power loss keeps both',
    { timeout: 180_000 },
    async () => {
      const db = join(w.dataDir, 'station.db');
      const base = new Map<string, Buffer>();
      for (const f of [db, `${db}-wal`]) if (existsSync(f)) base.set(f, readFileSync(f));
      const board = w.sim.boards[0]!;
      const r = await traced(
        [
          'provision',
          '--data-dir',
          w.dataDir,
          '--port',
          w.sim.ports[0]!,
          '--work-order',
          'WO-DEMO-1',
          '--operator',
          'durable-op',
        ],
        join(w.dir, 'provision.strace'),
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/PASS/);
      const calls = r.calls;
      const install = frameStart(calls, OPCODE_INSTALL_CERT);
      const lock = frameStart(calls, OPCODE_LOCK);
      const pass = calls.findIndex(
        (c) => c.name === 'write' && !c.path.startsWith('/dev/pts/') && c.bytes.toString().includes('PASS'),
      );
      expect(install).toBeGreaterThan(0);
      expect(lock).toBeGreaterThan(install);
      expect(pass).toBeGreaterThan(lock);
      const dir = join(w.dir, 'powercut');
      const atInstall = must(
        openStationDb(durableAt(calls, install, db, base, join(dir, 'install')), { readonly: true }),
      );
      try {
        expect(atInstall.store.listIssuedCertificates(board.chipId)).toHaveLength(1);
        expect(atInstall.store.countRecords()).toBe(0);
      } finally {
        atInstall.close();
      }
      const atPass = must(openStationDb(durableAt(calls, pass, db, base, join(dir, 'pass')), { readonly: true }));
      try {
        expect(atPass.store.listRecords().map((x) => x.chipId)).toEqual([board.chipId]);
        expect(atPass.store.integrityCheck()).toEqual(['ok']);
        expect(atPass.store.verifyAudit()).toMatchObject({ ok: true });
      } finally {
        atPass.close();
      }
      const firstBoardWrite = calls.findIndex((c) => c.name === 'write' && c.path.startsWith('/dev/pts/'));
      const syncs = calls.map((c, i) => (isDbSync(c, db) ? i : -1)).filter((i) => i >= firstBoardWrite && i >= 0);
      // From the first byte to the board to PASS: the certify checkpoint's fsync, then completeRun's.
      const during = syncs.filter((i) => i < pass);
      expect(during.length, `fsyncs at ${during.join(',')}; installCert ${install}, lock ${lock}, PASS ${pass}`).toBe(
        2,
      );
      expect(during[0]).toBeLessThan(install);
      expect(during[1]).toBeGreaterThan(lock);
    },
  );
});
