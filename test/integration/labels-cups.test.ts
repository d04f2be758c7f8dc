/**
 * Labels through a real CUPS queue (issue 13): a private `cupsd` (testkit/cups.ts: its own config, spool and logs in
 * a temp dir, listening on a socket file) with a raw queue made by `lpadmin -p zebra -E -v socket://127.0.0.1:PORT
 * -m raw` — exactly the set-up docs/operations.md "Label printer" gives — whose device is a loopback TCP printer of
 * the test; the station is configured `{"kind": "cups", "queue": "zebra"}` and reaches that cupsd through
 * `CUPS_SERVER` in its environment. After PASS, `station provision` (bin/station.mjs, its own process) runs the
 * real `lp`; cupsd's socket backend delivers the job, and the printer receives exactly the ZPL of the record's label
 * (byte for byte the ZPL `station label --out` writes), whose QR decodes (jsqr) to the certificate fingerprint and
 * URN openssl reads from the record; cupsd lists the job as completed. A stopped queue (`cupsdisable`), an unknown queue and a scheduler that is not
 * running: the board still PASSes, the label line names the printer error (PRINTER_FAILED / PRINTER_UNREACHABLE),
 * nothing is queued behind a stopped queue (nothing prints when it is resumed), and a reprint is audited; a CUPS
 * server that never answers costs at most the configured timeout (PRINTER_UNREACHABLE ETIMEDOUT).
 * Needs cups-daemon, cups-client and cups (the socket backend; scripts/setup.sh): skipped, with the reason, without
 * them — except in CI (CI set), where setup.sh installs them and their absence fails.
 */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQrPayload } from '../../core/labels/payload.js';
import { sendZpl } from '../../native/printers/send.js';
import { updateStationConfig } from '../../station/config.js';
import { cupsUnavailable, startPrivateCupsd, type PrivateCupsd } from '../../testkit/cups.js';
import { certificateTruth, qrOfZpl, startLoopbackPrinter, type LoopbackPrinter } from '../../testkit/labels.js';
import { must } from '../../testkit/pki/test-util.js';
import { provisionArgs, runStationCli } from '../../testkit/station-cli.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { stationProcess } from '../station-process.js';

const OP_PIN = '731902';
const QUEUE = 'zebra';
const skipReason = cupsUnavailable();
if (skipReason) console.warn(`[labels-cups] SKIPPED: ${skipReason}`);
// CI installs CUPS through scripts/setup.sh (as it does PostgreSQL, scripts/test.sh): a skip there would hide a
// broken install step, so in CI a missing piece fails instead.
const requiredHere = Boolean(process.env['CI']);

let w: World;
let cups: PrivateCupsd;
let printer: LoopbackPrinter;

beforeAll(async () => {
  if (skipReason) return;
  printer = await startLoopbackPrinter();
  cups = await startPrivateCupsd();
  cups.addRawQueue(QUEUE, `socket://127.0.0.1:${printer.port}`);
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
  setQueue(QUEUE);
}, 120_000);

afterAll(async () => {
  await cups?.stop();
  await printer?.close();
  await w?.teardown();
});

function setQueue(queue: string): void {
  must(
    updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      labels: { printer: { kind: 'cups', queue, timeoutMs: 10_000 } },
    })),
  );
}

/** `station ARGS` as an operator's shell runs it, with the private cupsd in its environment (or `env`). */
const station = (args: string[], env: Record<string, string> = cups.env) =>
  runStationCli(args, { ...env, LINE_STATION_PIN: OP_PIN });

/** `station ARGS` as its own process (`node bin/station.mjs`), the private cupsd in its environment. */
function stationAsProcess(args: string[]): Promise<{ code: number; text: string }> {
  const child = stationProcess(args, { ...cups.env, LINE_STATION_PIN: OP_PIN });
  child.stdin.end();
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, text: text.trimEnd() })));
}

/**
 * `station provision` of board `i` (in this process, or as its own process): exit 0, the PASS line's record id and
 * the label line after it.
 */
