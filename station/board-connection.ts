/**
 * Opening a board connection: the serial link, then the protocol `hello` (connectBoard), with the station's default
 * timeouts. The one place the station connects to a board (the engine's provisioning and zeroize, for a scrap);
 * the board profile's `timeouts` are applied per call by the flow after identify.
 */
import type { StationError } from '../core/errors.js';
import type { ByteLinkOpener, Clock, Logger } from '../core/ports.js';
import { connectBoard, type BoardClientWithStats } from '../core/protocol/client.js';
import { err, type Result } from '../core/result.js';

/** Per-attempt timeout of an ordinary request until the profile's timeouts apply (ms). */
export const BOARD_TIMEOUT_MS = 3000;
/** Per-attempt timeout of a long request (keygen, injectKey, installCert) until the profile's apply (ms). */
export const BOARD_LONG_TIMEOUT_MS = 30_000;

/** Why a board could not be connected: its link did not open (`detect`) or the board did not answer (`identify`). */
export interface BoardConnectError {
  readonly step: 'detect' | 'identify';
  readonly error: StationError;
}

/**
 * Open the link on `path` and say hello. On success the caller owns the client (its `close()` closes the link); on
 * failure nothing stays open.
 */
export async function openBoard(
  opener: ByteLinkOpener,
  path: string,
  o: { readonly logger: Logger; readonly clock: Clock; readonly signal?: AbortSignal },
): Promise<Result<BoardClientWithStats, BoardConnectError>> {
  const link = await opener.open(path);
  if (!link.ok) return err({ step: 'detect', error: link.error });
  const board = await connectBoard(link.value, {
    logger: o.logger,
    clock: o.clock,
    timeoutMs: BOARD_TIMEOUT_MS,
    longTimeoutMs: BOARD_LONG_TIMEOUT_MS,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  if (board.ok) return board;
  await link.value.close();
  return err({ step: 'identify', error: board.error });
}
