/**
 * HTTP handlers of revocation: a station's scrap and failed-issuance events, the two steps of its delegated
 * revocation signer, and the public CRL and OCSP answers (signed objects). Imports core, registry/common and ./.
 */
import { z } from 'zod';
import { ok } from '../../core/result.js';
import { InstallBodySchema } from '../../core/hq/revocation-signer.js';
import { json, jsonBody, param, stationCaller, type RouteHandlers } from '../common/route.js';
import { currentCrl } from './crl.js';
import { answerOcsp } from './ocsp.js';
import { MAX_SCRAP_REQUESTS, stationScrapRevocations } from './scrap.js';
import { revocationSignerInstall, revocationSignerRequest } from './signer.js';

/** `POST /v1/revocations`: scrap and failed-issuance event JWS. */
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

const OCSP_RESPONSE = 'application/ocsp-response';

/** The revocation handlers. */
export const revocationRoutes: RouteHandlers = {
  revocations: {
    async handle(r) {
      const b = jsonBody(r, RevocationsBodySchema);
      if (!b.ok) return b;
      return json(await stationScrapRevocations(r.ctx, stationCaller(r).trust, b.value.requests));
    },
  },
  // Delegated revocation signer (docs/lifecycle.md): the enrolled station's LS-Sig, no bearer token; both answers
  // are JWS signed with the registry key, which the station checks against its pinned registry.pem.
  revocationSignerRequest: {
    async handle(r) {
      const b = jsonBody(r, z.object({}).strict());
      if (!b.ok) return b;
      const s = await revocationSignerRequest(r.ctx, stationCaller(r).trust.row.stationId);
      return s.ok ? ok({ json: { jws: s.value.jws, requestId: s.value.requestId, repeated: s.value.repeated } }) : s;
    },
  },
  revocationSignerInstall: {
    async handle(r) {
      const b = jsonBody(r, InstallBodySchema);
      if (!b.ok) return b;
      return json(await revocationSignerInstall(r.ctx, stationCaller(r).trust.row.stationId, b.value));
    },
  },
  crl: {
    async handle(r) {
      const crl = await currentCrl(r.ctx, param(r, 'stationId'));
      if (!crl.ok) return crl;
      const maxAgeS = (Date.parse(crl.value.nextUpdate) - r.ctx.clock.now().getTime()) / 2000;
      return ok({ der: crl.value.der, type: 'application/pkix-crl', maxAgeS });
    },
  },
  ocspPost: {
    handle: async (r) => ok({ der: await answerOcsp(r.ctx, r.body), type: OCSP_RESPONSE, maxAgeS: 0 }),
  },
  ocspGet: {
    async handle(r) {
      let der: Uint8Array;
      try {
        der = new Uint8Array(Buffer.from(decodeURIComponent(param(r, 'ocspRequest')), 'base64'));
      } catch {
        der = new Uint8Array();
      }
      return ok({ der: await answerOcsp(r.ctx, der), type: OCSP_RESPONSE, maxAgeS: 0 });
    },
  },
};
