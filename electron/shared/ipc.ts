/**
 * The one IPC contract between Electron main, the preload and the engine host.
 *
 * Channel names, the invoke envelope and the main <-> engine-host messages all live here and are
 * derived from the StationApi contract (core/api.ts): there is no second list of operations.
 * Pure (zod + core/api only): bundled into the preload, imported by main and the engine host.
 */
import { z } from 'zod';
import { ApiErrorSchema, isOperationName, OPERATION_NAMES, type OperationName } from '../../core/api.js';

export * from './channels.js';

export const OperationNameSchema = z.enum(OPERATION_NAMES as [OperationName, ...OperationName[]]);

/** What the preload sends on `station:invoke`: the operation and its (still unvalidated) arguments. */
export const InvokeEnvelopeSchema = z
  .object({
    op: z.string().refine(isOperationName, { message: 'unknown operation' }),
    args: z.unknown(),
  })
  .strict();
export interface InvokeEnvelope {
  readonly op: OperationName;
  readonly args: unknown;
}

/** The largest invoke payload main accepts (importReceipt carries up to 16 MiB of text). */
export const MAX_INVOKE_BYTES = 17 * 1024 * 1024;

// ------------------------------------------------------------------ main <-> engine host

export const ApiResultEnvelopeSchema = z.union([
  z.object({ ok: z.literal(true), value: z.unknown() }),
  z.object({ ok: z.literal(false), error: ApiErrorSchema }),
]);

/** Main -> engine host. */
export const HostRequestSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('invoke'),
      id: z.number().int().nonnegative(),
      clientId: z.string().min(1).max(128),
      op: OperationNameSchema,
      args: z.unknown(),
    })
    .strict(),
  /** A window closed: end its session and its event subscription. */
  z.object({ type: z.literal('detach'), clientId: z.string().min(1).max(128) }).strict(),
  z.object({ type: z.literal('stop') }).strict(),
]);
export type HostRequest = z.infer<typeof HostRequestSchema>;

/** Engine host -> main. */
export const HostMessageSchema = z.discriminatedUnion('type', [
  /** The host listens for requests (sent before the engine has opened). */
  z.object({ type: z.literal('ready'), pid: z.number().int() }).strict(),
  z.object({ type: z.literal('result'), id: z.number().int(), result: ApiResultEnvelopeSchema }).strict(),
  /** An event for one client (a window): sessions and log lines are per client (role-filtered). */
  z.object({ type: z.literal('event'), clientId: z.string(), event: z.unknown() }).strict(),
  z
    .object({
      type: z.literal('log'),
      line: z.object({
        ts: z.string(),
        level: z.enum(['debug', 'info', 'warn', 'error']),
        subsystem: z.string(),
        msg: z.string(),
        ctx: z.record(z.string(), z.unknown()).optional(),
      }),
    })
    .strict(),
  z.object({ type: z.literal('stopped') }).strict(),
]);
export type HostMessage = z.infer<typeof HostMessageSchema>;
