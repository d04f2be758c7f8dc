/**
 * The role a `registry` command acts as: admin (the default: whoever can read the data dir holds the admin token and
 * the HSM PIN anyway), or the security officer, proven by its token (`--token-file FILE` or $LINE_STATION_REGISTRY_TOKEN,
 * never the command line) with the same check as the HTTP bearer (checkRole). Admin-only commands then refuse it as
 * over HTTP. Imports core/, registry/setup/keys.ts, registry/common/roles.ts checkRole and registry/cli/.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ParsedArgs } from '../../core/cli/program.js';
import { ensureSecurityOfficerToken, readRegistryConfig } from '../setup/keys.js';
import { checkRole } from '../common/roles.js';
import { type LifecycleContext } from '../common/context.js';
import { fileProblem, TOKEN_ENV, usage, type Acting, type Outcome, type Out, type Role } from './command.js';
import { reportGuided } from './report.js';

/** The role `--as` / `--token-file` name for a command that acts as `acting`, or the outcome refusing it. */
export function actingRole(
  a: ParsedArgs,
  acting: Acting,
  env: { readonly ctx: LifecycleContext; readonly dataDir: string; readonly out: Out },
): { role: Role } | { outcome: Outcome } {
  const as = a.values['as'] ?? 'admin';
  const file = typeof a.values['token-file'] === 'string' ? a.values['token-file'] : undefined;
  const refuse = (code: string, message: string) => ({ outcome: reportGuided(env.out, { code, message }) });
  if (as !== 'admin' && as !== 'security-officer')
    return { outcome: usage(`--as must be admin or security-officer, not ${String(as)}`) };
  if (as === 'admin') {
    if (file !== undefined) return { outcome: usage('--token-file is for --as security-officer') };
    return { role: 'admin' };
  }
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (e) {
      return refuse('AUTH_REQUIRED', `cannot read --token-file ${file}: ${fileProblem(e)}`);
    }
  } else token = process.env[TOKEN_ENV]?.trim();
  if (!token)
    return refuse(
      'AUTH_REQUIRED',
      `acting as the security officer needs its token (--token-file FILE or $${TOKEN_ENV})`,
    );
  const checked = tokenRole(token, env);
  if ('outcome' in checked) return checked;
  if (checked.role !== 'security-officer')
    return refuse(
      'AUTH_FORBIDDEN',
      checked.role === 'admin'
        ? 'that is the admin token: --as security-officer needs the security officer token (or act as admin: no --as)'
        : `the token given (${file ? `--token-file ${file}` : `$${TOKEN_ENV}`}) is not this registry's security officer token`,
    );
  if (typeof acting === 'object') return refuse('AUTH_FORBIDDEN', acting.adminOnly);
  return { role: 'security-officer' };
}

/** The role a token proves, checked as the HTTP bearer is, against this data dir's admin and officer tokens. */
function tokenRole(
  token: string,
  env: { readonly ctx: LifecycleContext; readonly dataDir: string; readonly out: Out },
): { role: Role | null } | { outcome: Outcome } {
  const cfg = readRegistryConfig(env.dataDir);
  if (!cfg.ok) return { outcome: reportGuided(env.out, { code: 'CONFIG_INVALID', message: cfg.error.message }) };
  const so = ensureSecurityOfficerToken(env.dataDir, cfg.value);
  if (!so.ok) return { outcome: reportGuided(env.out, { code: 'CONFIG_INVALID', message: so.error.message }) };
  let adminTokenSha256: Uint8Array | undefined;
  try {
    const admin = readFileSync(resolve(env.dataDir, cfg.value.adminToken.file), 'utf8').trim();
    adminTokenSha256 = createHash('sha256').update(admin).digest();
  } catch {
    // unreadable admin token: it then cannot match either
  }
  const checked = checkRole(
    {
      ...env.ctx,
      ...(adminTokenSha256 ? { adminTokenSha256 } : {}),
      lifecycle: {
        ...env.ctx.lifecycle,
        securityOfficerTokenSha256: createHash('sha256').update(so.value).digest(),
      },
    },
    `Bearer ${token}`,
  );
  return { role: checked.ok ? checked.value : null };
}
