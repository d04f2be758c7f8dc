import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BoardIdentity } from '../model.js';
import type { DetectedPort } from '../ports.js';
import {
  checkIdentityText,
  loadProfiles,
  matchProfile,
  parseBoardProfile,
  renderUdevRules,
  type BoardProfile,
  type BoardProfileJson,
} from './profiles.js';

const boardsDir = new URL('../../resources/boards/', import.meta.url);
const shipped = readdirSync(boardsDir)
  .filter((n) => n.endsWith('.json'))
  .map((n) => ({ source: n, json: JSON.parse(readFileSync(new URL(n, boardsDir), 'utf8')) as unknown }));
const seJson = shipped.find((e) => e.source === 'ls-sim-se.json')!.json as BoardProfileJson;

const clone = (): BoardProfileJson => structuredClone(seJson);
function profiles(): BoardProfile[] {
  const r = loadProfiles(shipped);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}
function must(json: unknown): BoardProfile {
  const r = parseBoardProfile(json, 'test');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}
function identity(model: string, serialNumber: string): BoardIdentity {
  return {
    protocolVersion: 1,
    chipId: '00112233aabbccdd',
    serialNumber,
    model,
    hardwareRevision: 'B',
    firmwareVersion: '1.0.0',
    capabilities: { onboardKeygen: true, keyInjection: true, curves: ['P-256'] },
    state: { hasKey: false, certificateSha256: null, locked: false },
  };
}
const usbPort = (vendorId: number, productId: number, path = '/dev/ttyACM0'): DetectedPort => ({
  path,
  source: 'serial',
  usb: { vendorId, productId },
});
function invalidAt(json: unknown): { path: string; message: string } {
  const r = parseBoardProfile(json, 'boards/x.json');
  if (r.ok) throw new Error('expected invalid');
  expect(r.error.code).toBe('INPUT_INVALID');
  expect(r.error.message).toContain('boards/x.json');
  return { path: String(r.error.details?.path), message: r.error.message };
}

