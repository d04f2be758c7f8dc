/**
 * The fixture MITM, with real parts: a relay process (test/relay/main.ts, its own child process) between two socat
 * pty pairs, station <-> relay <-> simulated board, in front of the real station (engine, flow, SoftHSM2, SQLite).
 * It relays the genuine board and substitutes answers. Each attack must fail safely with a coded ATTEST_* error:
 * no certificate issued for the run, no record, the board not locked, the audit chain intact; and in the injection
 * attack the station never sends a wrapped key.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../core/result.js';
import type { FlowOutcome } from '../../core/provisioning/flow.js';
import { createWorld, type World } from '../harness.js';
import { startRelay, type Relay, type RelayMode } from '../relay/spawn.js';

let w: World;
/** Board i (model) is attacked through a relay in mode; each relay is its own process. */
const SETUP: ReadonlyArray<{ model: 'LS-SIM-SE' | 'LS-SIM-BASIC'; mode: RelayMode }> = [
  { model: 'LS-SIM-BASIC', mode: 'transport-key' },
  { model: 'LS-SIM-SE', mode: 'keygen-p256' },
  { model: 'LS-SIM-SE', mode: 'keygen-p384' },
  { model: 'LS-SIM-SE', mode: 'replay-attest' },
  { model: 'LS-SIM-BASIC', mode: 'pass' },
];
const relays = new Map<number, Relay>();

beforeAll(async () => {
  w = await createWorld({ boards: SETUP.map(({ model }) => ({ model })) });
  // Started together: each relay compiles its TypeScript at start (seconds on a loaded machine).
  const started = await Promise.all(
    SETUP.map(({ mode }, i) => startRelay({ boardLink: w.sim.ports[i]!, dir: join(w.dir, `relay-${i}`), mode })),
  );
  started.forEach((r, i) => relays.set(i, r));
}, 120_000);
afterAll(async () => {
  await Promise.all([...relays.values()].map((r) => r.stop()));
  await w?.teardown();
});

function through(i: number, mode: RelayMode): Relay {
  const r = relays.get(i);
  if (!r || SETUP[i]!.mode !== mode) throw new Error(`no ${mode} relay for board ${i}`);
  return r;
}

const provisionVia = (r: Relay, opts: { signal?: AbortSignal; onAttested?: () => void } = {}) =>
  w.engine.provision({
    port: r.port,
    workOrder: 'WO-DEMO-1',
    operator: 'mitm-test',
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (e) => {
      if (e.step === 'attest' && e.status === 'done') opts.onAttested?.();
    },
  });

function codeOf(r: Result<FlowOutcome>): string {
  return r.ok ? `unexpected ${r.value.status}` : r.error.code;
}

/** Nothing escaped: no certificate for the chip, no record, no lock, audit chain intact; the run failed for good. */
function expectNothingIssued(i: number, code: string): void {
  const chipId = w.sim.boards[i]!.chipId;
  expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
  expect(w.engine.store.findCurrentRecord(chipId)).toBeNull();
  expect(w.engine.store.findActiveRun(chipId)).toBeNull();
  expect(w.sim.state(i).locked).toBe(false);
  expect(w.sim.state(i).certSha256).toBeNull();
  expect(w.engine.store.verifyAudit().ok).toBe(true);
  const failed = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'run.failed');
  expect(failed.some((e) => (e.payload as { code?: string }).code === code)).toBe(true);
}

