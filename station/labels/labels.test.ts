/**
 * Labels through the real path: simulated boards on ptys, SoftHSM2, SQLite, the StationService and the `station`
 * CLI. After PASS the label goes to a raw TCP printer on loopback (a printer that is off leaves the PASS and shows
 * on the slot, or as the `LABEL NOT PRINTED` line of `station provision`); `station provision` and `station watch`
 * print `LABEL printed <target>` after a PASS. The ZPL the printer receives and the PNG of getLabel both carry a QR
 * that jsqr decodes to the record's certificate fingerprint (computed by openssl from the record's PEM) and the
 * certificate's URN; reprints are audited (the chain verifies, the entry names operator and record), also when the
 * printer fails, and refused without a session; `station label` writes a PDF that qpdf accepts and prints, audited.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResult, SlotView, StationEvent } from '../../core/api.js';
import { fromBase64 } from '../../core/bytes.js';
import { parseQrPayload } from '../../core/labels/payload.js';
import { createLogger } from '../../native/logger.js';
import { certificateTruth, decodeQr, qrOfZpl, startLoopbackPrinter } from '../../testkit/labels.js';
import { must as unwrap } from '../../testkit/pki/test-util.js';
import { createWorld, type World } from '../../test/harness.js';
import { addOperators } from '../../test/operators-fixture.js';
import { main as station } from '../cli/program.js';
import { updateStationConfig } from '../config.js';
import { call, createStationService, type StationService } from '../service/index.js';

const OP_PIN = '918273';
let w: World;
let svc: StationService;
let port = 0;
const events: StationEvent[] = [];

function must<T>(r: ApiResult<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText().slice(-3000)}`);
  return r.value;
}

async function waitSlot(pred: (s: SlotView) => boolean, ms = 60_000): Promise<SlotView[]> {
  const t0 = Date.now();
  for (;;) {
    const latest = new Map<string, SlotView>();
    for (const e of events) if (e.type === 'slot') latest.set(e.slot.port, e.slot);
    const all = [...latest.values()];
    if (all.length === 2 && all.every(pred)) return all;
    if (Date.now() - t0 > ms) throw new Error(`timeout; slots: ${JSON.stringify(all)}\n${w.logText().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the record says, checked by openssl: the certificate's SHA-256 fingerprint and its SAN URN. */
function recordTruth(recordId: string): { certificateSha256: string; deviceUrn: string } {
  const rec = w.engine.store.listRecords({ limit: 100 }).find((r) => r.recordId === recordId)!;
  return certificateTruth((JSON.parse(rec.recordJson) as { certificate: { pem: string } }).certificate.pem, w.dir);
}

beforeAll(async () => {
  // Two boards for the service; the others are provisioned by `station provision` and `station watch` (their label line).
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-BASIC' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-BASIC' },
      { model: 'LS-SIM-SE' },
    ],
  });
  // A free loopback port, closed again: the printer is "off" until a test starts it there.
  const probe = await startLoopbackPrinter();
  port = probe.port;
  await probe.close();
  unwrap(
    updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      labels: { printer: { kind: 'tcp', host: '127.0.0.1', port, timeoutMs: 2000 } },
    })),
  );
  await w.reopen();
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
  svc = createStationService({
    engine: w.engine,
    logger: createLogger({ file: join(w.dir, 'svc.log') }),
    extraPorts: w.sim.ports.slice(0, 2),
  });
  svc.subscribe((e) => events.push(e));
  await svc.start();
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await w?.teardown();
});

