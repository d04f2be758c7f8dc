/** Board profiles from disk: reads every *.json in a directory and validates them with core/provisioning/profiles.ts. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../core/errors.js';
import { loadProfiles, type BoardProfile } from '../core/provisioning/profiles.js';
import type { Result } from '../core/result.js';
import { packagePath } from './package-root.js';

/** Profile files larger than this are rejected unread. */
export const MAX_PROFILE_FILE_BYTES = 256 * 1024;

/** Default location of the shipped profiles (resources/boards). */
export const DEFAULT_PROFILE_DIR = packagePath('resources', 'boards');

/**
 * Load and validate all board profiles (`*.json`, sorted by name) in `dir`. An unreadable
 * directory is CONFIG_INVALID; a bad file, bad JSON, a duplicate id or no profile at all is INPUT_INVALID.
 */
export function loadProfilesFromDir(dir: string): Result<BoardProfile[]> {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  } catch (e) {
    return fail('CONFIG_INVALID', `board profile directory ${dir} cannot be read: ${(e as Error).message}`, { dir });
  }
  if (names.length === 0) return fail('INPUT_INVALID', `no board profiles (*.json) in ${dir}`, { dir });
  const entries: Array<{ source: string; json: unknown }> = [];
  for (const n of names) {
    const file = join(dir, n);
    let text: string;
    try {
      const st = statSync(file);
      if (!st.isFile()) continue;
      if (st.size > MAX_PROFILE_FILE_BYTES) {
        return fail('INPUT_INVALID', `board profile ${file} is too large (${st.size} bytes)`, { source: file });
      }
      text = readFileSync(file, 'utf8');
    } catch (e) {
      return fail('INPUT_INVALID', `board profile ${file} cannot be read: ${(e as Error).message}`, { source: file });
    }
    try {
      entries.push({ source: file, json: JSON.parse(text) as unknown });
    } catch (e) {
      return fail('INPUT_INVALID', `board profile ${file}: not valid JSON: ${(e as Error).message}`, {
        source: file,
        path: '(root)',
      });
    }
  }
  return loadProfiles(entries);
}
