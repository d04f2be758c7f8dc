/**
 * THE one file where IPC handlers are registered: the whole privileged surface the renderer can
 * reach, reviewable on one screen.
 *
 * Every message is checked in this order before any work: (1) the sender — the main frame of a
 * webContents we created, showing a page of the app origin; (2) the payload — the invoke envelope
 * (zod), with the operation's own arguments validated again by the station service; then it is
 * forwarded to the engine host. Handlers never throw: every answer is an ApiResult envelope.
 *
 * Lint allows `ipcMain` here and nowhere else in main. The validation is pure (`isTrustedSender`,
 * `parseInvoke`, `handleInvoke`) and tested in plain Node; the tests mock the `electron` module.
 */
import { ipcMain, type IpcMainInvokeEvent } from 'electron';
import type { ApiError, ApiResult, OperationName, StationEvent } from '../../core/api.js';
import { stationError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import {
  EVENT_CHANNEL,
  INVOKE_CHANNEL,
  InvokeEnvelopeSchema,
  MAX_INVOKE_BYTES,
  type InvokeEnvelope,
} from '../shared/ipc.js';
import { isAppUrl } from './window.js';

/** What main knows about the sender of one message (taken from the IPC event). */
export interface SenderInfo {
  /** `event.sender.id`. */
  readonly webContentsId: number;
  /** `event.senderFrame === event.sender.mainFrame` (false for subframes and destroyed frames). */
  readonly isMainFrame: boolean;
  /** `event.senderFrame.url` ('' when the frame is gone). */
  readonly url: string;
}

/** The webContents ids main created (its windows). Only they may talk to the engine. */
export interface TrustedSenders {
  has(webContentsId: number): boolean;
}

export type Refusal = { readonly ok: false; readonly reason: string };
export type Accepted<T> = { readonly ok: true; readonly value: T };

/** Is this sender one of our windows' main frames, showing an app:// page? Pure. */
export function isTrustedSender(s: SenderInfo, trusted: TrustedSenders): Accepted<SenderInfo> | Refusal {
  if (!Number.isInteger(s.webContentsId) || !trusted.has(s.webContentsId))
    return { ok: false, reason: `webContents ${s.webContentsId} is not a window of this app` };
  if (!s.isMainFrame) return { ok: false, reason: 'message from a subframe' };
  if (!isAppUrl(s.url)) return { ok: false, reason: `sender origin is not the app origin (${describeUrl(s.url)})` };
  return { ok: true, value: s };
}

/** Parse a raw `station:invoke` payload into `{op, args}`. Pure; never throws. */
export function parseInvoke(raw: unknown): Accepted<InvokeEnvelope> | Refusal {
  const size = approximateSize(raw);
  if (size < 0) return { ok: false, reason: 'payload is not plain data' };
  if (size > MAX_INVOKE_BYTES) return { ok: false, reason: `payload too large (${size} bytes)` };
  const r = InvokeEnvelopeSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, reason: i ? `${i.path.join('.') || 'payload'}: ${i.message}` : 'invalid payload' };
  }
  return { ok: true, value: { op: r.data.op as OperationName, args: r.data.args } };
}

/** Where validated requests go: the engine host client (main/engine-client.ts). */
export interface EngineInvoker {
  invoke(clientId: string, op: OperationName, args: unknown): Promise<ApiResult<unknown>>;
}

/** A window main pushes events to. */
export interface EventTarget {
  readonly id: number;
  isDestroyed(): boolean;
  send(channel: string, payload: unknown): void;
}

export interface IpcRegistration {
  /** Push a StationEvent to the trusted, live window of `clientId` (events are per client). */
  deliver(clientId: string, event: StationEvent): void;
  /** Remove the handlers (app shutdown, tests). */
  dispose(): void;
}

export interface RegisterIpcOptions {
  readonly trusted: TrustedSenders;
  readonly engine: EngineInvoker;
  readonly logger: Logger;
  /** The windows events go to (main's live list). */
  readonly targets: () => Iterable<EventTarget>;
}

/** The session key of a window in the station service: one operator session per window. */
export const clientIdFor = (webContentsId: number): string => `electron:${webContentsId}`;

/** Take the SenderInfo out of an Electron invoke event (a destroyed frame reads as untrusted). */
export function senderInfoOf(e: Pick<IpcMainInvokeEvent, 'sender' | 'senderFrame'>): SenderInfo {
  let url = '';
  let isMainFrame = false;
  try {
    const frame = e.senderFrame;
    if (frame && !frame.isDestroyed()) {
      url = frame.url;
      isMainFrame = frame === e.sender.mainFrame || (frame.parent === null && frame.top === frame);
    }
  } catch {
    /* frame disposed while we looked: untrusted */
  }
  return { webContentsId: e.sender.id, isMainFrame, url };
}

/** Register the one IPC handler (`station:invoke`) and return the event broadcaster. */
export function registerIpcHandlers(o: RegisterIpcOptions): IpcRegistration {
  const log = o.logger;
  ipcMain.handle(INVOKE_CHANNEL, async (e, raw: unknown): Promise<ApiResult<unknown>> => {
    try {
      return await handleInvoke(senderInfoOf(e), raw, o);
    } catch (x) {
      log.log('error', 'invoke handler failed', { error: String(x) });
      return { ok: false, error: apiError('INTERNAL', 'the request could not be handled') };
    }
  });
  return {
    deliver(clientId, event) {
      for (const t of o.targets()) {
        if (clientIdFor(t.id) !== clientId || t.isDestroyed() || !o.trusted.has(t.id)) continue;
        t.send(EVENT_CHANNEL, event);
      }
    },
    dispose() {
      ipcMain.removeHandler(INVOKE_CHANNEL);
    },
  };
}

/** Sender, then payload, then the engine. Exported for tests (no Electron needed). */
export async function handleInvoke(
  sender: SenderInfo,
  raw: unknown,
  o: Pick<RegisterIpcOptions, 'trusted' | 'engine' | 'logger'>,
): Promise<ApiResult<unknown>> {
  const who = isTrustedSender(sender, o.trusted);
  if (!who.ok) {
    o.logger.log('warn', 'refused IPC message from an untrusted sender', {
      webContentsId: sender.webContentsId,
      reason: who.reason,
    });
    return { ok: false, error: apiError('AUTH_FORBIDDEN', `IPC refused: ${who.reason}`) };
  }
  const req = parseInvoke(raw);
  if (!req.ok) {
    o.logger.log('warn', 'refused malformed IPC message', { reason: req.reason });
    return { ok: false, error: apiError('INPUT_INVALID', `invalid request: ${req.reason}`) };
  }
  return o.engine.invoke(clientIdFor(sender.webContentsId), req.value.op, req.value.args);
}

function apiError(code: ErrorCode, message: string): ApiError {
  const e = stationError(code, message);
  return { code: e.code, message: e.message, kind: e.kind, action: e.action, guidance: e.guidance };
}

function describeUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}`;
  } catch {
    return raw === '' ? 'no frame' : 'unparseable URL';
  }
}

/** Rough serialised size of a structured-clone payload, without serialising twice for small ones. */
function approximateSize(raw: unknown): number {
  try {
    return JSON.stringify(raw ?? null)?.length ?? 0;
  } catch {
    return -1;
  }
}
