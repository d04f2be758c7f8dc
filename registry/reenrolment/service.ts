/**
 * Re-enrolment at headquarters: refused (REENROLL_UNAVAILABLE), the issuing CA key stays in the station HSM.
 * Imports core and registry/common.
 */
import { type Result } from '../../core/result.js';
import { apiFail, type ApiError } from '../common/errors.js';

/**
 * `POST /v1/devices/reenroll`: refused with REENROLL_UNAVAILABLE. Issuing a device certificate needs the station's
 * issuing CA key, which never leaves the station token (docs/hsm.md "Key attributes"); headquarters holds only a
 * revocation signer. Devices get a new certificate at a station (rework: a rotation record).
 */
export function reenrollUnavailable(): Result<never, ApiError> {
  return apiFail(
    'REENROLL_UNAVAILABLE',
    'headquarters cannot issue device certificates (the issuing CA key stays in the station HSM): re-key the device at a station (rework)',
  );
}