describe('labels after PASS, preview and reprint', () => {
  let recordIds: string[] = [];

  it('a printer that is off: both boards PASS, each slot shows the label failed with PRINTER_UNREACHABLE', async () => {
    must(await call(svc, 'op', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    must(await call(svc, 'op', 'selectWorkOrder', { id: 'WO-DEMO-1' }));
    const slots = await waitSlot((s) => s.state === 'pass' && s.boardLabel?.state === 'failed');
    for (const s of slots) {
      expect(s.state).toBe('pass');
      expect(s.error).toBeNull();
      expect(s.boardLabel).toMatchObject({
        recordId: s.recordId,
        target: `tcp:127.0.0.1:${port}`,
        error: { code: 'PRINTER_UNREACHABLE', action: 'retry' },
      });
    }
    recordIds = slots.map((s) => s.recordId!);
    expect(w.engine.store.countRecords()).toBe(2);
  });

  it('station provision: PASS, then the line `LABEL printed <target>`, the printer gets the record label', async () => {
    const out: string[] = [];
    const printer = await startLoopbackPrinter(port);
    process.env['LINE_STATION_PIN'] = OP_PIN;
    try {
      const args = ['provision', '--data-dir', w.dataDir, '--port', w.sim.ports[2]!, '--work-order', 'WO-DEMO-1'];
      const code = await station([...args, '--operator', 'op-1'], { out: (l) => out.push(l), err: (l) => out.push(l) });
      expect(code, out.join('\n')).toBe(0);
      const pass = out.findIndex((l) => / PASS .* provisioned: record /.test(l));
      expect(pass).toBeGreaterThanOrEqual(0);
      expect(out[pass + 1]).toBe(`[${w.sim.ports[2]}] LABEL printed tcp:127.0.0.1:${port}`);
      expect(printer.jobs).toHaveLength(1);
      const recordId = /record ([0-9a-f-]{36})/.exec(out[pass]!)![1]!;
      expect(unwrap(parseQrPayload(qrOfZpl(printer.jobs[0]!)!))).toEqual(recordTruth(recordId));
    } finally {
      delete process.env['LINE_STATION_PIN'];
      await printer.close();
    }
  });

  it('station provision with the printer off: PASS, exit 0, then `LABEL NOT PRINTED PRINTER_UNREACHABLE` and the reprint command', async () => {
    const out: string[] = [];
    process.env['LINE_STATION_PIN'] = OP_PIN;
    try {
      const args = ['provision', '--data-dir', w.dataDir, '--port', w.sim.ports[3]!, '--work-order', 'WO-DEMO-1'];
      const code = await station([...args, '--operator', 'op-1'], { out: (l) => out.push(l), err: (l) => out.push(l) });
      expect(code, out.join('\n')).toBe(0);
      const pass = out.findIndex((l) => / PASS .* provisioned: record /.test(l));
      const recordId = /record ([0-9a-f-]{36})/.exec(out[pass]!)![1]!;
      expect(out[pass + 1]).toMatch(
        new RegExp(
          `^\\[${w.sim.ports[3]}\\] LABEL NOT PRINTED PRINTER_UNREACHABLE: .*\\(the board passed; reprint: station label --record ${recordId} --print\\)$`,
        ),
      );
      expect(w.engine.store.findCurrentRecord(w.sim.boards[3]!.chipId)?.recordId).toBe(recordId);
    } finally {
      delete process.env['LINE_STATION_PIN'];
    }
  });

  it('station watch: the PASS is followed by its label line; the printer gets the label', async () => {
    const out: string[] = [];
    const printer = await startLoopbackPrinter(port);
    process.env['LINE_STATION_PIN'] = OP_PIN;
    try {
      const args = ['watch', '--data-dir', w.dataDir, '--port', w.sim.ports[4]!, '--work-order', 'WO-DEMO-1'];
      const code = await station([...args, '--operator', 'op-1', '--exit-when-done'], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      });
      expect(code, out.join('\n')).toBe(0);
      const pass = out.findIndex((l) => l.startsWith(`[${w.sim.ports[4]}] PASS `));
      expect(out[pass + 1]).toBe(`[${w.sim.ports[4]}] LABEL printed tcp:127.0.0.1:${port}`);
      const recordId = /record ([0-9a-f-]{36})/.exec(out[pass]!)![1]!;
      expect(unwrap(parseQrPayload(qrOfZpl(printer.jobs[0]!)!))).toEqual(recordTruth(recordId));
    } finally {
      delete process.env['LINE_STATION_PIN'];
      await printer.close();
    }
  });

  it('getLabel: the PNG preview decodes (pngjs + jsqr) to the fingerprint openssl computes and the SAN URN', async () => {
    for (const recordId of recordIds) {
      const f = must(await call(svc, 'op', 'getLabel', { recordId, format: 'png' }));
      expect(f).toMatchObject({ mediaType: 'image/png', printer: `tcp:127.0.0.1:${port}` });
      const png = PNG.sync.read(Buffer.from(fromBase64(f.base64)));
      const text = decodeQr({ data: new Uint8ClampedArray(png.data), width: png.width, height: png.height });
      expect(text).toBe(f.qrPayload);
      expect(unwrap(parseQrPayload(text!))).toEqual(recordTruth(recordId));
    }
  });

  it('reprint: the printer receives exactly the ZPL of the label; its QR decodes to the record; audited', async () => {
    const printer = await startLoopbackPrinter(port);
    try {
      const recordId = recordIds[0]!;
      const r = must(await call(svc, 'op', 'reprintLabel', { recordId }));
      expect(r.target).toBe(`tcp:127.0.0.1:${port}`);
      const zpl = new TextDecoder().decode(
        fromBase64(must(await call(svc, 'op', 'getLabel', { recordId, format: 'zpl' })).base64),
      );
      expect(printer.jobs).toEqual([zpl]);
      expect(r.bytes).toBe(Buffer.byteLength(zpl));
      expect(unwrap(parseQrPayload(qrOfZpl(printer.jobs[0]!)!))).toEqual(recordTruth(recordId));
      const audit = w.engine.store.listAudit(0, 100_000).filter((e) => e.type === 'label.reprint');
      expect(audit.at(-1)?.payload).toMatchObject({
        recordId,
        operator: 'op-1',
        supervisor: null,
        via: 'ui',
        outcome: 'printed',
        target: `tcp:127.0.0.1:${port}`,
      });
      expect(w.engine.store.verifyAudit().ok).toBe(true);
    } finally {
      await printer.close();
    }
  });

  it('a failed reprint is audited too and answers the printer code; no session: AUTH_REQUIRED, no audit', async () => {
    const before = w.engine.store.listAudit(0, 100_000).length;
    const r = await svc.invoke('op', 'reprintLabel', { recordId: recordIds[1]! });
    expect(!r.ok && r.error.code).toBe('PRINTER_UNREACHABLE');
    const after = w.engine.store.listAudit(0, 100_000);
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)).toMatchObject({
      type: 'label.reprint',
      payload: { outcome: 'failed', code: 'PRINTER_UNREACHABLE' },
    });
    for (const op of ['reprintLabel', 'getLabel'] as const) {
      const anon = await svc.invoke('nobody', op, { recordId: recordIds[0]! });
      expect(!anon.ok && anon.error.code).toBe('AUTH_REQUIRED');
    }
    expect(w.engine.store.listAudit(0, 100_000)).toHaveLength(before + 1);
    const bad = await svc.invoke('op', 'reprintLabel', { recordId: '00000000-0000-4000-8000-000000000000' });
    expect(!bad.ok && bad.error.code).toBe('INPUT_INVALID');
    const junk = await svc.invoke('op', 'getLabel', { recordId: '../../etc/passwd' });
    expect(!junk.ok && junk.error).toMatchObject({ code: 'INPUT_INVALID', details: { path: 'recordId' } });
  });

  it('station label: --out PDF (qpdf accepts it) and --print, audited with the operator; sign-in required', async () => {
    const recordId = recordIds[1]!;
    const out: string[] = [];
    const cli = async (args: string[], pin = OP_PIN) => {
      out.length = 0;
      process.env['LINE_STATION_PIN'] = pin;
      try {
        return await station([...args, '--data-dir', w.dataDir], { out: (l) => out.push(l), err: (l) => out.push(l) });
      } finally {
        delete process.env['LINE_STATION_PIN'];
      }
    };
    const pdf = join(w.dir, 'label.pdf');
    expect(await cli(['label', '--record', recordId, '--out', pdf, '--operator', 'op-1'], '1111'), out.join('\n')).toBe(
      1,
    );
    expect(out.join('\n')).toContain('AUTH_INVALID_CREDENTIALS');
    expect(await cli(['label', '--record', recordId, '--operator', 'op-1'])).toBe(2);
    expect(await cli(['label', '--record', recordId, '--out', join(w.dir, 'x.txt'), '--operator', 'op-1'])).toBe(2);

    const printer = await startLoopbackPrinter(port);
    try {
      const code = await cli(['label', '--record', recordId, '--out', pdf, '--print', '--operator', 'op-1']);
      expect(code, out.join('\n')).toBe(0);
      expect(out.join('\n')).toMatch(new RegExp(`printed: tcp:127.0.0.1:${port}`));
      expect(execFileSync('qpdf', ['--check', pdf], { encoding: 'utf8' })).toContain(
        'No syntax or stream encoding errors',
      );
      expect(readFileSync(pdf).subarray(0, 8).toString('latin1')).toBe('%PDF-1.4');
      expect(unwrap(parseQrPayload(qrOfZpl(printer.jobs[0]!)!))).toEqual(recordTruth(recordId));
    } finally {
      await printer.close();
    }
    const audit = w.engine.store.listAudit(0, 100_000);
    expect(audit.filter((e) => e.type === 'label.export').at(-1)?.payload).toMatchObject({
      recordId,
      operator: 'op-1',
      format: 'pdf',
    });
    expect(audit.filter((e) => e.type === 'label.reprint').at(-1)?.payload).toMatchObject({
      recordId,
      operator: 'op-1',
      via: 'cli',
      outcome: 'printed',
    });
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  });
});
