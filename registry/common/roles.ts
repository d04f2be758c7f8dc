/**
 * Bearer-token callers: the admin token (`checkAdmin`) and the officer roles (`checkRole`: admin or security
 * officer), compared in constant time against the digests in the RegistryContext. Imports core and ./.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ok, type Result } from '../../core/result.js';
import type { Caller, RegistryContext } from './context.js';
import { apiFail, type ApiError } from './errors.js';

const BEARER = /^Bearer ([A-Za-z0-9_-]{16,256})$/;

/** Check `Authorization: Bearer <admin token>` in constant time. */
export function checkAdmin(ctx: RegistryContext, authorization: string | undefined): Result<Caller, ApiError> {
  if (!authorization)
    return apiFail('AUTH_REQUIRED', 'this endpoint needs the admin token (Authorization: Bearer <token>)');
  const m = BEARER.exec(authorization);
  if (!m || !ctx.adminTokenSha256) return apiFail('AUTH_FORBIDDEN', 'admin token required');
  const got = createHash('sha256').update(m[1]!).digest();
  if (!timingSafeEqual(got, ctx.adminTokenSha256)) return apiFail('AUTH_FORBIDDEN', 'the admin token is not valid');
  return ok({ kind: 'admin' });
}

/** `Authorization: Bearer <token>`: the admin token (role admin) or the security officer token. */
export function checkRole(
  ctx: RegistryContext,
  authorization: string | undefined,
): Result<'admin' | 'security-officer', ApiError> {
  if (!authorization) return apiFail('AUTH_REQUIRED', 'this endpoint needs a bearer token (admin or security officer)');
  const m = BEARER.exec(authorization);
  if (!m) return apiFail('AUTH_FORBIDDEN', 'a bearer token is required');
  const got = createHash('sha256').update(m[1]!).digest();
  if (ctx.adminTokenSha256 && timingSafeEqual(got, ctx.adminTokenSha256)) return ok('admin');
  const so = ctx.lifecycle?.securityOfficerTokenSha256;
  if (so && timingSafeEqual(got, so)) return ok('security-officer');
  return apiFail('AUTH_FORBIDDEN', 'the token is not valid');
}
