/**
 * The token catalogue: the token profiles shipped in resources/tokens/*.json (schema in core/hsm/token-profile.ts),
 * read once per process, and the lookup of the profile for a module, and of a module path for a profile.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import { packagePath } from '../package-root.js';
import {
  libraryParametersFor,
  matchTokenProfile,
  parseTokenProfile,
  type TokenProfile,
} from '../../core/hsm/token-profile.js';

/** Location of the shipped token profiles (resources/tokens). */
export const DEFAULT_TOKEN_PROFILE_DIR = packagePath('resources', 'tokens');

/** Read and validate every `*.json` in a directory (sorted by file name); the id must equal the file name. */
export function loadTokenProfiles(dir: string = DEFAULT_TOKEN_PROFILE_DIR): Result<TokenProfile[]> {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    return fail('HSM_TOKEN_PROFILE_INVALID', `cannot read the token profile directory ${dir}`, { dir });
  }
  const out: TokenProfile[] = [];
  for (const f of files) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch {
      return fail('HSM_TOKEN_PROFILE_INVALID', `token profile ${f}: not valid JSON`, { file: f });
    }
    const p = parseTokenProfile(json, f);
    if (!p.ok) return p;
    if (`${p.value.id}.json` !== f)
      return fail('HSM_TOKEN_PROFILE_INVALID', `token profile ${f}: id "${p.value.id}" must match the file name`, {
        file: f,
      });
    out.push(p.value);
  }
  return ok(out);
}

let shipped: Result<TokenProfile[]> | null = null;

/** The shipped catalogue (read once). */
export function shippedTokenProfiles(): Result<TokenProfile[]> {
  shipped ??= loadTokenProfiles();
  return shipped;
}

/** The shipped profile with this id (HSM_TOKEN_PROFILE_INVALID when there is none). */
export function tokenProfileById(id: string): Result<TokenProfile> {
  const all = shippedTokenProfiles();
  if (!all.ok) return all;
  const p = all.value.find((x) => x.id === id);
  return p ? ok(p) : fail('HSM_TOKEN_PROFILE_INVALID', `no token profile "${id}" in resources/tokens`, { profile: id });
}

/** The shipped profile for a module path and token info (null when none matches; an error if the catalogue is broken). */
export function tokenProfileFor(
  module: string,
  token?: { readonly manufacturerID?: string; readonly model?: string },
): Result<TokenProfile | null> {
  const all = shippedTokenProfiles();
  return all.ok ? ok(matchTokenProfile(all.value, module, token)) : all;
}

/** The first of a profile's module paths that exists on this machine, or null. */
export function findProfileModule(profile: TokenProfile): string | null {
  return profile.modulePaths.find((p) => existsSync(p)) ?? null;
}

/** What a station configuration says about its token, beyond module, label and PIN (station/config.ts `hsm`). */
export interface TokenConfig {
  readonly module: string;
  readonly tokenLabel: string;
  /** Token profile id (resources/tokens); absent: the profile matching the module. */
  readonly profile?: string;
  /** Absolute directory of the token's files, for the profile's `{tokenDir}` library parameter (NSS). */
  readonly tokenDir?: string;
}

/**
 * The library parameters and profile to open a configured token with: the named profile (or the one matching the
 * module; undefined lets openHsm match it with the token's info too) and its library parameters filled in.
 * CONFIG_INVALID when the profile's parameters need a tokenDir the configuration does not give.
 */
export function resolveTokenConfig(
  c: TokenConfig,
): Result<{ readonly profile?: TokenProfile; readonly libraryParameters?: string }> {
  let profile: TokenProfile | null;
  if (c.profile !== undefined) {
    const p = tokenProfileById(c.profile);
    if (!p.ok) return p;
    profile = p.value;
  } else {
    const p = tokenProfileFor(c.module);
    if (!p.ok) return p;
    profile = p.value;
  }
  if (!profile) return ok({});
  const params = libraryParametersFor(profile, {
    tokenLabel: c.tokenLabel,
    ...(c.tokenDir !== undefined ? { tokenDir: c.tokenDir } : {}),
  });
  if (!params.ok) return params;
  return ok({
    ...(c.profile !== undefined ? { profile } : {}),
    ...(params.value !== undefined ? { libraryParameters: params.value } : {}),
  });
}
