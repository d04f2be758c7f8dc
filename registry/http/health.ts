/**
 * HTTP handler of `GET /v1/health` (public): API version, registry id, time, request audience. Imports core and
 * registry/common.
 */
import { ok } from '../../core/result.js';
import { API_VERSION, type Health } from '../../core/hq/protocol.js';
import { audienceOf } from '../common/context.js';
import type { RouteHandlers } from '../common/route.js';

/** The health handler. */
export const healthRoutes: RouteHandlers = {
  health: {
    async handle({ ctx }) {
      const h: Health = {
        status: 'ok',
        api: API_VERSION,
        registryId: ctx.registryId,
        time: ctx.clock.now().toISOString(),
        audience: audienceOf(ctx),
      };
      return ok({ json: h });
    },
  },
};
