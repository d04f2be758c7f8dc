import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baselineSha256, parseWorkOrder } from './work-order.js';
import { canonicalJson } from '../canonical.js';
import { sha256Hex } from '../bytes.js';

const h = (c: string) => c.repeat(64);
const WO = {
  schema: 'line-station/work-order/v1',
  id: 'WO-2026-0042',
  product: 'Sensor Hub rev C',
  profiles: ['ls-devkit'],
  quantity: 500,
  baseline: {
    firmware: { bootloader: [h('a')], application: [h('b')] },
    secureBoot: 'required',
    debugLocked: 'required',
    fuseDigests: [h('c')],
    configDigests: [h('d')],
  },
};

function messageOf(json: unknown): string {
  const r = parseWorkOrder(json, 'wo.json');
  if (r.ok) return 'ok';
  expect(r.error.code).toBe('INPUT_INVALID');
  return r.error.message;
}

describe('parseWorkOrder', () => {
  it('accepts a valid work order (object or JSON text)', () => {
    const r = parseWorkOrder(WO, 'wo.json');
    expect(r).toEqual({ ok: true, value: WO });
    expect(parseWorkOrder(JSON.stringify(WO), 'wo.json').ok).toBe(true);
  });

  it('accepts the shipped demo work order', () => {
    const dir = join(process.cwd(), 'resources', 'work-orders');
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const r = parseWorkOrder(readFileSync(join(dir, f), 'utf8'), f);
      expect(r.ok ? 'ok' : r.error.message).toBe('ok');
    }
  });

  it('names the path of the bad field', () => {
    const bad = structuredClone(WO);
    bad.baseline.firmware.application[0] = 'xyz';
    expect(messageOf(bad)).toBe(
      'wo.json: baseline.firmware.application[0]: expected 64 hex chars (lower-case SHA-256)',
    );
    expect(messageOf({ ...WO, quantity: 0 })).toBe('wo.json: quantity: expected a positive integer');
    expect(messageOf({ ...WO, quantity: 1.5 })).toContain('quantity: expected an integer');
    expect(messageOf({ ...WO, id: 'X-1' })).toContain('id: expected "WO-"');
    expect(messageOf({ ...WO, schema: 'v2' })).toContain('schema:');
    expect(messageOf({ ...WO, profiles: [] })).toContain('profiles: expected at least one board profile');
    expect(messageOf({ ...WO, extra: true })).toContain('extra');
    expect(messageOf({ ...WO, baseline: { ...WO.baseline, secureBoot: 'on' } })).toContain('baseline.secureBoot');
    const { product: _p, ...noProduct } = WO;
    expect(messageOf(noProduct)).toContain('product');
  });

  it('rejects non-objects and broken JSON text without throwing', () => {
    for (const j of [null, 42, [], '', '{', '{"schema":', 'null']) expect(messageOf(j)).toMatch(/^wo\.json: /);
  });

  it('baselineSha256 hashes the canonical baseline', async () => {
    const r = parseWorkOrder(WO, 'wo.json');
    if (!r.ok) throw new Error();
    expect(await baselineSha256(r.value)).toBe(await sha256Hex(canonicalJson(WO.baseline)));
  });
});
