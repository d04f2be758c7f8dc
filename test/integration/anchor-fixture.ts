/**
 * Test fixture for the audit anchoring tests (docs/audit.md "Anchoring at the registry"): a station world
 * (simulator + SoftHSM2 + the real engine) with `registry serve` in its own process on loopback, the station
 * enrolled both ways; the station and registry CLIs; and the attacker's sqlite rewrite of station.db.
 * One world per test file: SoftHSM2 is configured once per process.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { main as station } from '../../station/cli/program.js';
import { createWorld, type World } from '../harness.js';

const run = promisify(execFile);

export interface Line {
  readonly w: World;
  readonly reg: string;
  readonly serve: ChildProcess;
  readonly url: string;
}
const lines: Line[] = [];

/** Stop the registries and tear the worlds down (afterAll). */
export async function closeLines(): Promise<void> {
  for (const l of lines.splice(0)) {
    if (l.serve.exitCode === null) l.serve.kill('SIGTERM');
    await l.w.teardown();
  }
}

/** The registry CLI in its own process. */
export async function registry(reg: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, ['bin/registry.mjs', ...args, '--data-dir', reg], { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

/** The station CLI in process (its own engine, as `station ...` opens it). */
export async function st(w: World, ...args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await station([...args, '--data-dir', w.dataDir], { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, out: out.join('\n') };
}

/** A station world (simulator + SoftHSM2) and a registry served from its own process, the station enrolled. */
export async function line(boards: number): Promise<Line> {
  const w = await createWorld({ boards: Array.from({ length: boards }, () => ({ model: 'LS-SIM-BASIC' as const })) });
  const reg = join(w.dir, 'registry');
  expect((await registry(reg, 'init', '--registry-id', 'hq-anchor')).code).toBe(0);
  const en = await registry(
    reg,
    'enroll-station',
    '--id',
    'test-station',
    '--chain',
    join(w.dataDir, 'pki/station-chain.pem'),
  );
  expect(en.code, en.out).toBe(0);
  const serve = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--port', '0', '--data-dir', reg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: serve.stdout! }).on('line', (l) => {
      const m = /listening on (http:\/\/\S+)/.exec(l);
      if (m) resolve(m[1]!);
    });
    serve.once('exit', (c) => reject(new Error(`registry serve exited with ${c}`)));
  });
  const l = { w, reg, serve, url };
  lines.push(l);
  const e = await st(w, 'enroll', '--registry', url, '--registry-cert', join(reg, 'registry.pem'));
  expect(e.code, e.out).toBe(0);
  await w.reopen(); // the engine now has sync configured
  return l;
}

export async function provision(l: Line, i: number): Promise<void> {
  const r = await l.w.engine.provision({ port: l.w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${l.w.logText().slice(-3000)}`);
}

export interface VerifyStation {
  ok: boolean;
  latest: { seq: number; hash: string } | null;
  heads: { seq: number; hash: string }[];
  findings: { kind: string; atSeq: number; message: string }[];
  problems: string[];
}
export async function verifyStation(l: Line): Promise<{ code: number; json: VerifyStation }> {
  const r = await registry(l.reg, 'verify-station', 'test-station', '--json');
  return { code: r.code, json: JSON.parse(r.out.slice(r.out.indexOf('{'))) as VerifyStation };
}
