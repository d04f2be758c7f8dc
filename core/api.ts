/**
 * StationApi: the one typed contract between the UI and the station engine.
 *
 * Two transports carry it unchanged: Electron IPC through the preload (electron/), and the
 * localhost-only, token-authenticated HTTP bridge (`station serve`, station/bridge/bridge.ts) that the
 * browser build and the end-to-end tests use. Every operation has an argument schema and a result
 * schema (zod); the host validates arguments before any work, and every result is a typed envelope
 * `{ok:true,value} | {ok:false,error}` — errors never cross as exceptions.
 *
 * Pure: imported by the renderer (types and schemas only), electron main/preload and station/.
 */
import { z } from 'zod';
import { MAX_PARAM_LENGTH } from './errors.js';
import { STEPS } from './model.js';

export const API_VERSION = 1;

// ------------------------------------------------------------------ shared shapes

export const StepNameSchema = z.enum(STEPS);
export const StepStatusSchema = z.enum(['pending', 'running', 'done', 'failed', 'skipped']);

/**
 * Values a localised error text puts into its `{name}` placeholders (core/errors.ts `params`): at most 16 names,
 * strings of at most 512 characters or finite numbers.
 */
export const ErrorParamsSchema = z
  .record(
    z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,31}$/),
    z.union([z.string().max(MAX_PARAM_LENGTH), z.number().finite()]),
  )
  .refine((r) => Object.keys(r).length <= 16, 'at most 16 params');

/**
 * A failure as the UI sees it. `code` (core/errors.ts) and `params` are for the UI to say what happened in its own
 * language (renderer/src/i18n); `message` and `guidance` are the station's English texts, shown as sent for a code
 * the UI does not know.
 */
export const ApiErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  kind: z.enum(['user', 'bug']),
  action: z.enum(['retry', 'reseat', 'set-aside', 'call-supervisor', 'none']),
  guidance: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  params: ErrorParamsSchema.optional(),
});
export type ApiError = z.infer<typeof ApiErrorSchema>;

export const RoleSchema = z.enum(['operator', 'supervisor']);
export type Role = z.infer<typeof RoleSchema>;

export const SessionViewSchema = z.object({
  operatorId: z.string(),
  name: z.string(),
  role: RoleSchema,
  signedInAt: z.string(),
  /** Set while a supervisor has confirmed with their PIN (elevation expires). */
  supervisor: z.object({ operatorId: z.string(), name: z.string(), until: z.string() }).nullable(),
});
export type SessionView = z.infer<typeof SessionViewSchema>;

export const WorkOrderViewSchema = z.object({
  id: z.string(),
  product: z.string(),
  profiles: z.array(z.string()),
  quantity: z.number().int(),
  provisioned: z.number().int(),
  /** Every board's barcode must be scanned for its slot before it is provisioned (`scanSlot`). */
  requireScanIn: z.boolean().optional(),
});
export type WorkOrderView = z.infer<typeof WorkOrderViewSchema>;

/**
 * A slot's state (core/boards/lifecycle.ts): `disconnected` (the link went away mid-run) and `interrupted` (the board
 * stayed attached but stopped answering: PROTOCOL_TIMEOUT) keep the run active: re-plugging, re-seating or
 * `retrySlot` resumes it. `identity-lost`: the board was provisioned here but no longer holds its record's
 * certificate (BOARD_CERT_MISSING: erased, scrapped, reflashed); neither PASS nor FAIL: set it aside, or a supervisor
 * re-provisions it (`approveOverride` kind `reprovision`).
 */
export const SlotStateSchema = z.enum([
  'connected',
  'running',
  'pass',
  'already',
  'fail',
  'identity-lost',
  'disconnected',
  'interrupted',
]);
/**
 * The label printed after a PASS (docs/ui.md "Screens"): `printing`, `printed` (to `target`) or `failed` (with the
 * printer's coded error; the board's PASS stands, reprint from the tile or the record view). Absent: no label was
 * due (no printer configured, printing after PASS off, or no new record).
 */
export const SlotLabelSchema = z.object({
  state: z.enum(['printing', 'printed', 'failed']),
  recordId: z.string(),
  target: z.string().nullable(),
  error: ApiErrorSchema.nullable(),
});
export type SlotLabel = z.infer<typeof SlotLabelSchema>;

