import { describe, expect, it } from 'vitest';
import { ROUTES, routeParams, routePath, routePattern } from './routes.js';

describe('the station↔HQ route table', () => {
  it('builds paths the same table matches, with parameters in order', () => {
    const p = routePath(ROUTES.deviceTransition, { serial: 'SN-0001', transition: 'suspend' });
    expect(p).toBe('/v1/devices/SN-0001/suspend');
    expect(routePattern(ROUTES.deviceTransition).exec(p)?.slice(1)).toEqual(['SN-0001', 'suspend']);
    expect(routePath(ROUTES.crl, { stationId: 'st-1' })).toBe('/v1/crl/st-1.crl');
    expect(routePattern(ROUTES.crl).exec('/v1/crl/st-1.crl')?.[1]).toBe('st-1');
    expect(routePattern(ROUTES.crl).test('/v1/crl/st-1xcrl')).toBe(false);
    expect(routeParams(ROUTES.revokeOperator)).toEqual(['operator']);
  });

  it('refuses a parameter its pattern does not accept, and a missing one', () => {
    expect(() => routePath(ROUTES.revokeStation, { stationId: '../x' })).toThrow(/does not match/);
    expect(() => routePath(ROUTES.revokeStation)).toThrow(/missing :stationId/);
    expect(() => routePath(ROUTES.deviceTransition, { serial: 'a', transition: 'explode' })).toThrow();
  });

  it('has no two routes of one method that match the same path', () => {
    const all = Object.entries(ROUTES);
    const samples: Record<string, string> = {
      stationId: 'st-1',
      serial: 'SN-1',
      operator: 'op@x',
      transition: 'revoke',
      batchAction: 'suspend',
      identifier: 'SN-1',
      ocspRequest: 'MEUwQw',
    };
    for (const [name, spec] of all) {
      const path = spec.path.replace(/:([A-Za-z]+)/g, (_, n: string) => samples[n]!);
      const matches = all.filter(([, s]) => s.method === spec.method && routePattern(s).test(path)).map(([n]) => n);
      expect(matches, `${name} ${path}`).toEqual([name]);
    }
  });
});
