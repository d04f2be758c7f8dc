/**
 * The transport core/tpm speaks over: one raw TPM 2.0 command in, its raw response out.
 *
 * A board relays it (`BoardClient.tpmTransmit`, docs/protocol.md); tests hand it straight to a swtpm TCP port
 * (testkit/tpm/swtpm.ts). The response comes from an untrusted relay: core/tpm parses it bounds-checked.
 * TPM 2.0 Library Part 1 §18 (command/response structure), Part 3 for the commands themselves.
 */
import type { CallOptions } from '../ports.js';
import type { Result } from '../result.js';

/** Send one raw TPM 2.0 command (header + parameters, at most `TPM_MAX_COMMAND_SIZE` bytes); resolve its raw response. */
export type TpmTransmit = (command: Uint8Array, opts?: CallOptions) => Promise<Result<Uint8Array>>;

/** The largest command or response core/tpm sends or accepts (the relay's limit; TPM_PT_MAX_COMMAND_SIZE is ≤ 4096 on the TPMs we know). */
export const TPM_MAX_COMMAND_SIZE = 4096;