describe('board profiles: schema', () => {
  it('parses the shipped profiles, USB ids as numbers', () => {
    const ps = profiles();
    expect(ps.map((p) => p.id)).toEqual([
      'esp32-s3-devkitc',
      'ls-sim-basic',
      'ls-sim-se',
      'tpm2-ecc-ek',
      'tpm2-rsa-ek',
    ]);
    const se = ps.find((p) => p.id === 'ls-sim-se')!;
    expect(se.match.usb).toEqual([{ vendorId: 0x1209, productId: 0x4c53 }]);
    expect(se.keyMode).toBe('onboard');
    expect(ps.find((p) => p.id === 'ls-sim-basic')!.keyMode).toBe('injected');
    expect(ps.find((p) => p.id === 'esp32-s3-devkitc')!.example).toBe(true);
  });

  it('parses the tpm block of the TPM profiles (handles as numbers)', () => {
    const ecc = profiles().find((p) => p.id === 'tpm2-ecc-ek')!;
    expect(ecc.driver).toBe('tpm2');
    expect(ecc.tpm).toEqual({
      ekType: 'ecc-p256',
      pcrBank: 'sha256',
      pcrSelection: [0, 1, 2, 3, 4, 5, 6, 7],
      certificateNvIndex: 0x01100000,
      persistentHandles: { srk: 0x81000001, idevid: 0x81020000 },
    });
    expect(profiles().find((p) => p.id === 'tpm2-rsa-ek')!.tpm?.ekType).toBe('rsa-2048');
  });

  it('checks the tpm block: only with driver tpm2, required there, handles in their ranges', () => {
    const tpmJson = shipped.find((e) => e.source === 'tpm2-ecc-ek.json')!.json as BoardProfileJson;
    const t = () => structuredClone(tpmJson) as BoardProfileJson & { tpm: Record<string, unknown> };
    const ls = clone() as Record<string, unknown>;
    ls.tpm = t().tpm;
    expect(invalidAt(ls).path).toBe('tpm');
    const noBlock = t() as Record<string, unknown>;
    delete noBlock.tpm;
    expect(invalidAt(noBlock).path).toBe('tpm');
    const cases: Array<[(p: ReturnType<typeof t>) => void, string]> = [
      [(p) => (p.tpm.certificateNvIndex = '0x01c00002'), 'tpm.certificateNvIndex'],
      [(p) => (p.tpm.certificateNvIndex = '0x1100000'), 'tpm.certificateNvIndex'],
      [(p) => (p.tpm.persistentHandles = { srk: '0x81020000', idevid: '0x81020001' }), 'tpm.persistentHandles.srk'],
      [(p) => (p.tpm.persistentHandles = { srk: '0x81000001', idevid: '0x81000001' }), 'tpm.persistentHandles'],
      [(p) => (p.tpm.pcrSelection = [7, 0]), 'tpm.pcrSelection'],
      [(p) => (p.tpm.pcrSelection = [24]), 'tpm.pcrSelection[0]'],
      [(p) => ((p.tpm as Record<string, unknown>).ekType = 'ecc-p521'), 'tpm.ekType'],
      [(p) => (p.tpm.extra = 1), 'tpm'],
      [(p) => (p.keyMode = 'injected'), 'keyMode'],
      [(p) => (p.curve = 'P-384'), 'curve'],
    ];
    for (const [edit, path] of cases) {
      const p = t();
      edit(p);
      expect(invalidAt(p).path, path).toBe(path);
    }
  });

  it('rejects unknown keys, naming their path (strict at every level)', () => {
    const a = clone() as Record<string, unknown>;
    a.colour = 'red';
    expect(invalidAt(a).message).toContain('colour');
    const b = clone();
    (b.certificate.subject as Record<string, unknown>).emailAddress = 'x@example.com';
    expect(invalidAt(b).path).toBe('certificate.subject');
    const c = clone();
    (c.match.usb[0] as Record<string, unknown>).interface = 0;
    expect(invalidAt(c).path).toBe('match.usb[0]');
  });

  it('names the bad field path for bad values', () => {
    const cases: Array<[(j: BoardProfileJson) => void, string]> = [
      [(j) => (j.match.usb[0]!.vendorId = '1209'), 'match.usb[0].vendorId'],
      [(j) => (j.match.usb[0]!.productId = '0x14c53'), 'match.usb[0].productId'],
      [(j) => (j.match.serialNumberPattern = 'LS[0-9A-F]{8}'), 'match.serialNumberPattern'],
      [(j) => (j.match.serialNumberPattern = '^LS[0-9A-F{8}$'), 'match.serialNumberPattern'],
      [(j) => (j.match.models = []), 'match.models'],
      [(j) => ((j as { keyMode: string }).keyMode = 'cloud'), 'keyMode'],
      [(j) => ((j as { curve: string }).curve = 'P-521'), 'curve'],
      [(j) => (j.certificate.subject.commonName = '{mac}'), 'certificate.subject.commonName'],
      [(j) => (j.certificate.sanUri = 'urn:x:{chipId'), 'certificate.sanUri'],
      [(j) => (j.certificate.validityDays = 0), 'certificate.validityDays'],
      [(j) => (j.certificate.policyOid = '1.3.6.x'), 'certificate.policyOid'],
      [
        (j) => ((j.certificate as { extendedKeyUsage: string[] }).extendedKeyUsage = ['codeSigning']),
        'certificate.extendedKeyUsage[0]',
      ],
      [(j) => (j.timeouts.keygenMs = 1.5), 'timeouts.keygenMs'],
      [(j) => (j.udev.group = 'plugdev", RUN+="/bin/sh'), 'udev.group'],
      [(j) => ((j as { schema: string }).schema = 'line-station/board-profile/v2'), 'schema'],
      [(j) => (j.id = 'LS SIM'), 'id'],
    ];
    for (const [mutate, path] of cases) {
      const j = clone();
      mutate(j);
      expect(invalidAt(j).path, path).toBe(path);
    }
    expect(invalidAt(null).path).toBe('(root)');
    expect(invalidAt([]).path).toBe('(root)');
  });

  it('loadProfiles rejects duplicate ids naming both sources', () => {
    const r = loadProfiles([
      { source: 'a.json', json: seJson },
      { source: 'b.json', json: seJson },
    ]);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('INPUT_INVALID');
      expect(r.error.message).toContain('a.json');
      expect(r.error.message).toContain('b.json');
    }
    const bad = loadProfiles([{ source: 'c.json', json: { ...seJson, curve: 'X' } }]);
    expect(!bad.ok && bad.error.message).toContain('c.json: curve');
  });

  it('accepts exactly the template variables the certificate issuer renders', () => {
    const ok = clone();
    ok.certificate.sanUri = 'urn:line-station:device:{model}:{chipId}:{workOrder}';
    expect(must(ok).certificate.sanUri).toBe('urn:line-station:device:{model}:{chipId}:{workOrder}');
    const bad = clone();
    bad.certificate.subject.organization = 'Rev {hardwareRevision}';
    expect(invalidAt(bad)).toMatchObject({ path: 'certificate.subject.organization' });
    expect(invalidAt(bad).message).toContain('{hardwareRevision}');
  });
});

