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
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cobsDecode } from '../../core/protocol/framing.js';
import { openStationDb } from '../../native/store/index.js';
import { must } from '../../testkit/pki/test-util.js';
import { durableAt, isSyncOf, traced, writeMatching, type TracedCall } from '../../testkit/strace.js';
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

/** Index (in `calls`) of the write that starts the first request frame with `opcode` to a pty, or -1. */
function frameStart(calls: readonly TracedCall[], opcode: number): number {
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

const isDbSync = (c: TracedCall, db: string): boolean => isSyncOf(c, db) || isSyncOf(c, `${db}-wal`);

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
        process.execPath,
        [
          BIN,
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
        { log: join(w.dir, 'provision.strace'), env: { ...process.env, LINE_STATION_PIN: PIN } },
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/PASS/);
      const calls = r.calls;
      const install = frameStart(calls, OPCODE_INSTALL_CERT);
      const lock = frameStart(calls, OPCODE_LOCK);
      const pass = writeMatching(calls, /^\[[^\]]+\] PASS /);
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
