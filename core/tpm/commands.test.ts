/**
 * commands.ts against a relay that lies: truncated, oversized, inconsistent or hostile responses are coded errors
 * (TPM_RESPONSE_MALFORMED), never exceptions; response codes become TPM_LOCKOUT / TPM_COMMAND_FAILED with their name;
 * TPM_RC_RETRY is retried. The real TPM's answers are tested in swtpm.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { Tpm } from './commands.js';
import { encodeCommand, frameCode } from './frame.js';
import { TPM_ALG, TPM_CC, TPM_RH, TPM_ST } from './constants.js';
import { TpmWriter } from './marshal.js';
import { writePcrSelection } from './pcr.js';
import type { TpmTransmit } from './transport.js';

/** A transmit that answers from a list and records the commands. */
function relay(...answers: (Uint8Array | Result<Uint8Array>)[]): TpmTransmit & { sent: Uint8Array[] } {
  const sent: Uint8Array[] = [];
  const t = async (cmd: Uint8Array): Promise<Result<Uint8Array>> => {
    sent.push(cmd);
    const a = answers.shift();
    if (!a) return fail('PROTOCOL_TIMEOUT', 'no answer');
    return a instanceof Uint8Array ? ok(a) : a;
  };
  return Object.assign(t, { sent });
}

function response(params: Uint8Array, opts: { tag?: number; rc?: number; size?: number } = {}): Uint8Array {
  return new TpmWriter()
    .u16(opts.tag ?? TPM_ST.NO_SESSIONS)
    .u32(opts.size ?? 10 + params.length)
    .u32(opts.rc ?? 0)
    .bytes(params)
    .toBytes();
}

const randomParams = new TpmWriter().tpm2b(new Uint8Array(16).fill(3)).toBytes();