describe('matchProfile', () => {
  const ps = profiles();
  const SE = [0x1209, 0x4c53] as const;
  const BASIC = [0x1209, 0x4c54] as const;

  it('before identify: USB VID/PID selects the profile', () => {
    const m = matchProfile(ps, { port: usbPort(...SE) });
    expect(m.profile?.id).toBe('ls-sim-se');
    expect(m).toMatchObject({ by: 'usb' });
    expect(matchProfile(ps, { port: usbPort(0x303a, 0x1001) }).profile?.id).toBe('esp32-s3-devkitc');
  });

  it('before identify: unknown USB or no USB is a no-match that asks for identify', () => {
    const unknown = matchProfile(ps, { port: usbPort(0x0403, 0x6001) });
    expect(unknown.profile).toBeNull();
    if (!unknown.profile) {
      expect(unknown.reason).toContain('0403:6001');
      expect(unknown.candidates).toEqual([]);
    }
    const none = matchProfile(ps, { port: { path: '/tmp/board-0', source: 'configured' } });
    expect(none.profile).toBeNull();
    if (!none.profile) expect(none.candidates).toEqual(ps.map((p) => p.id));
  });

  it('after identify: model in match.models and serial matching the pattern', () => {
    const m = matchProfile(ps, { port: usbPort(...BASIC), identity: identity('LS-SIM-BASIC', 'LS00D4E5F6') });
    expect(m.profile?.id).toBe('ls-sim-basic');
    expect(m).toMatchObject({ by: 'identify' });
    // a pty has no USB: identify alone decides
    const pty = matchProfile(ps, {
      port: { path: '/tmp/b', source: 'configured' },
      identity: identity('LS-SIM-SE', 'LS00A1B2C3'),
    });
    expect(pty.profile?.id).toBe('ls-sim-se');
    // behind an unknown USB-UART cable: nothing contradicts the identify response
    const ftdi = matchProfile(ps, { port: usbPort(0x0403, 0x6001), identity: identity('LS-SIM-SE', 'LS00A1B2C3') });
    expect(ftdi.profile?.id).toBe('ls-sim-se');
  });

  it('after identify: a serial number outside the pattern is a no-match naming the profile', () => {
    for (const serial of ['LS00a1b2c3', 'LS00A1B2C', 'XLS00A1B2C3', 'LS00A1B2C3\n', 'LS' + 'A'.repeat(500)]) {
      const m = matchProfile(ps, { identity: identity('LS-SIM-SE', serial) });
      expect(m.profile, serial).toBeNull();
      if (!m.profile) {
        expect(m.reason).toContain('does not match');
        expect(m.candidates).toEqual(['ls-sim-se']);
      }
    }
  });

  it('after identify: an unknown model is a no-match', () => {
    const m = matchProfile(ps, { port: usbPort(...SE), identity: identity('LS-SIM-XL', 'LS00A1B2C3') });
    expect(m.profile).toBeNull();
    if (!m.profile) {
      expect(m.reason).toContain('LS-SIM-XL');
      expect(m.reason).toContain('ls-sim-se');
    }
  });

  it('reports a USB match contradicted by identify instead of accepting either', () => {
    const m = matchProfile(ps, { port: usbPort(...SE), identity: identity('LS-SIM-BASIC', 'LS00D4E5F6') });
    expect(m.profile).toBeNull();
    if (!m.profile) {
      expect(m.reason).toContain('contradiction');
      expect(m.candidates.sort()).toEqual(['ls-sim-basic', 'ls-sim-se']);
    }
  });

  it('ambiguity is an explicit no-match with both candidates', () => {
    const twinJson = { ...clone(), id: 'ls-sim-se-twin', name: 'twin' };
    const withTwin = [...ps, must(twinJson)];
    const pre = matchProfile(withTwin, { port: usbPort(...SE) });
    expect(pre.profile).toBeNull();
    if (!pre.profile) {
      expect(pre.reason).toContain('ambiguous');
      expect(pre.candidates.sort()).toEqual(['ls-sim-se', 'ls-sim-se-twin']);
    }
    const post = matchProfile(withTwin, { port: usbPort(...SE), identity: identity('LS-SIM-SE', 'LS00A1B2C3') });
    expect(post.profile).toBeNull();
    if (!post.profile) expect(post.candidates.sort()).toEqual(['ls-sim-se', 'ls-sim-se-twin']);
  });

  it('USB narrows two identify matches when it singles one out', () => {
    const revB = clone();
    revB.id = 'ls-sim-se-rev-b';
    revB.match.usb = [{ vendorId: '0x1209', productId: '0x4c55' }];
    const set = [...ps, must(revB)];
    const m = matchProfile(set, { port: usbPort(0x1209, 0x4c55), identity: identity('LS-SIM-SE', 'LS00A1B2C3') });
    expect(m.profile?.id).toBe('ls-sim-se-rev-b');
    const noUsb = matchProfile(set, { identity: identity('LS-SIM-SE', 'LS00A1B2C3') });
    expect(noUsb.profile).toBeNull();
  });
});

