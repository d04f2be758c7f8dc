/**
 * The board drivers this station has, by id (docs/architecture.md "Board drivers"). A board profile names its
 * driver (`driver`, default `ls`); the station passes `driverFor` to the flow (`FlowDeps.driverFor`). A new board
 * family is one folder here (its driver) plus its profiles in resources/boards/.
 */
import { fail } from '../errors.js';
import type { BoardProfile } from '../provisioning/profiles.js';
import { ok, type Result } from '../result.js';
import type { BoardDriver, DriverId } from './driver.js';
import { lsDriver } from './ls/index.js';
import { tpm2Driver } from './tpm2/index.js';

/** The registry: every driver this station can run. */
export const DRIVERS: Readonly<Partial<Record<DriverId, BoardDriver>>> = { ls: lsDriver, tpm2: tpm2Driver };

/** The driver a board profile names; FLOW_DRIVER_UNKNOWN when this station has none of that id. */
export function driverFor(profile: Pick<BoardProfile, 'id' | 'driver'>): Result<BoardDriver> {
  const d = Object.prototype.hasOwnProperty.call(DRIVERS, profile.driver) ? DRIVERS[profile.driver] : undefined;
  if (!d) {
    return fail(
      'FLOW_DRIVER_UNKNOWN',
      `board profile ${profile.id} names driver "${profile.driver}", which this station does not have`,
      { profile: profile.id, driver: profile.driver, drivers: Object.keys(DRIVERS) },
    );
  }
  return ok(d);
}
