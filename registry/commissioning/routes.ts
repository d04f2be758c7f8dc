/**
 * HTTP handlers of commissioning (docs/registry-api.md "Commissioning"): `POST /v1/stations/commission` (anonymous:
 * the one-time enrolment code authorises), `GET /v1/hq/chain.pem` (the HQ chain, HQ CA first, root last) and
 * `GET /v1/hq/ca.crl` (the HQ CRL), `GET /v1/hq/crl-signer/:stationId.pem` (the HQ-certified CRL signer certificate). Imports core, registry/common and ./.
 */
import { CommissionBodySchema } from '../../core/hq/commission.js';
import { toPem } from '../../core/pki/pem.js';
import { ok } from '../../core/result.js';
import { param, strictJsonBody, type RouteHandlers } from '../common/route.js';
import { currentHqCrl, hqCrlSigner } from './hq-revocation.js';
import { commissioningOf, commissionWithCode } from './service.js';

/** The commissioning handlers. */
export const commissioningRoutes: RouteHandlers = {
  commission: {
    async handle(r) {
      const b = strictJsonBody(r, CommissionBodySchema);
      if (!b.ok) return b;
      const c = await commissionWithCode(r.ctx, b.value);
      return c.ok ? ok({ json: { answer: c.value.answer }, status: c.value.repeated ? 200 : 201 }) : c;
    },
  },
  hqChain: {
    async handle(r) {
      const c = commissioningOf(r.ctx);
      if (!c.ok) return c;
      const pem = c.value.hq.chain.map((d) => toPem(d, 'CERTIFICATE')).join('');
      return ok({ der: new TextEncoder().encode(pem), type: 'application/x-pem-file', maxAgeS: 300 });
    },
  },
  hqCrlSigner: {
    async handle(r) {
      const pem = await hqCrlSigner(r.ctx, param(r, 'stationId'));
      return pem.ok
        ? ok({ der: new TextEncoder().encode(pem.value), type: 'application/x-pem-file', maxAgeS: 300 })
        : pem;
    },
  },
  hqCrl: {
    async handle(r) {
      const crl = await currentHqCrl(r.ctx);
      if (!crl.ok) return crl;
      const maxAgeS = (Date.parse(crl.value.nextUpdate) - r.ctx.clock.now().getTime()) / 2000;
      return ok({ der: crl.value.der, type: 'application/pkix-crl', maxAgeS });
    },
  },
};
