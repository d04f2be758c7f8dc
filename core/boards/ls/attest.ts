/**
 * The Line Station driver's attestation: the board's statement over the fresh nonce, its chip id, the key the key
 * step bound and the measurements checked at baseline, verified against the vendor roots (docs/protocol.md §3.2),
 * and the evidence as the record carries it (docs/formats.md "Attestation evidence in the record").
 */
import { toBase64, toBase64Url } from '../../bytes.js';
import { fail } from '../../errors.js';
import type { AttestationEvidence } from '../../model.js';
import { verifyAttestation } from '../../pki/attestation.js';
import { PROTOCOL_V2 } from '../../protocol/messages.js';
import type { AttestationEvidenceRecord } from '../../provisioning/record.js';
import { ok, type Result } from '../../result.js';
import type { AttestInput, AttestResult, BoundKey, DriverContext } from '../driver.js';

/** Challenge the board with the flow's nonce and verify its answer; an error result when anything does not verify. */
export async function attestBoard(ctx: DriverContext, input: AttestInput): Promise<Result<AttestResult>> {
  const { identity, nonce, bound, measurementsSha256 } = input;
  const ev = await ctx.board.attest(nonce, { ...ctx.call, key: bound.role });
  if (!ev.ok) {
    // A board that holds no key of that role did not make the key the station was given.
    if (ev.error.code !== 'BOARD_NO_KEY') return ev;
    return fail('ATTEST_KEY_MISMATCH', `the board holds no ${bound.role} key: the key it reported is not its own`, {
      role: bound.role,
    });
  }
  const legacy = identity.protocolVersion < PROTOCOL_V2;
  if (ev.value.protocol !== (legacy ? 1 : 2)) {
    return fail(
      'ATTEST_STATEMENT_INVALID',
      `protocol ${identity.protocolVersion} session, protocol ${ev.value.protocol} evidence`,
    );
  }
  const att = await verifyAttestation({
    nonce,
    chipId: identity.chipId,
    evidence: ev.value,
    trustAnchors: [...ctx.attestationRoots],
    clock: ctx.clock,
    ...(legacy
      ? {}
      : {
          expected: {
            role: bound.role,
            key: bound.key,
            curve: ctx.profile.curve,
            measurementsSha256,
          },
        }),
  });
  if (!att.ok) return att;
  return ok({
    leafSha256: att.value.leafSha256,
    evidence: evidenceForRecord(ev.value, nonce, att.value.leafSha256, bound, measurementsSha256),
  });
}

/** The verified attestation as the record carries it (docs/formats.md "Attestation evidence in the record"). */
function evidenceForRecord(
  ev: AttestationEvidence,
  nonce: Uint8Array,
  leafSha256: string,
  bound: BoundKey,
  measurementsSha256: string,
): AttestationEvidenceRecord {
  const common = {
    nonce: toBase64Url(nonce),
    leafSha256,
    chain: ev.chain.map((d) => toBase64(d)),
    signature: toBase64(ev.signature),
  };
  if (ev.protocol === 1) return { mode: 'legacy-v1', ...common };
  return {
    mode: 'key-bound-v2',
    ...common,
    statement: toBase64(ev.statement),
    boundKey: { role: bound.role, spki: toBase64(bound.key) },
    measurementsSha256,
  };
}