export const SlotViewSchema = z.object({
  port: z.string(),
  /** Short label for the tile, e.g. "board-0" or "ttyACM0". */
  label: z.string(),
  state: SlotStateSchema,
  chipId: z.string().nullable(),
  serialNumber: z.string().nullable(),
  model: z.string().nullable(),
  steps: z.array(z.object({ step: StepNameSchema, status: StepStatusSchema, elapsedMs: z.number().nullable() })),
  currentStep: StepNameSchema.nullable(),
  /** The latest finer progress line of the current step (e.g. "EK certificate verified"); absent when none. */
  note: z.string().optional(),
  startedAt: z.string().nullable(),
  elapsedMs: z.number(),
  error: ApiErrorSchema.nullable(),
  recordId: z.string().nullable(),
  /** Retrying is safe (the failure is not a policy or attestation verdict). */
  canRetry: z.boolean(),
  /** The board's printed label after PASS (labels; `label` above is the tile's name). */
  boardLabel: SlotLabelSchema.optional(),
  /** Scan-in: the serial number scanned for this slot (checked against identify), or null. */
  scan: z.string().nullable().optional(),
  /** The work order requires scan-in and this slot waits for its scan (`scanSlot`) before it starts. */
  awaitingScan: z.boolean().optional(),
  /**
   * Raised by the station with every view it makes of any slot (events and answers alike): of two views of a slot,
   * the one with the greater version is the newer. An answer can reach the UI after an event made later (a board
   * refused 20 ms after its scan): the UI keeps the newer view.
   */
  version: z.number().int().nonnegative().optional(),
});
export type SlotView = z.infer<typeof SlotViewSchema>;

/** Headquarters revoked this station (the policy in force lists it, revokedAt <= now): it refuses to provision. */
export const StationRevocationSchema = z.object({
  /** ISO time of the revocation (null: listed without a time). */
  revokedAt: z.string().nullable(),
  /** Version of the policy that revokes it; null: the registry's signed station-status answer (kept for good). */
  policyVersion: z.string().nullable(),
});
export type StationRevocation = z.infer<typeof StationRevocationSchema>;

export const StationStatusSchema = z.object({
  apiVersion: z.number().int(),
  stationId: z.string(),
  session: SessionViewSchema.nullable(),
  workOrder: WorkOrderViewSchema.nullable(),
  /** Version of the registry policy in force, if any. */
  policyVersion: z.string().nullable(),
  /** Set while the policy in force revokes this station (the UI shows a persistent banner). */
  stationRevoked: StationRevocationSchema.nullable(),
});
export type StationStatus = z.infer<typeof StationStatusSchema>;

/** `refused`: a board refused before a run existed (FLOW_BLOCKED, FLOW_QUOTA_EXHAUSTED, scan-in mismatch, ...). */
export const LogOutcomeSchema = z.enum(['provisioned', 'failed', 'in-progress', 'refused']);
export const LogEntrySchema = z.object({
  runId: z.string(),
  recordId: z.string().nullable(),
  serialNumber: z.string(),
  chipId: z.string(),
  workOrder: z.string(),
  operator: z.string(),
  kind: z.enum(['initial', 'rotation']),
  outcome: LogOutcomeSchema,
  errorCode: z.string().nullable(),
  /**
   * The values of the error code's text placeholders (core/errors.ts `params`), so the Log view says the code's text
   * in its own language; null when none were kept.
   */
  errorParams: ErrorParamsSchema.nullable(),
  step: StepNameSchema,
  startedAt: z.string(),
  updatedAt: z.string(),
  durationMs: z.number().nullable(),
  syncState: z.enum(['pending', 'sent', 'acknowledged', 'failed', 'n/a']),
  /** A refusal (`runId` is its refusal id): the refused attempts it stands for (repeats coalesced). */
  attempts: z.number().int().nullable().optional(),
});
export type LogEntry = z.infer<typeof LogEntrySchema>;

export const LogQuerySchema = z
  .object({
    text: z.string().max(128).optional(), // serial or chip id prefix
    workOrder: z.string().max(64).optional(),
    operator: z.string().max(64).optional(),
    outcome: LogOutcomeSchema.optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
    limit: z.number().int().min(1).max(500).default(50),
    /** Opaque keyset cursor from the previous page (fast paging over a million rows). */
    cursor: z.string().max(256).optional(),
  })
  .strict();
