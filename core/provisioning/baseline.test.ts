import { describe, expect, it } from 'vitest';
import {
  BaselinePolicySchema,
  evaluateBaseline,
  evaluatePcrBaseline,
  type BaselinePolicy,
  type BaselineRule,
  type TpmMeasurements,
} from './baseline.js';
import type { Measurements } from '../model.js';

const h = (c: string) => c.repeat(64);
const POLICY: BaselinePolicy = {
  firmware: { bootloader: [h('a')], application: [h('b'), h('c')] },
  secureBoot: 'required',
  debugLocked: 'required',
  fuseDigests: [h('d')],
  configDigests: [h('e')],
};
const GOOD: Measurements = {
  firmware: [
    { name: 'bootloader', version: '1.0.0', sha256: h('a') },
    { name: 'application', version: '2.1.0', sha256: h('c') },
  ],
  secureBoot: true,
  debugLocked: true,
  fuseDigest: h('d'),
  configDigest: h('e'),
};

type Case = {
  name: string;
  m?: Partial<Measurements>;
  policy?: Partial<BaselinePolicy>;
  rules: BaselineRule[];
};

const CASES: Case[] = [
  { name: 'matching board passes', rules: [] },
  {
    name: 'second allowed application digest passes',
    m: { firmware: [GOOD.firmware[0]!, { name: 'application', version: '2.0', sha256: h('b') }] },
    rules: [],
  },
  {
    name: 'wrong application digest',
    m: { firmware: [GOOD.firmware[0]!, { name: 'application', version: '2.0', sha256: h('f') }] },
    rules: ['firmware.digest'],
  },
  { name: 'missing bootloader', m: { firmware: [GOOD.firmware[1]!] }, rules: ['firmware.missing'] },
  { name: 'no firmware at all', m: { firmware: [] }, rules: ['firmware.missing', 'firmware.missing'] },
  {
    name: 'unlisted slot',
    m: { firmware: [...GOOD.firmware, { name: 'radio', version: '1', sha256: h('a') }] },
    rules: ['firmware.unlisted'],
  },
  { name: 'duplicate slot', m: { firmware: [...GOOD.firmware, GOOD.firmware[0]!] }, rules: ['firmware.duplicate'] },
  { name: 'secure boot off', m: { secureBoot: false }, rules: ['secureBoot'] },
  { name: 'secure boot off, policy any', m: { secureBoot: false }, policy: { secureBoot: 'any' }, rules: [] },
  { name: 'debug unlocked', m: { debugLocked: false }, rules: ['debugLocked'] },
  { name: 'debug unlocked, policy any', m: { debugLocked: false }, policy: { debugLocked: 'any' }, rules: [] },
  { name: 'wrong fuse digest', m: { fuseDigest: h('0') }, rules: ['fuseDigest'] },
  {
    name: 'fuse digest not checked when omitted',
    m: { fuseDigest: h('0') },
    policy: { fuseDigests: undefined },
    rules: [],
  },
  { name: 'wrong config digest', m: { configDigest: h('0') }, rules: ['configDigest'] },
  {
    name: 'config digest not checked when omitted',
    m: { configDigest: h('0') },
    policy: { configDigests: undefined },
    rules: [],
  },
  { name: 'upper-case digest does not match', m: { fuseDigest: h('D') }, rules: ['fuseDigest'] },
  {
    name: 'everything wrong',
    m: {
      firmware: [{ name: 'x', version: '0', sha256: h('0') }],
      secureBoot: false,
      debugLocked: false,
      fuseDigest: h('1'),
      configDigest: h('2'),
    },
    rules: [
      'firmware.missing',
      'firmware.missing',
      'firmware.unlisted',
      'secureBoot',
      'debugLocked',
      'fuseDigest',
      'configDigest',
    ],
  },
];