async function provision(
  i: number,
  how: 'in-process' | 'process' = 'in-process',
): Promise<{ recordId: string; labelLine: string; text: string }> {
  const port = w.sim.ports[i]!;
  const args = provisionArgs(w.dataDir, port, 'WO-DEMO-1');
  const r = how === 'process' ? await stationAsProcess(args) : await station(args);
  expect(r.code, r.text).toBe(0);
  const lines = r.text.split('\n');
  const pass = lines.findIndex((l) => l.startsWith(`[${port}] PASS `) && / provisioned: record /.test(l));
  expect(pass, r.text).toBeGreaterThanOrEqual(0);
  const recordId = /record ([0-9a-f-]{36})/.exec(lines[pass]!)![1]!;
  expect(w.engine.store.findCurrentRecord(w.sim.boards[i]!.chipId)?.recordId).toBe(recordId);
  return { recordId, labelLine: lines[pass + 1] ?? '', text: r.text };
}

/** The ZPL of the record's label as the station renders it: `station label --record ID --out F.zpl`. */
async function stationZpl(recordId: string): Promise<string> {
  const f = join(w.dir, `${recordId}.zpl`);
  const r = await station(['label', '--record', recordId, '--out', f, '--operator', 'op-1', '--data-dir', w.dataDir]);
  expect(r.code, r.text).toBe(0);
  return readFileSync(f, 'utf8');
}

function recordTruth(recordId: string): { certificateSha256: string; deviceUrn: string } {
  const rec = w.engine.store.listRecords({ limit: 100 }).find((r) => r.recordId === recordId)!;
  return certificateTruth((JSON.parse(rec.recordJson) as { certificate: { pem: string } }).certificate.pem, w.dir);
}