describe('udev rules', () => {
  it('the committed rules file is what scripts/gen-udev.ts generates from the profiles', () => {
    const committed = readFileSync(new URL('../../resources/udev/70-line-station.rules', import.meta.url), 'utf8');
    expect(committed).toBe(renderUdevRules(profiles()));
  });

  it('grants the profile group access to each VID/PID, raw USB and tty', () => {
    const rules = renderUdevRules(profiles());
    for (const [vid, pid] of [
      ['1209', '4c53'],
      ['1209', '4c54'],
      ['303a', '1001'],
    ]) {
      expect(rules).toContain(
        `SUBSYSTEM=="usb", ATTR{idVendor}=="${vid}", ATTR{idProduct}=="${pid}", MODE="0660", GROUP="plugdev"`,
      );
      expect(rules).toContain(
        `SUBSYSTEM=="tty", ATTRS{idVendor}=="${vid}", ATTRS{idProduct}=="${pid}", MODE="0660", GROUP="plugdev"`,
      );
    }
    expect(rules).not.toContain('0403');
    expect(renderUdevRules([...profiles()].reverse())).toBe(rules);
  });
});

describe('checkIdentityText (board-chosen identity strings)', () => {
  it('accepts printable ASCII within the limits', () => {
    expect(checkIdentityText(identity('LS-SIM-SE', 'LS00A1B2C3'))).toBeNull();
    expect(
      checkIdentityText({ ...identity('ESP32-S3-DEVKITC-1', '7C:DF:A1:00:11:22'), hardwareRevision: '' }),
    ).toBeNull();
  });

  it('refuses C1 controls, bidi characters, other non-ASCII and over-long text, naming the field escaped', () => {
    const cases: Array<[Partial<BoardIdentity>, string, string]> = [
      [{ model: 'LS-SIM-SE\x9b32m' }, 'model', 'LS-SIM-SE\\u009b32m'],
      [{ firmwareVersion: '1.0\u202e' }, 'firmwareVersion', '1.0\\u202e'],
      [{ hardwareRevision: 'Rev\u00a0B' }, 'hardwareRevision', 'Rev\u00a0B'],
      [{ serialNumber: 'LS00A1B2C3\u2066' }, 'serialNumber', 'LS00A1B2C3\\u2066'],
      [{ firmwareVersion: 'x'.repeat(65) }, 'firmwareVersion', '65'],
      [{ serialNumber: '' }, 'serialNumber', 'got 0'],
    ];
    for (const [patch, field, shown] of cases) {
      const e = checkIdentityText({ ...identity('LS-SIM-SE', 'LS00A1B2C3'), ...patch });
      expect(e?.code).toBe('BOARD_IDENTITY_INVALID');
      expect(e?.details).toMatchObject({ field });
      expect(e?.message).toContain(shown);
      expect(e?.message).not.toMatch(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/);
    }
  });

  it('marks a known model with a serial outside its pattern (the flow refuses it as BOARD_IDENTITY_INVALID)', () => {
    const ps = loadProfiles(shipped);
    if (!ps.ok) throw new Error(ps.error.message);
    const m = matchProfile(ps.value, { identity: identity('LS-SIM-SE', 'LS-PASS-OK') });
    expect(m.profile === null && m.serialMismatch).toBe(true);
    const unknown = matchProfile(ps.value, { identity: identity('LS-SIM-XL', 'LS00A1B2C3') });
    expect(unknown.profile === null && unknown.serialMismatch).toBeFalsy();
  });
});
