/** The route dispatch: every route of core/hq/routes.ts has a handler; which route a method and path find. */
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../core/hq/routes.js';
import { REGISTRY_ROUTES } from './compose.js';
import { findRoute, mountRoutes } from './dispatch.js';

const routes = mountRoutes(REGISTRY_ROUTES);
const found = (method: string, path: string) => {
  const r = findRoute(routes, method, path);
  return r.ok ? r.value.name : r.error.apiError.code;
};

describe('registry dispatch', () => {
  it('mounts a handler on every route of the table, and refuses a table with a route left unhandled', () => {
    expect(routes.map((r) => r.name).sort()).toEqual(Object.keys(ROUTES).sort());
    const { health: _, ...rest } = REGISTRY_ROUTES;
    expect(() => mountRoutes(rest)).toThrow(/no handler for route health/);
  });

  it('finds routes by method and path; another method is METHOD_NOT_ALLOWED, an unknown path NOT_FOUND', () => {
    expect(found('GET', '/v1/health')).toBe('health');
    expect(found('POST', '/v1/health')).toBe('METHOD_NOT_ALLOWED');
    expect(found('GET', '/v1/nothing')).toBe('NOT_FOUND');
    expect(found('GET', '/v1/devices/SN-1')).toBe('device');
    expect(found('POST', '/v1/devices/SN-1/revoke')).toBe('deviceTransition');
    expect(found('POST', '/v1/devices/SN-1/release')).toBe('deviceRelease');
    expect(found('GET', '/v1/devices/SN-1/history')).toBe('deviceHistory');
    expect(found('GET', '/v1/crl/st-1.crl')).toBe('crl');
    expect(found('GET', '/v1/ocsp/MEIw')).toBe('ocspGet');
    expect(found('POST', '/v1/ocsp')).toBe('ocspPost');
  });

  it('a literal path wins over a parameter: /v1/devices/reenroll is the re-enrolment route for every method', () => {
    expect(found('POST', '/v1/devices/reenroll')).toBe('reenroll');
    expect(found('GET', '/v1/devices/reenroll')).toBe('METHOD_NOT_ALLOWED');
  });
});