/** Wait until the printer has `n` jobs (cupsd runs the backend after lp has returned). */
async function jobs(n: number, ms = 15_000): Promise<string[]> {
  const t0 = Date.now();
  while (printer.jobs.length < n) {
    if (Date.now() - t0 > ms)
      throw new Error(`printer has ${printer.jobs.length} of ${n} jobs; cupsd log:\n${cups.errorLog().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return printer.jobs;
}

/** Job ids cupsd lists for the queue: completed (`lpstat -W completed -o`) or not yet (`lpstat -o`). */
function cupsJobs(which: 'completed' | 'not-completed'): string[] {
  return cups
    .tool('lpstat', ['-W', which, '-o', QUEUE])
    .split('\n')
    .map((l) => l.split(/\s+/)[0]!)
    .filter((id) => id.startsWith(`${QUEUE}-`));
}

describe.runIf(requiredHere)('CUPS in CI', () => {
  it('cupsd, lp and the socket backend are installed (scripts/setup.sh)', () => {
    expect(skipReason).toBeNull();
  });
});

describe.skipIf(skipReason !== null)(
  `labels through a real CUPS raw queue${skipReason ? ` — skipped: ${skipReason}` : ''}`,
  () => {
    it('`node bin/station.mjs provision`: PASS, `LABEL printed cups:zebra`; cupsd delivers exactly the label ZPL to the socket device; the QR is the record', async () => {
      const { recordId, labelLine } = await provision(0, 'process');
      expect(labelLine).toBe(`[${w.sim.ports[0]}] LABEL printed cups:${QUEUE}`);
      const [got] = await jobs(1);
      const zpl = await stationZpl(recordId);
      expect(got).toBe(zpl);
      expect(Buffer.byteLength(got!)).toBe(Buffer.byteLength(zpl));
      expect(must(parseQrPayload(qrOfZpl(got!)!))).toEqual(recordTruth(recordId));
      // cupsd's own account: one job, completed, nothing left in the queue.
      expect(cupsJobs('completed')).toHaveLength(1);
      expect(cupsJobs('not-completed')).toEqual([]);
      expect(cups.errorLog()).toMatch(/\[Job \d+\] Job completed\./);
    });

    it('a stopped queue: PASS, `LABEL NOT PRINTED PRINTER_FAILED` with its reason, nothing queued; reprint after cupsenable prints it', async () => {
      cups.tool('cupsdisable', ['-r', 'out of labels', QUEUE]);
      const before = printer.jobs.length;
      const { recordId, labelLine } = await provision(1);
      expect(labelLine).toMatch(
        new RegExp(
          `^\\[${w.sim.ports[1]}\\] LABEL NOT PRINTED PRINTER_FAILED: the CUPS queue ${QUEUE} is stopped \\(out of labels\\).*` +
            `\\(the board passed; reprint: station label --record ${recordId} --print\\)$`,
        ),
      );
      expect(cupsJobs('not-completed')).toEqual([]); // not held behind the stopped queue
      cups.tool('cupsenable', [QUEUE]);
      await new Promise((r) => setTimeout(r, 1000));
      expect(printer.jobs).toHaveLength(before); // resuming the queue prints nothing the station reported unprinted

      const r = await station([
        'label',
        '--record',
        recordId,
        '--print',
        '--operator',
        'op-1',
        '--data-dir',
        w.dataDir,
      ]);
      expect(r.code, r.text).toBe(0);
      expect(r.text).toContain(`printed: cups:${QUEUE}`);
      const got = (await jobs(before + 1))[before]!;
      expect(got).toBe(await stationZpl(recordId));
      expect(must(parseQrPayload(qrOfZpl(got)!))).toEqual(recordTruth(recordId));
      const audit = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'label.reprint');
      expect(audit.at(-1)?.payload).toMatchObject({
        recordId,
        via: 'cli',
        outcome: 'printed',
        target: `cups:${QUEUE}`,
      });
    });

    it('an unknown queue: PASS, `LABEL NOT PRINTED PRINTER_FAILED` with lp’s message', async () => {
      setQueue('no-such-queue');
      try {
        const before = printer.jobs.length;
        const { recordId, labelLine } = await provision(2);
        expect(labelLine).toMatch(
          new RegExp(
            `^\\[${w.sim.ports[2]}\\] LABEL NOT PRINTED PRINTER_FAILED: lp -d no-such-queue exited with 1: ` +
              `lp: Error - The printer or class does not exist\\. \\(the board passed; reprint: station label --record ${recordId} --print\\)$`,
          ),
        );
        expect(printer.jobs).toHaveLength(before);
      } finally {
        setQueue(QUEUE);
      }
    });

    it('no scheduler at CUPS_SERVER: the reprint fails PRINTER_UNREACHABLE (exit 1), audited as failed', async () => {
      const recordId = w.engine.store.findCurrentRecord(w.sim.boards[0]!.chipId)!.recordId;
      const r = await station(
        ['label', '--record', recordId, '--print', '--operator', 'op-1', '--data-dir', w.dataDir],
        { CUPS_SERVER: join(w.dir, 'no-cupsd.sock') },
      );
      expect(r.code, r.text).toBe(1);
      expect(r.text).toContain('PRINTER_UNREACHABLE');
      expect(r.text).toContain('the CUPS scheduler is not running');
      const audit = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'label.reprint');
      expect(audit.at(-1)?.payload).toMatchObject({ recordId, outcome: 'failed', code: 'PRINTER_UNREACHABLE' });
      expect(w.engine.store.verifyAudit().ok).toBe(true);
    });

    it('a CUPS server that accepts the connection and never answers: PRINTER_UNREACHABLE ETIMEDOUT within the budget', async () => {
      const held: Socket[] = [];
      const silent = createServer((s) => held.push(s)); // reads nothing, answers nothing
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      const saved = process.env['CUPS_SERVER'];
      process.env['CUPS_SERVER'] = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
      try {
        const t0 = Date.now();
        const r = await sendZpl({ kind: 'cups', queue: QUEUE, timeoutMs: 1000 }, '^XA^XZ\n');
        expect(r).toMatchObject({ ok: false, error: { code: 'PRINTER_UNREACHABLE', details: { errno: 'ETIMEDOUT' } } });
        // The budget is enforced (lp alone would wait for ever); the bound is loose so that a loaded machine's
        // process start-up cannot fail it.
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(held.length).toBeGreaterThan(0); // lpstat did reach it
      } finally {
        if (saved === undefined) delete process.env['CUPS_SERVER'];
        else process.env['CUPS_SERVER'] = saved;
        for (const s of held) s.destroy();
        await new Promise((r) => silent.close(r));
      }
    });
  },
);