export type LogQuery = z.input<typeof LogQuerySchema>;

export const LogPageSchema = z.object({
  items: z.array(LogEntrySchema),
  total: z.number().int(),
  nextCursor: z.string().nullable(),
});
export type LogPage = z.infer<typeof LogPageSchema>;

export const CertificateViewSchema = z.object({
  subject: z.string(),
  issuer: z.string(),
  serialNumber: z.string(),
  notBefore: z.string(),
  notAfter: z.string(),
  sanUris: z.array(z.string()),
  keyUsage: z.array(z.string()),
  extendedKeyUsage: z.array(z.string()),
  policyOids: z.array(z.string()),
  publicKey: z.string(),
  sha256: z.string(),
  pem: z.string(),
});
export type CertificateView = z.infer<typeof CertificateViewSchema>;

export const RecordDetailSchema = z.object({
  entry: LogEntrySchema,
  certificate: CertificateViewSchema.nullable(),
  chain: z.array(CertificateViewSchema),
  manifest: z
    .object({
      measurements: z.record(z.string(), z.unknown()),
      verdict: z.object({
        pass: z.boolean(),
        /**
         * Each violation: its rule (BaselineRule), what the baseline expected and what the board showed (JSON values,
         * docs/formats.md "Baseline violations"), and the station's English message (the UI shows the rule in its
         * language with the values, the message under "Details").
         */
        violations: z.array(
          z.object({ rule: z.string(), expected: z.string(), actual: z.string(), message: z.string() }),
        ),
      }),
      policyRef: z.record(z.string(), z.unknown()),
      capturedAt: z.string(),
      signatureValid: z.boolean(),
    })
    .nullable(),
  timings: z.record(z.string(), z.number()),
  keyMode: z.enum(['onboard', 'injected']).nullable(),
  audit: z.object({ ok: z.boolean(), entries: z.number().int(), message: z.string().nullable() }),
  sync: z.object({
    state: LogEntrySchema.shape.syncState,
    receiptId: z.string().nullable(),
    acknowledgedAt: z.string().nullable(),
  }),
  recordSignatureValid: z.boolean().nullable(),
});
export type RecordDetail = z.infer<typeof RecordDetailSchema>;