describe('evaluateBaseline', () => {
  it.each(CASES)('$name', ({ m, policy, rules }) => {
    const p = { ...POLICY, ...policy } as BaselinePolicy;
    const v = evaluateBaseline({ ...GOOD, ...m }, p);
    expect(v.violations.map((x) => x.rule).sort()).toEqual([...rules].sort());
    expect(v.pass).toBe(rules.length === 0);
    for (const x of v.violations) {
      expect(x.message.length).toBeGreaterThan(5);
      expect(x.expected).not.toBeUndefined();
      expect(x.actual).not.toBeUndefined();
    }
  });

  it('reports expected and actual values', () => {
    const v = evaluateBaseline(
      { ...GOOD, firmware: [GOOD.firmware[0]!, { name: 'application', version: '9', sha256: h('9') }] },
      POLICY,
    );
    expect(v.violations).toEqual([
      {
        rule: 'firmware.digest',
        expected: [h('b'), h('c')],
        actual: h('9'),
        message: expect.stringContaining('application'),
      },
    ]);
  });
});

describe('BaselinePolicySchema', () => {
  it('accepts the documented shape and rejects bad ones', () => {
    expect(BaselinePolicySchema.safeParse(POLICY).success).toBe(true);
    const bad: unknown[] = [
      { ...POLICY, firmware: {} },
      { ...POLICY, firmware: { app: [] } },
      { ...POLICY, firmware: { app: ['abc'] } },
      { ...POLICY, firmware: { app: [h('A')] } },
      { ...POLICY, firmware: { 'bad slot': [h('a')] } },
      { ...POLICY, secureBoot: 'yes' },
      { ...POLICY, fuseDigests: [] },
      { ...POLICY, extra: 1 },
    ];
    for (const b of bad) expect(BaselinePolicySchema.safeParse(b).success, JSON.stringify(b).slice(0, 80)).toBe(false);
  });
});

describe('evaluatePcrBaseline (TPM boards)', () => {
  const zero = '0'.repeat(64);
  const TPM: TpmMeasurements = {
    pcrBank: 'sha256',
    pcrs: { '0': zero, '7': h('7'), '10': zero },
    quote: { attest: 'AAAA', signature: 'AAAA', nonce: 'AA' },
    ak: { public: 'AAAA', name: `000b${h('a')}` },
  };
  const withPcrs = (values: Record<string, string[]>, bank: 'sha256' | 'sha1' = 'sha256'): BaselinePolicy => ({
    ...POLICY,
    pcrs: { bank, values },
  });
  const rules = (m: TpmMeasurements, p: BaselinePolicy) => evaluatePcrBaseline(m, p).violations.map((v) => v.rule);

  it('passes when every quoted PCR is listed with its value', () => {
    const v = evaluatePcrBaseline(TPM, withPcrs({ '0': [zero], '7': [h('6'), h('7')], '10': [zero] }));
    expect(v).toEqual({ pass: true, violations: [] });
  });
  it('names each rule', () => {
    expect(rules(TPM, POLICY)).toEqual(['pcrs.absent']);
    expect(rules(TPM, withPcrs({ '0': ['0'.repeat(40)] }, 'sha1'))).toEqual(['pcr.bank']);
    expect(rules(TPM, withPcrs({ '0': [zero], '7': [h('6')], '10': [zero], '11': [zero] }))).toEqual([
      'pcr.value',
      'pcr.missing',
    ]);
    expect(rules(TPM, withPcrs({ '0': [zero] }))).toEqual(['pcr.unlisted', 'pcr.unlisted']);
  });
  it('the pcrs block of a work order is strict and sized by its bank', () => {
    expect(BaselinePolicySchema.safeParse(withPcrs({ '0': [zero] })).success).toBe(true);
    const bad: unknown[] = [
      withPcrs({}),
      withPcrs({ '0': [] }),
      withPcrs({ '24': [zero] }),
      withPcrs({ '00': [zero] }),
      withPcrs({ '0': ['0'.repeat(40)] }),
      withPcrs({ '0': [zero.toUpperCase().replace(/0/g, 'A')] }),
      { ...POLICY, pcrs: { bank: 'md5', values: { '0': [zero] } } },
      { ...POLICY, pcrs: { bank: 'sha256', values: { '0': [zero] }, extra: 1 } },
    ];
    for (const b of bad) expect(BaselinePolicySchema.safeParse(b).success, JSON.stringify(b).slice(0, 120)).toBe(false);
  });
});