describe('Tpm response handling', () => {
  it('sends a well-formed command and parses the answer', async () => {
    const t = relay(response(randomParams));
    const r = await new Tpm(t).getRandom(16);
    expect(r).toEqual({ ok: true, value: new Uint8Array(16).fill(3) });
    expect(Buffer.from(t.sent[0]!).toString('hex')).toBe('80010000000c0000017b0010');
  });

  it('a truncated, oversized or inconsistent response is TPM_RESPONSE_MALFORMED', async () => {
    const good = response(randomParams);
    const cases: Uint8Array[] = [
      good.subarray(0, 5), // shorter than a header
      good.subarray(0, good.length - 3), // header says more than arrived
      Uint8Array.of(...good, 0, 0), // more than the header says
      response(randomParams, { size: 0xffffffff }),
      response(new TpmWriter().u16(40).bytes(new Uint8Array(16)).toBytes()), // TPM2B longer than the data
      response(new TpmWriter().tpm2b(new Uint8Array(16)).u8(0).toBytes()), // trailing bytes
      response(randomParams, { tag: TPM_ST.SESSIONS }), // wrong tag
    ];
    for (const c of cases) {
      const r = await new Tpm(relay(c)).getRandom(16);
      expect(r.ok ? 'ok' : r.error.code).toBe('TPM_RESPONSE_MALFORMED');
    }
  });

  it('every truncation and byte flip of a session response parses or fails with a code, never throws', async () => {
    // A TPM2_Quote response: parameterSize, TPM2B_ATTEST, TPMT_SIGNATURE (ECDSA), one auth response.
    const params = new TpmWriter()
      .tpm2b(new Uint8Array(80).fill(1))
      .u16(TPM_ALG.ECDSA)
      .u16(TPM_ALG.SHA256)
      .tpm2b(new Uint8Array(32).fill(2))
      .tpm2b(new Uint8Array(32).fill(3))
      .toBytes();
    const body = new TpmWriter()
      .u32(params.length)
      .bytes(params)
      .tpm2b(new Uint8Array(0))
      .u8(1)
      .tpm2b(new Uint8Array(0));
    const full = response(body.toBytes(), { tag: TPM_ST.SESSIONS });
    const args = { signHandle: 0x80000001, qualifyingData: new Uint8Array(32), selection: [] };
    expect((await new Tpm(relay(full)).quote(args)).ok).toBe(true);
    for (let n = 0; n < full.length; n++) {
      const cut = full.slice(0, n);
      if (n >= 6) new DataView(cut.buffer).setUint32(2, n); // consistent header, truncated body
      const r = await new Tpm(relay(cut)).quote(args);
      expect(r.ok ? 'ok' : r.error.code).toMatch(/^TPM_RESPONSE_MALFORMED$/);
    }
    for (let i = 10; i < full.length; i++) {
      const flipped = full.slice();
      flipped[i]! ^= 0xff;
      const r = await new Tpm(relay(flipped)).quote(args);
      expect(r.ok || r.error.code === 'TPM_RESPONSE_MALFORMED').toBe(true);
    }
  });

  it('response codes: TPM_RC_LOCKOUT is TPM_LOCKOUT, others TPM_COMMAND_FAILED with the name; RETRY is retried', async () => {
    const lockout = await new Tpm(relay(response(new Uint8Array(0), { rc: 0x921 }))).getRandom(16);
    expect(lockout.ok ? '' : lockout.error.code).toBe('TPM_LOCKOUT');
    const auth = await new Tpm(relay(response(new Uint8Array(0), { rc: 0x98e }))).getRandom(16);
    expect(auth.ok ? {} : auth.error.details).toEqual({
      command: 'TPM2_GetRandom',
      rc: '0x0000098e',
      rcName: 'TPM_RC_AUTH_FAIL (session 1)',
    });
    const t = relay(response(new Uint8Array(0), { rc: 0x922 }), response(randomParams));
    expect((await new Tpm(t).getRandom(16)).ok).toBe(true);
    expect(t.sent.length).toBe(2);
    const down = await new Tpm(relay(fail('LINK_DISCONNECTED', 'unplugged'))).getRandom(16);
    expect(down.ok ? '' : down.error.code).toBe('LINK_DISCONNECTED');
  });

  it('PCR_Read answering PCRs that were not asked for is refused', async () => {
    const w = new TpmWriter().u32(1);
    writePcrSelection(w, [{ hashAlg: TPM_ALG.SHA256, pcrs: [5] }]);
    w.u32(1).tpm2b(new Uint8Array(32));
    const r = await new Tpm(relay(response(w.toBytes()))).pcrRead([{ hashAlg: TPM_ALG.SHA256, pcrs: [0] }]);
    expect(r.ok ? '' : r.error.message).toContain('not asked for');
  });

  it('a command larger than the relay allows is refused before sending', async () => {
    const t = relay();
    const r = await new Tpm(t).nvDefineSpace({
      nvIndex: 0x01500000,
      size: 8,
      attributes: 0,
      authPolicy: new Uint8Array(5000),
    });
    expect(r.ok ? '' : r.error.code).toBe('PROTOCOL_REQUEST_TOO_LARGE');
    expect(t.sent.length).toBe(0);
  });
});

describe('frames', () => {
  it('a password-session command: header, handles, authorization area, parameters', () => {
    const c = encodeCommand({
      name: 'TPM2_NV_WriteLock',
      cc: TPM_CC.NV_WriteLock,
      handles: [TPM_RH.OWNER, 0x01500000],
      auths: [{ kind: 'password' }],
      params: new Uint8Array(0),
    });
    if (!c.ok) throw new Error(c.error.message);
    // tag SESSIONS, size 31, CC, two handles, authorizationSize 9: TPM_RS_PW, empty nonce, continueSession, empty hmac
    expect(Buffer.from(c.value).toString('hex')).toBe(
      '80020000001f00000138' + '40000001' + '01500000' + '00000009' + '40000009' + '0000' + '01' + '0000',
    );
    expect(frameCode(c.value)).toBe(TPM_CC.NV_WriteLock);
    expect(frameCode(c.value.subarray(0, 9))).toBeUndefined();
  });
});