export const YieldQuerySchema = z
  .object({
    workOrder: z.string().max(64).optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict();
export type YieldQuery = z.input<typeof YieldQuerySchema>;
export const YieldViewSchema = z.object({
  boards: z.number().int(),
  /** Boards refused before a run (each refusal once; repeats coalesced into it are not counted again). */
  refused: z.number().int(),
  passedFirstTime: z.number().int(),
  firstPassYield: z.number(), // 0..1
  provisioned: z.number().int(),
  failuresByCause: z.array(z.object({ code: z.string(), count: z.number().int() })),
  cycleTime: z.object({
    p50: z.number().nullable(),
    p95: z.number().nullable(),
    histogram: z.array(z.object({ fromMs: z.number(), toMs: z.number(), count: z.number().int() })),
  }),
  boardsPerHour: z.array(z.object({ hour: z.string(), count: z.number().int() })),
});
export type YieldView = z.infer<typeof YieldViewSchema>;

/**
 * A supervisor report as a CSV file (docs/station-api.md "Reports"): `log` (one line per run, the Log view's filter)
 * or `yield` (one line per work order and one `(all)`, the Yield view's filter), for a time range of run starts.
 */
export const ReportQuerySchema = z
  .object({
    report: z.enum(['log', 'yield']),
    text: z.string().max(128).optional(), // log: serial or chip id prefix
    workOrder: z.string().max(64).optional(),
    operator: z.string().max(64).optional(),
    outcome: LogOutcomeSchema.optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
  })
  .strict();
export type ReportQuery = z.input<typeof ReportQuerySchema>;
export const ReportFileSchema = z.object({ fileName: z.string(), content: z.string(), rows: z.number().int() });
export type ReportFile = z.infer<typeof ReportFileSchema>;

export const SyncViewSchema = z.object({
  registryUrl: z.string().nullable(),
  reachable: z.boolean().nullable(),
  pending: z.number().int(),
  sent: z.number().int(),
  acknowledged: z.number().int(),
  failed: z.number().int(),
  lastReceipt: z.object({ receiptId: z.string(), at: z.string(), count: z.number().int() }).nullable(),
  lastError: z.string().nullable(),
  nextAttemptAt: z.string().nullable(),
  /**
   * Batches still to be sent whose last attempt failed (refused as a whole, e.g. AUTH_*; unreachable; a receipt
   * that did not verify), oldest first, at most 20: retried with backoff under the same batch id.
   */
  failingBatches: z.array(
    z.object({
      batchId: z.string(),
      records: z.number().int(),
      attempts: z.number().int(),
      code: z.string(),
      message: z.string(),
      /** The error's params (core/errors.ts), when the failure had any. */
      params: ErrorParamsSchema.optional(),
      at: z.string(),
    }),
  ),
});
export type SyncView = z.infer<typeof SyncViewSchema>;

export const HsmViewSchema = z.object({
  present: z.boolean(),
  loggedIn: z.boolean(),
  module: z.string(),
  slotId: z.string().nullable(),
  tokenLabel: z.string(),
  tokenSerial: z.string().nullable(),
  manufacturer: z.string().nullable(),
  keys: z.array(z.object({ label: z.string(), class: z.string(), keyType: z.string().nullable() })),
  error: ApiErrorSchema.nullable(),
});
export type HsmView = z.infer<typeof HsmViewSchema>;

export const DevicesViewSchema = z.object({
  ports: z.array(
    z.object({
      path: z.string(),
      source: z.enum(['serial', 'configured', 'usb']),
      usb: z
        .object({
          vendorId: z.number(),
          productId: z.number(),
          serialNumber: z.string().optional(),
          product: z.string().optional(),
        })
        .nullable(),
      profileId: z.string().nullable(),
    }),
  ),
  usb: z.object({ available: z.boolean(), reason: z.string().nullable() }),
  problems: z.array(
    z.object({
      path: z.string(),
      code: z.string(),
      message: z.string(),
      guidance: z.string(),
      /** The error's params (core/errors.ts), when it had any. */
      params: ErrorParamsSchema.optional(),
    }),
  ),
});
export type DevicesView = z.infer<typeof DevicesViewSchema>;

/**
 * `station doctor` (station/doctor): one check of the station's readiness. Every check has a status, a one-line
 * finding and, when it does not pass, what to do (an exact command or file). docs/operations.md "station doctor".
 */
export const DOCTOR_CHECK_IDS = [
  'config',
  'permissions',
  'disk-space',
  'hsm-module',
  'hsm-token',
  'hsm-login',
  'hsm-keys',
  'hsm-mechanisms',
  'certificates',
  'serial-group',
  'udev-rules',
  'serial-ports',
  'registry',
  'clock-skew',
  'sync-backlog',
] as const;
export const DoctorCheckIdSchema = z.enum(DOCTOR_CHECK_IDS);
export type DoctorCheckId = z.infer<typeof DoctorCheckIdSchema>;
export const DoctorStatusSchema = z.enum(['pass', 'warn', 'fail', 'skipped']);
export type DoctorStatus = z.infer<typeof DoctorStatusSchema>;
export const DoctorCheckSchema = z.object({
  id: DoctorCheckIdSchema,
  status: DoctorStatusSchema,
  /** One line: what was found. Never a secret (no PIN, no key material). */
  summary: z.string(),
  /** When not pass: what to do (an exact command or file). */
  action: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type DoctorCheck = z.infer<typeof DoctorCheckSchema>;
/** Every check, in DOCTOR_CHECK_IDS order; `ok` is true when none failed. */
export const DoctorReportSchema = z.object({ checks: z.array(DoctorCheckSchema), ok: z.boolean() });
export type DoctorReport = z.infer<typeof DoctorReportSchema>;

export const LogLineViewSchema = z.object({
  ts: z.string(),
  level: z.enum(['debug', 'info', 'warn', 'error']),
  subsystem: z.string(),
  msg: z.string(),
});
export type LogLineView = z.infer<typeof LogLineViewSchema>;

/** A record id (lower-case UUID, core/provisioning/record.ts). */
const RecordId = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a record id (UUID)');

/**
 * A board label rendered (docs/station-api.md "Labels"): `png` (1-bit preview at printer resolution), `pdf` (one
 * page of the label size) or `zpl` (what the printer gets), base64; with the QR payload and the printer in force.
 */
export const LabelFileSchema = z.object({
  recordId: z.string(),
  format: z.enum(['png', 'pdf', 'zpl']),
  fileName: z.string(),
  mediaType: z.string(),
  base64: z.string(),
  /** The exact QR text: `LSL1 <certificate SHA-256> <device URN>` (docs/formats.md "Board label"). */
  qrPayload: z.string(),
  serialNumber: z.string(),
  size: z.object({ widthMm: z.number(), heightMm: z.number(), dpi: z.number().int() }),
  /** The configured printer (`tcp:host:port`, `cups:queue`, `file:path`), or null: none. */
  printer: z.string().nullable(),
});
export type LabelFile = z.infer<typeof LabelFileSchema>;

/** A reprint that reached the printer (it is audited either way: `label.reprint`). */
export const LabelReprintSchema = z.object({
  recordId: z.string(),
  target: z.string(),
  bytes: z.number().int(),
});
export type LabelReprint = z.infer<typeof LabelReprintSchema>;

const Pin = z.string().regex(/^[0-9]{4,12}$/, 'PIN: 4 to 12 digits');
const OperatorId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);

// ------------------------------------------------------------------ operations

/**
 * Every operation: `args` schema, `result` schema, and the role it needs
 * (`none` = no session, `operator` = any signed-in user, `supervisor` = supervisor session or a
 * valid supervisor elevation), and whether a call counts as session activity (`activity`: resets the session's idle
 * timer). Only what an operator does counts; reads a client makes on its own to show the station's state
 * (`getStatus`, `listWorkOrders`, `getSlots`, `getSync`) and `signIn`/`signOut` do not, so a screen left open on a
 * busy line does not keep an absent operator's session alive (docs/station-api.md, session timeouts).
 */
export const OPERATIONS = {
  getStatus: { args: z.object({}).strict(), result: StationStatusSchema, role: 'none', activity: false },
  signIn: {
    args: z.union([
      z.object({ operatorId: OperatorId, pin: Pin }).strict(),
      z.object({ badge: z.string().min(4).max(128) }).strict(),
    ]),
    result: SessionViewSchema,
    role: 'none',
    activity: false,
  },
  signOut: { args: z.object({}).strict(), result: z.object({}), role: 'none', activity: false },
  /** A supervisor confirms with their PIN; grants supervisor rights to this session for a few minutes. */
  elevate: {
    args: z.object({ operatorId: OperatorId, pin: Pin }).strict(),
    result: SessionViewSchema,
    role: 'operator',
    activity: true,
  },
  listWorkOrders: {
    args: z.object({}).strict(),
    result: z.array(WorkOrderViewSchema),
    role: 'operator',
    activity: false,
  },
  selectWorkOrder: {
    args: z.object({ id: z.string().min(1).max(64) }).strict(),
    result: WorkOrderViewSchema,
    role: 'operator',
    activity: true,
  },
  getSlots: { args: z.object({}).strict(), result: z.array(SlotViewSchema), role: 'operator', activity: false },
  retrySlot: {
    args: z.object({ port: z.string().min(1).max(512) }).strict(),
    result: SlotViewSchema,
    role: 'operator',
    activity: true,
  },
  /**
   * Scan-in: the serial number scanned from the board's own barcode for the slot on `port` (a keyboard-wedge scanner
   * types it and Enter). A waiting slot starts; a failed one is retried with the scan. Checked against identify.
   */
  scanSlot: {
    args: z
      .object({
        port: z.string().min(1).max(512),
        serial: z
          .string()
          .trim()
          .min(1)
          .max(128)
          .regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces'),
      })
      .strict(),
    result: SlotViewSchema,
    role: 'operator',
    activity: true,
  },
  /** Supervisor overrides: recorded in the audit log with the supervisor and the reason. */
  approveOverride: {
    args: z
      .object({
        kind: z.enum(['reprovision', 'scrap']),
        port: z.string().min(1).max(512),
        reason: z.string().min(3).max(500),
      })
      .strict(),
    result: SlotViewSchema,
    role: 'supervisor',
    activity: true,
  },
  queryLog: { args: LogQuerySchema, result: LogPageSchema, role: 'supervisor', activity: true },
  getRecord: {
    args: z.object({ runId: z.string().min(1).max(64) }).strict(),
    result: RecordDetailSchema,
    role: 'supervisor',
    activity: true,
  },
  getYield: { args: YieldQuerySchema, result: YieldViewSchema, role: 'supervisor', activity: true },
  exportReport: { args: ReportQuerySchema, result: ReportFileSchema, role: 'supervisor', activity: true },
  getSync: { args: z.object({}).strict(), result: SyncViewSchema, role: 'operator', activity: false },
  syncNow: { args: z.object({}).strict(), result: SyncViewSchema, role: 'supervisor', activity: true },
  exportBundle: {
    args: z.object({}).strict(),
    result: z.object({ fileName: z.string(), content: z.string(), count: z.number().int() }),
    role: 'supervisor',
    activity: true,
  },
  importReceipt: {
    args: z.object({ fileName: z.string().max(256), content: z.string().max(16 * 1024 * 1024) }).strict(),
    result: z.object({
      marked: z.number().int(),
      alreadySynced: z.number().int(),
      unknown: z.number().int(),
      message: z.string(),
    }),
    role: 'supervisor',
    activity: true,
  },
  getHsm: { args: z.object({}).strict(), result: HsmViewSchema, role: 'supervisor', activity: true },
  getDevices: { args: z.object({}).strict(), result: DevicesViewSchema, role: 'supervisor', activity: true },
  /**
   * `station doctor`'s checks on the running station. Supervisor: it reveals no secret (never a PIN or key material),
   * but it maps the station's configuration (module and file paths, groups, registry) for the person who can act on
   * it, it calls the registry and signs with the HSM on demand, and it lives in the supervisor-only HSM & devices view.
   */
  doctor: { args: z.object({}).strict(), result: DoctorReportSchema, role: 'supervisor', activity: true },
  /**
   * A board's label (PNG preview, PDF, ZPL). Any signed-in user: a label holds only public data (docs/threat-model.md).
   */
  getLabel: {
    args: z.object({ recordId: RecordId, format: z.enum(['png', 'pdf', 'zpl']).default('png') }).strict(),
    result: LabelFileSchema,
    role: 'operator',
    activity: true,
  },
  /**
   * Reprint a board's label on the configured printer. Any signed-in user (the operator at the line replaces a
   * damaged label); every reprint is audited (`label.reprint`: record, operator, supervisor, printer, outcome).
   */
  reprintLabel: {
    args: z.object({ recordId: RecordId }).strict(),
    result: LabelReprintSchema,
    role: 'operator',
    activity: true,
  },
  getLogLines: {
    args: z
      .object({
        limit: z.number().int().min(1).max(1000).default(200),
        minLevel: LogLineViewSchema.shape.level.optional(),
      })
      .strict(),
    result: z.array(LogLineViewSchema),
    role: 'supervisor',
    activity: true,
  },
} as const;

export type OperationName = keyof typeof OPERATIONS;
export type OpArgs<O extends OperationName> = z.input<(typeof OPERATIONS)[O]['args']>;
export type OpResult<O extends OperationName> = z.infer<(typeof OPERATIONS)[O]['result']>;
export type ApiResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ApiError };

/** The StationApi as the UI sees it: one async function per operation. */
export type StationApi = {
  readonly [O in OperationName]: (args: OpArgs<O>) => Promise<ApiResult<OpResult<O>>>;
} & {
  /** Subscribe to pushed events; returns an unsubscribe function. */
  readonly subscribe: (cb: (event: StationEvent) => void) => () => void;
};

// ------------------------------------------------------------------ events

export const StationEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('slot'), slot: SlotViewSchema }),
  z.object({ type: z.literal('slotRemoved'), port: z.string() }),
  z.object({ type: z.literal('sync'), sync: SyncViewSchema }),
  z.object({
    type: z.literal('session'),
    session: SessionViewSchema.nullable(),
    /** Set when the session ended on its own: no request for the idle time, or the longest session time. */
    ended: z.enum(['idle', 'absolute']).optional(),
  }),
  z.object({ type: z.literal('log'), line: LogLineViewSchema }),
  /** The registry policy in force changed (new version, or this station's revocation took effect). */
  z.object({
    type: z.literal('policy'),
    policyVersion: z.string().nullable(),
    stationRevoked: StationRevocationSchema.nullable(),
  }),
]);
export type StationEvent = z.infer<typeof StationEventSchema>;

export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[];

export function isOperationName(x: unknown): x is OperationName {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(OPERATIONS, x);
}
