/**
 * The token catalogue: the token profiles shipped in resources/tokens/*.json (schema in core/hsm/token-profile.ts),
 * read once per process, and the lookup of the profile for a module, and of a module path for a profile.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import { matchTokenProfile, parseTokenProfile, type TokenProfile } from '../../core/hsm/token-profile.js';

/** Location of the shipped token profiles (resources/tokens). */
export const DEFAULT_TOKEN_PROFILE_DIR = new URL('../../resources/tokens/', import.meta.url).pathname;

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
