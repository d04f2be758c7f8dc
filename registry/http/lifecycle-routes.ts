/**
 * HTTP routes of the identity lifecycle (docs/lifecycle.md), mounted by registry/server.ts in front of its own
 * table. Officer endpoints take a bearer token (admin or security officer); /v1/policy and /v1/quotas are
 * station-authenticated (LS-Sig), as are the two delegated revocation signer steps; CRL and OCSP are public
 * (signed objects); re-enrolment is refused (REENROLL_UNAVAILABLE: headquarters holds no issuing CA key).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { LifecycleEvent, LifecycleRole } from '../../core/lifecycle.js';
import { REVOCATION_REASONS } from '../../core/lifecycle.js';
import { ProfileOverridesSchema, RevocationUrlTemplatesSchema } from '../../core/pki/device-cert.js';
import { must, Refusal, sendJson, type FrontDoor } from './front-door.js';
import {
  MAX_BATCH_BYTES,
  MAX_OCSP_REQUEST_BYTES,
  MAX_SMALL_BODY_BYTES,
  StationIdSchema,
  zodMessage,
} from '../../core/hq/protocol.js';
import { apiError } from '../common/errors.js';
import { revokeStation } from '../stations/service.js';
import { answerOcsp } from '../revocation/ocsp.js';
import {
  applyTransition,
  batchTransition,
  type BatchEvent,
  blockIdentifier,
  deviceHistory,
  releaseDevice,
  verifyLifecycleLog,
} from '../transitions/service.js';
import { checkRole } from '../common/roles.js';
import { currentCrl } from '../revocation/crl.js';
import { noteStationRevoked, revokeOperator } from '../stations/operators.js';
import { reenrollUnavailable } from '../reenrolment/service.js';
import { revocationSignerInstall, revocationSignerRequest } from '../revocation/signer.js';
import { rotateStationKey, stationKeyRotation } from '../station-keys/rotation.js';
import { setPolicySetting, signedPolicy, FirmwareSettingSchema, ReenrollmentSettingSchema } from '../policy/policy.js';
import { setQuota, signedQuotas } from '../policy/quotas.js';
import { signedStationStatus } from '../stations/status.js';
import { stationScrapRevocations, MAX_SCRAP_REQUESTS } from '../revocation/scrap.js';
import { type LifecycleContext } from '../common/context.js';
import { InstallBodySchema, SIGNER_INSTALL_PATH, SIGNER_REQUEST_PATH } from '../../core/hq/revocation-signer.js';
import { KeyRotationBodySchema } from '../../core/hq/key-rotation.js';

const B64 = z
  .string()
  .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url')
  .max(64 * 1024);
const Reason = z.string().min(1).max(256);
export const TransitionBodySchema = z.object({ reason: Reason.optional() }).strict();
export const RevokeBodySchema = z.object({ reason: z.enum(REVOCATION_REASONS).optional() }).strict();
export const BatchRevokeBodySchema = z
  .object({
    workOrder: z.string().min(1).max(64).optional(),
    serialFrom: z.string().min(1).max(128).optional(),
    serialTo: z.string().min(1).max(128).optional(),
    reason: z.enum(REVOCATION_REASONS),
    dryRun: z.boolean().optional(),
  })
  .strict();
/** Batch suspend (reason required) and resume (reason optional): same selector as the batch revoke. */
export const BatchHoldBodySchema = BatchRevokeBodySchema.extend({ reason: Reason.optional() }).strict();
export const StationKeyRotationSchema = z
  .object({
    chainPem: z
      .string()
      .min(1)
      .max(64 * 1024),
    signature: B64,
  })
  .strict();
export const RevocationsBodySchema = z
  .object({
    requests: z
      .array(
        z
          .string()
          .min(1)
          .max(64 * 1024),
      )
      .min(1)
      .max(MAX_SCRAP_REQUESTS),
  })
  .strict();
export const QuotaBodySchema = z
  .object({ workOrder: z.string().min(1).max(64), stationId: StationIdSchema, quantity: z.number().int().min(0) })
  .strict();
export const BlockBodySchema = z
  .object({ kind: z.enum(['serial', 'chipId']), value: z.string().min(1).max(128), reason: Reason })
  .strict();
/**
 * `POST /v1/admin/policy` (admin): `firmware` replaces the whole map, `profileOverrides` the overrides
 * (ProfileOverridesSchema), `reenrollment` is merged into the stored lifetimes (seconds, 1 h .. 100 years),
 * `revocationUrls` replaces the CRL / OCSP URL templates (`{}` removes them).
 */
export const PolicySettingSchema = z
  .object({
    firmware: FirmwareSettingSchema.optional(),
    profileOverrides: ProfileOverridesSchema.optional(),
    reenrollment: ReenrollmentSettingSchema.optional(),
    revocationUrls: RevocationUrlTemplatesSchema.optional(),
  })
  .strict();