describe('relay (fixture MITM) between station and a genuine board', () => {
  it('control: relaying everything unchanged provisions the board (the relay itself is transparent)', async () => {
    const r = through(4, 'pass');
    const out = await provisionVia(r);
    if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message}\n${w.logText().slice(-3000)}`);
    expect(out.value.status).toBe('provisioned');
    expect(r.requests('injectKey')).toHaveLength(1);
    expect(r.events.some((e) => e.event === 'stolen-device-key')).toBe(false);
  });

  it('(a) injection: a substituted transport key is refused before anything is wrapped (ATTEST_KEY_MISMATCH)', async () => {
    const r = through(0, 'transport-key');
    const out = await provisionVia(r);
    expect(codeOf(out)).toBe('ATTEST_KEY_MISMATCH');
    // The relay did substitute, and the station asked the genuine board to attest its transport key...
    expect(r.events.some((e) => e.event === 'response' && e.op === 'injectBegin' && e.substituted)).toBe(true);
    expect(r.requests('attest')[0]?.fields).toEqual(['key', 'nonce']);
    // ...and never sent a wrapped key: no injectKey request passed the relay, nothing to unwrap.
    expect(r.requests('injectKey')).toEqual([]);
    expect(r.requests().some((e) => e.fields?.includes('wrappedKey'))).toBe(false);
    expect(r.events.some((e) => e.event === 'stolen-device-key')).toBe(false);
    expectNothingIssued(0, 'ATTEST_KEY_MISMATCH');
  });

  it("(b) on-board: keygen answered with the relay's own P-256 key is refused (ATTEST_KEY_MISMATCH)", async () => {
    const r = through(1, 'keygen-p256');
    const out = await provisionVia(r);
    expect(codeOf(out)).toBe('ATTEST_KEY_MISMATCH');
    expect(r.events.some((e) => e.event === 'response' && e.op === 'keygen' && e.substituted)).toBe(true);
    expect(r.requests('installCert')).toEqual([]);
    expectNothingIssued(1, 'ATTEST_KEY_MISMATCH');
  });

  it("(c) on-board: keygen answered with the relay's own P-384 key where the profile says P-256 (ATTEST_KEY_TYPE_MISMATCH)", async () => {
    const r = through(2, 'keygen-p384');
    const out = await provisionVia(r);
    expect(codeOf(out)).toBe('ATTEST_KEY_TYPE_MISMATCH');
    if (!out.ok) expect(out.error.details).toMatchObject({ expected: 'P-256', actual: 'P-384' });
    expect(r.requests('installCert')).toEqual([]);
    expectNothingIssued(2, 'ATTEST_KEY_TYPE_MISMATCH');
  });

  it('(d) a replayed old attestation is refused when the run resumes (ATTEST_NONCE_MISMATCH)', async () => {
    const r = through(3, 'replay-attest');
    // First pass: the relay records the genuine attestation; the operator cancels right after it.
    const ac = new AbortController();
    const first = await provisionVia(r, { signal: ac.signal, onAttested: () => ac.abort() });
    expect(codeOf(first)).toBe('FLOW_CANCELLED');
    const chipId = w.sim.boards[3]!.chipId;
    expect(w.engine.store.findActiveRun(chipId)?.step).toBe('attest');
    expect(w.engine.store.listIssuedCertificates(chipId)).toEqual([]);
    // The resumed run re-attests with a fresh nonce over the key the board holds; the relay replays the old answer.
    const second = await provisionVia(r);
    expect(codeOf(second)).toBe('ATTEST_NONCE_MISMATCH');
    expect(r.requests('attest')).toHaveLength(2);
    expect(r.events.filter((e) => e.event === 'response' && e.op === 'attest' && e.substituted)).toHaveLength(1);
    expect(r.requests('installCert')).toEqual([]);
    expectNothingIssued(3, 'ATTEST_NONCE_MISMATCH');
  });

  it('after each attack the board itself is fine: provisioned directly (no relay) it passes', async () => {
    for (const i of [0, 1, 2, 3]) await relays.get(i)!.stop(); // the relay holds the board's link
    for (const i of [0, 1, 2, 3]) {
      const out = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'mitm-test' });
      if (!out.ok) throw new Error(`board ${i}: ${out.error.code}: ${out.error.message}`);
      expect(out.value.status).toBe('provisioned');
    }
    // Every issued certificate is in a record (nothing from the attacked runs).
    const recorded = new Set(w.engine.store.listRecords({ limit: 1000 }).map((r) => r.certificateSerial));
    for (const c of w.engine.store.listIssuedCertificates()) expect(recorded.has(c.serialNumber)).toBe(true);
  });
});
