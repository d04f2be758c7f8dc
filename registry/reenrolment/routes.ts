/**
 * HTTP handler of re-enrolment: refused from the request line alone (no body byte is read; the front door closes
 * the connection). Imports registry/common and ./.
 */
import type { RouteHandlers } from '../common/route.js';
import { reenrollUnavailable } from './service.js';

/** The re-enrolment handler. */
export const reenrolmentRoutes: RouteHandlers = {
  reenroll: { handle: async () => reenrollUnavailable() },
};