function json<S extends z.ZodType>(body: Uint8Array, schema: S): z.infer<S> {
  let v: unknown;
  try {
    v = body.length ? JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) : {};
  } catch {
    throw new Refusal(apiError('BODY_INVALID', 'the body is not valid UTF-8 JSON'));
  }
  const r = schema.safeParse(v);
  if (!r.success) throw new Refusal(apiError('BODY_INVALID', zodMessage(r.error)));
  return r.data;
}

function sendDer(res: ServerResponse, type: string, der: Uint8Array, maxAgeS: number): void {
  res.writeHead(200, {
    'content-type': type,
    'content-length': der.length,
    'cache-control': `max-age=${Math.max(0, Math.floor(maxAgeS))}`,
  });
  res.end(Buffer.from(der));
}

const SERIAL = '([A-Za-z0-9._:-]{1,128})';
/** A route matching exactly this path (letters, digits, '/', '-' only). */
const exactPath = (path: string): RegExp => new RegExp(`^${path.replaceAll('/', '\\/')}$`);
const STATION = '([A-Za-z0-9._-]{1,64})';
const TRANSITIONS: Record<string, Exclude<LifecycleEvent, 'rotate'>> = {
  activate: 'activate',
  suspend: 'suspend',
  resume: 'resume',
  revoke: 'revoke',
  decommission: 'decommission',
};

/**
 * The lifecycle request handler: returns false when the path is not one of its routes (the caller continues
 * with its own table), true when it answered.
 */
