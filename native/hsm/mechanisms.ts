/**
 * The token's real mechanisms (C_GetMechanismList, C_GetMechanismInfo for the ones the station uses) and the check
 * of a job's requirement against them (core/hsm/requirements.ts). Needs no login.
 */
import { MECHANISMS } from '../../core/hsm/token-profile.js';
import type { MechanismInfo } from '../../core/hsm/requirements.js';
import { err, ok, type Result } from '../../core/result.js';
import { mapPkcs11Error } from './errors.js';
import type { Handle, PKCS11 } from './pkcs11.js';

/** The station's mechanisms the slot's token offers, with their info, and how many it lists in all. */
export function readMechanisms(lib: PKCS11, slot: Handle): Result<{ listed: number; mechanisms: MechanismInfo[] }> {
  let list: number[];
  try {
    list = lib.C_GetMechanismList(slot);
  } catch (e) {
    return err(mapPkcs11Error(e, 'C_GetMechanismList'));
  }
  const wanted = new Set<number>(Object.values(MECHANISMS));
  const mechanisms: MechanismInfo[] = [];
  for (const type of list) {
    if (!wanted.has(type)) continue;
    try {
      const i = lib.C_GetMechanismInfo(slot, type);
      mechanisms.push({ type, minKeySize: i.minKeySize, maxKeySize: i.maxKeySize, flags: i.flags });
    } catch (e) {
      return err(mapPkcs11Error(e, 'C_GetMechanismInfo'));
    }
  }
  return ok({ listed: list.length, mechanisms });
}