export function createLifecycleHandler(
  ctx: LifecycleContext,
  door: FrontDoor,
): (req: IncomingMessage, res: ServerResponse, url: URL) => boolean {
  // Callers are checked from the headers BEFORE a body is read (registry/front-door.ts).
  const officer = (req: IncomingMessage): LifecycleRole => must(checkRole(ctx, req.headers.authorization));
  const readBody = (req: IncomingMessage, res: ServerResponse, cap: number) => door.body(req, res, cap);

  type H = (req: IncomingMessage, res: ServerResponse, m: string[]) => Promise<void>;
  const routes: [string, RegExp, H][] = [
    [
      'POST',
      new RegExp(`^/v1/devices/${SERIAL}/(activate|suspend|resume|revoke|decommission)$`),
      async (req, res, [key, action]) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, action === 'revoke' ? RevokeBodySchema : TransitionBodySchema);
        sendJson(res, 200, must(await applyTransition(ctx, role, key!, TRANSITIONS[action!]!, b.reason ?? null)));
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/devices/${SERIAL}/release$`),
      async (req, res, [key]) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, TransitionBodySchema);
        sendJson(res, 200, must(await releaseDevice(ctx, role, key!, b.reason ?? '')));
      },
    ],
    [
      'GET',
      new RegExp(`^/v1/devices/${SERIAL}/history$`),
      async (req, res, [key]) => {
        officer(req);
        sendJson(res, 200, must(await deviceHistory(ctx, key!)));
      },
    ],
    [
      'POST',
      /^\/v1\/lifecycle\/(revoke|suspend|resume)$/,
      async (req, res, [what]) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const event = what as BatchEvent;
        const b = json(body, event === 'revoke' ? BatchRevokeBodySchema : BatchHoldBodySchema);
        if ((b.serialFrom === undefined) !== (b.serialTo === undefined))
          throw new Refusal(apiError('BODY_INVALID', 'give both serialFrom and serialTo'));
        const sel = {
          ...(b.workOrder !== undefined ? { workOrder: b.workOrder } : {}),
          ...(b.serialFrom !== undefined ? { serialRange: [b.serialFrom, b.serialTo!] as const } : {}),
        };
        sendJson(res, 200, must(await batchTransition(ctx, role, sel, event, b.reason ?? null, b.dryRun ?? false)));
      },
    ],
    [
      'POST',
      /^\/v1\/lifecycle\/blocks$/,
      async (req, res) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, BlockBodySchema);
        sendJson(res, 200, must(await blockIdentifier(ctx, role, b.kind, b.value, b.reason)));
      },
    ],
    [
      'GET',
      /^\/v1\/lifecycle\/verify$/,
      async (req, res) => {
        officer(req);
        sendJson(res, 200, must(await verifyLifecycleLog(ctx)));
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/admin/stations/${STATION}/rotate-key$`),
      async (req, res, [id]) => {
        officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, StationKeyRotationSchema);
        sendJson(res, 200, must(await rotateStationKey(ctx, id!, b.chainPem, b.signature)));
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/admin/stations/${STATION}/lifecycle-revoke$`),
      async (req, res, [id]) => {
        const role = officer(req);
        await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const s = must(await revokeStation(ctx, id!));
        await noteStationRevoked(ctx, id!, role);
        sendJson(res, 200, { station: s });
      },
    ],
    [
      'POST',
      /^\/v1\/admin\/operators\/([A-Za-z0-9._@-]{1,128})\/revoke$/,
      async (req, res, [id]) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, TransitionBodySchema);
        sendJson(res, 200, must(await revokeOperator(ctx, role, id!, b.reason ?? 'unspecified')));
      },
    ],
    [
      'POST',
      /^\/v1\/admin\/quotas$/,
      async (req, res) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, QuotaBodySchema);
        sendJson(res, 200, must(await setQuota(ctx, role, b.workOrder, b.stationId, b.quantity)));
      },
    ],
    [
      'POST',
      /^\/v1\/admin\/policy$/,
      async (req, res) => {
        const role = officer(req);
        const body = await readBody(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, PolicySettingSchema);
        // setPolicySetting refuses the security officer (AUTH_FORBIDDEN) and answers the version it published.
        const p = must(await setPolicySetting(ctx, role, b));
        sendJson(res, 200, { version: p.version, jws: p.jws });
      },
    ],
    [
      // Answered to a revoked station too (and only this route): its signed answer is how it learns it.
      'GET',
      /^\/v1\/station-status$/,
      async (req, res) => {
        const { caller, claims } = await door.station(req, res, 0, { allowRevoked: true });
        sendJson(res, 200, must(await signedStationStatus(ctx, caller.trust.row.stationId, claims)));
      },
    ],
    [
      'GET',
      /^\/v1\/policy$/,
      async (req, res) => {
        await door.station(req, res, 0);
        sendJson(res, 200, must(await signedPolicy(ctx)));
      },
    ],
    [
      // Station key rotation (docs/lifecycle.md): LS-Sig of the station (its current key, or, when a retry finds
      // the rotation already applied, its new one); the body's request is signed by the key being replaced.
      'POST',
      /^\/v1\/stations\/key-rotation$/,
      async (req, res) => {
        const { caller, body } = await door.station(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, KeyRotationBodySchema);
        sendJson(
          res,
          200,
          must(
            await stationKeyRotation(ctx, b.request, {
              via: 'station',
              authenticatedStationId: caller.trust.row.stationId,
            }),
          ),
        );
      },
    ],
    [
      'POST',
      /^\/v1\/revocations$/,
      async (req, res) => {
        const { caller, body } = await door.station(req, res, MAX_BATCH_BYTES);
        const b = json(body, RevocationsBodySchema);
        sendJson(res, 200, must(await stationScrapRevocations(ctx, caller.trust, b.requests)));
      },
    ],
    [
      // Delegated revocation signer (docs/lifecycle.md): the enrolled station's LS-Sig, no bearer token; both
      // answers are JWS signed with the registry key, which the station checks against its pinned registry.pem.
      'POST',
      exactPath(SIGNER_REQUEST_PATH),
      async (req, res) => {
        const { caller, body } = await door.station(req, res, MAX_SMALL_BODY_BYTES);
        json(body, z.object({}).strict());
        const r = must(await revocationSignerRequest(ctx, caller.trust.row.stationId));
        sendJson(res, 200, { jws: r.jws, requestId: r.requestId, repeated: r.repeated });
      },
    ],
    [
      'POST',
      exactPath(SIGNER_INSTALL_PATH),
      async (req, res) => {
        const { caller, body } = await door.station(req, res, MAX_SMALL_BODY_BYTES);
        const b = json(body, InstallBodySchema);
        sendJson(res, 200, must(await revocationSignerInstall(ctx, caller.trust.row.stationId, b)));
      },
    ],
    [
      'GET',
      /^\/v1\/quotas$/,
      async (req, res) => {
        const { caller } = await door.station(req, res, 0);
        sendJson(res, 200, must(await signedQuotas(ctx, caller.trust.row.stationId)));
      },
    ],
    [
      'GET',
      new RegExp(`^/v1/crl/${STATION}\\.crl$`),
      async (_req, res, [id]) => {
        const crl = must(await currentCrl(ctx, id!));
        sendDer(res, 'application/pkix-crl', crl.der, (Date.parse(crl.nextUpdate) - ctx.clock.now().getTime()) / 2000);
      },
    ],
    [
      'POST',
      /^\/v1\/ocsp$/,
      async (req, res) => {
        const body = await door.body(req, res, MAX_OCSP_REQUEST_BYTES, true);
        sendDer(res, 'application/ocsp-response', await answerOcsp(ctx, body), 0);
      },
    ],
    [
      'GET',
      /^\/v1\/ocsp\/(.+)$/,
      async (_req, res, [b64]) => {
        let der: Uint8Array;
        try {
          der = new Uint8Array(Buffer.from(decodeURIComponent(b64!), 'base64'));
        } catch {
          der = new Uint8Array();
        }
        sendDer(res, 'application/ocsp-response', await answerOcsp(ctx, der), 0);
      },
    ],
    [
      'POST',
      /^\/v1\/devices\/reenroll$/,
      async () => {
        // Refused from the request line alone: no body byte is read (the front door closes the connection).
        must(reenrollUnavailable());
      },
    ],
  ];

  return (req, res, url) => {
    const matching = routes.filter(([, re]) => re.test(url.pathname));
    const route = matching.find(([m]) => m === req.method);
    if (!route) {
      if (!matching.length) return false;
      door.refuse(
        req,
        res,
        url.pathname,
        new Refusal(apiError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`)),
      );
      return true;
    }
    const params = route[1].exec(url.pathname)!.slice(1);
    route[2](req, res, params).catch((e: unknown) => door.refuse(req, res, url.pathname, e));
    return true;
  };
}
