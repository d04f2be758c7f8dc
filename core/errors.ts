/**
 * Error catalogue. Every failure the station can report has a code in a family
 * (PROTOCOL_, LINK_, BOARD_, HSM_, ATTEST_, CSR_, CERT_, POLICY_, STORE_, FLOW_, CONFIG_, LABEL_, PRINTER_),
 * a kind (a user/operational error with guidance, or a bug), and what the operator should do next.
 *
 * The UI and the CLI switch on `code`; messages are for people, codes are for programs.
 */

/** What the operator at the line should do about a failure. */
export type OperatorAction =
  | 'retry' // safe to try again as is
  | 'reseat' // unplug and re-plug / re-seat the board, then retry
  | 'set-aside' // put the board in the quarantine bin; it needs engineering review
  | 'call-supervisor' // station-level problem (HSM, configuration, policy), needs a supervisor
  | 'none'; // nothing to do (e.g. already provisioned)

/**
 * One code of the catalogue. `text` (what happened, English, one sentence) and `guidance` are the English texts the
 * UI shows for the code; the renderer has them in every other language it speaks (renderer/src/i18n), keyed by code.
 * `text` may use `{name}` placeholders for the names listed in `params` only; every producer of the code passes
 * those names in its `details` with a string or number value (test/e2e/error-catalogue.test.ts checks both), and
 * `stationError` copies them into the error's `params`.
 */
export interface ErrorCatalogueEntry {
  readonly kind: 'user' | 'bug';
  readonly action: OperatorAction;
  readonly text: string;
  readonly guidance: string;
  readonly params?: readonly string[];
}

/** Values of an error's `params`: what a localised text puts into its placeholders. */
export type ErrorParams = Readonly<Record<string, string | number>>;

export const ERROR_CATALOGUE = {
  // --- wire protocol (board said something we cannot parse or did not answer) ---
  PROTOCOL_TIMEOUT: {
    text: 'The board did not answer in time.',
    kind: 'user',
    action: 'reseat',
    guidance: 'The board did not answer in time. Re-seat the board and retry.',
  },
  PROTOCOL_MALFORMED: {
    text: 'The board sent a malformed answer.',
    kind: 'user',
    action: 'reseat',
    guidance: 'The board sent a malformed frame. Re-seat the board and retry; if it repeats, set it aside.',
  },
  PROTOCOL_CRC: {
    text: 'Data from the board arrived corrupted (checksum error).',
    kind: 'user',
    action: 'reseat',
    guidance: 'Corrupted data on the serial line (checksum). Check the cable, re-seat the board and retry.',
  },
  PROTOCOL_OVERSIZE: {
    text: 'The board sent a frame larger than the protocol allows.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board sent a frame larger than the protocol allows. Set the board aside.',
  },
  PROTOCOL_VERSION: {
    text: 'The board firmware speaks an unsupported protocol version.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board firmware speaks an unsupported protocol version. Set it aside for a firmware update.',
  },
  PROTOCOL_UNEXPECTED: {
    text: 'The board answered out of order.',
    kind: 'user',
    action: 'reseat',
    guidance: 'The board answered out of order. Re-seat the board and retry.',
  },
  // --- link (serial port) ---
  LINK_OPEN_FAILED: {
    text: 'The port {path} could not be opened.',
    params: ['path'],
    kind: 'user',
    action: 'reseat',
    guidance:
      'The serial port could not be opened. Re-seat the board; if it persists, call a supervisor to check port permissions.',
  },
  LINK_ACCESS_DENIED: {
    text: 'No permission to open the port {path}.',
    params: ['path'],
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'No permission to open the port. A supervisor must install the udev rules (see Diagnostics).',
  },
  LINK_DISCONNECTED: {
    text: 'The board was disconnected during the step.',
    kind: 'user',
    action: 'reseat',
    guidance: 'The board was disconnected during the step. Re-seat it; provisioning resumes where it stopped.',
  },
  // --- board-reported errors ---
  BOARD_BAD_REQUEST: {
    text: 'The board rejected a request as invalid.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'The board rejected a request as invalid. Call a supervisor.',
  },
  BOARD_BUSY: { text: 'The board is busy.', kind: 'user', action: 'retry', guidance: 'The board is busy. Retry.' },
  BOARD_LOCKED: {
    text: 'The board identity is locked, and this station has no record of it.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The board identity is locked. Re-provisioning needs a supervisor override.',
  },
  BOARD_NO_KEY: {
    text: 'The board has no device key yet.',
    kind: 'user',
    action: 'retry',
    guidance: 'The board has no device key yet. Retry provisioning.',
  },
  BOARD_CERT_MISSING: {
    text: 'This board no longer holds the certificate of its record {recordId}.',
    params: ['recordId'],
    kind: 'user',
    action: 'set-aside',
    guidance:
      'This board was provisioned here but no longer holds its certificate (erased, scrapped or reflashed). Set it ' +
      'aside; only a supervisor may re-provision it (recorded as a rotation).',
  },
  BOARD_CERT_REFUSED: {
    text: 'The board refused the certificate.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board refused the certificate. Set the board aside.',
  },
  BOARD_IDENTITY_INVALID: {
    text: 'The board reported an identity its profile does not allow.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The board reported an identity its profile does not allow (a serial number outside the profile pattern, or control or formatting characters in its model, firmware or hardware revision). Nothing was recorded. Set the board aside for engineering review.',
  },
  BOARD_UNSUPPORTED: {
    text: 'The board does not support this operation.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board does not support this operation. Check the board profile; set the board aside.',
  },
  BOARD_INTERNAL: {
    text: 'The board reported an internal error.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board reported an internal error. Set the board aside.',
  },
  // --- HSM ---
  HSM_MODULE_LOAD_FAILED: {
    text: 'The PKCS#11 module of the HSM could not be loaded.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The PKCS#11 module could not be loaded. A supervisor must check the module path in the station configuration.',
  },
  HSM_TOKEN_ABSENT: {
    text: 'The HSM token is not present.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The HSM token is not present. Insert or connect the HSM, then retry.',
  },
  HSM_PIN_INCORRECT: {
    text: 'The HSM PIN is incorrect.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The HSM PIN is incorrect. A supervisor must enter the correct PIN (the token locks after repeated failures).',
  },
  HSM_PIN_LOCKED: {
    text: 'The HSM PIN is locked.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The HSM PIN is locked. The security officer must unlock the token.',
  },
  HSM_SESSION_LOST: {
    text: 'The connection to the HSM was lost.',
    kind: 'user',
    action: 'retry',
    guidance: 'The HSM session was lost. The station reconnects; retry the board.',
  },
  HSM_KEY_NOT_FOUND: {
    text: 'The key {label} is missing from the HSM token.',
    params: ['label'],
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'A required key is missing from the HSM token. A supervisor must run station init or check the token.',
  },
  HSM_MECHANISM_UNSUPPORTED: {
    text: 'The HSM does not support a required mechanism.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The HSM does not support a required mechanism. Check the token catalogue.',
  },
  HSM_KEY_EXISTS: {
    text: 'A key with this label already exists in the HSM token.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'A key with this label already exists in the token. Choose another label or remove the old key.',
  },
  HSM_KEY_EXPORTABLE: {
    text: 'The signing key {label} could leave the HSM token.',
    params: ['label'],
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'A signing key in the HSM token could leave it (extractable or not sensitive). A supervisor must re-initialise the station so its keys are generated non-extractable (docs/hsm.md).',
  },
  HSM_TOKEN_LACKS_MECHANISM: {
    text: 'The HSM token lacks a mechanism this job needs.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The HSM token lacks a mechanism this job needs (the message names it). Use a token that offers it (docs/hsm.md "Token profiles"), or do not run the profiles that need it on this token.',
  },
  HSM_TOKEN_PROFILE_INVALID: {
    text: 'A token profile is invalid.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'A token profile (resources/tokens/*.json) is invalid. Fix the file the message names.',
  },
  HSM_FAILED: {
    text: 'The HSM reported an unexpected error.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'The HSM reported an unexpected error. Call a supervisor.',
  },
  // --- attestation / CSR / certificate ---
  ATTEST_SIGNATURE_INVALID: {
    text: 'The attestation signature of the board is invalid.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board failed attestation (bad signature): it may not be genuine. Set it aside and report it.',
  },
  ATTEST_CHAIN_INVALID: {
    text: 'The attestation certificate does not chain to a trusted vendor root.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board attestation certificate does not chain to a trusted vendor root. Set it aside and report it.',
  },
  ATTEST_IDENTITY_MISMATCH: {
    text: 'The attestation certificate belongs to a different chip.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The attestation certificate belongs to a different chip. Set the board aside and report it.',
  },
  ATTEST_STATEMENT_INVALID: {
    text: 'The board gave no valid key-bound attestation statement.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The board answered the attestation challenge without a valid key-bound statement. Set it aside and report it.',
  },
  ATTEST_NONCE_MISMATCH: {
    text: 'The attestation was not made for this challenge.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The attestation was not made for this challenge (stale or replayed): something on the line may be relaying the board. Set the board aside, check the fixture and report it.',
  },
  ATTEST_KEY_MISMATCH: {
    text: 'The board does not attest the key it reported.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The board does not attest the key it reported: something between the station and the board may have substituted a key. Nothing was issued. Set the board aside, check the fixture and report it.',
  },
  ATTEST_KEY_TYPE_MISMATCH: {
    text: 'The board key is not of the type its profile requires.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The board's key is not of the type and curve its profile requires. Nothing was issued. Set the board aside and report it.",
  },
  ATTEST_MEASUREMENT_MISMATCH: {
    text: 'The board attests other measurements than the ones checked.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The board attests other measurements than the ones the station checked. Nothing was issued. Set the board aside, check the fixture and report it.',
  },
  ATTEST_TPM_ACTIVATION_FAILED: {
    text: 'The TPM did not pass the credential activation.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The board's TPM did not answer the credential activation: the attestation key is not proven to be in the TPM of the endorsement key (the answer may come from another TPM). Nothing was issued. Set the board aside, check the fixture and report it.",
  },
  ATTEST_TPM_QUOTE_INVALID: {
    text: 'The TPM quote does not match the PCR values read.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The board's TPM quote does not cover the PCRs the station selected, or its PCR digest is not the digest of the PCR values read: something between the station and the TPM may alter the answers. Nothing was issued. Set the board aside and report it.",
  },
  ATTEST_LEGACY_REFUSED: {
    text: 'The board speaks only the legacy attestation protocol, which profile {profile} does not allow.',
    params: ['profile'],
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The board speaks only the legacy attestation protocol (v1) and its profile does not allow legacy mode. Set it aside for a firmware update.',
  },
  CSR_INVALID: {
    text: 'The board produced an invalid certificate request.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board produced an invalid certificate request. Set it aside.',
  },
  CSR_POP_FAILED: {
    text: 'The board could not prove possession of its key.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board could not prove possession of its key. Set it aside.',
  },
  CERT_INSTALL_MISMATCH: {
    text: 'The board does not hold the certificate that was written.',
    kind: 'user',
    action: 'reseat',
    guidance: 'The board does not hold the certificate that was written. Re-seat and retry.',
  },
  CERT_ISSUE_FAILED: {
    text: 'The certificate could not be issued.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'The certificate could not be issued. Call a supervisor.',
  },
  // --- station commissioning (core/hq/commission-issue.ts; docs/formats.md "Commissioning") ---
  COMMISSION_REQUEST_MALFORMED: {
    text: 'The commissioning request is not a well-formed request document.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The commissioning request is not a well-formed request document (JWS, typ, algorithm or fields). Create a new request with `station commission`.',
  },
  COMMISSION_SIGNATURE_INVALID: {
    text: 'The commissioning request is not signed by the key of its station certificate.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The commissioning request is not signed by the station key of its station certificate: it was altered or forged. Do not commission; create a new request at the station.',
  },
  COMMISSION_CSR_INVALID: {
    text: 'The certificate request for the station CA is invalid.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The certificate request for the station CA is invalid or not signed by its own key (no proof of possession). Create a new request at the station.',
  },
  COMMISSION_SUBJECT_MISMATCH: {
    text: 'The commissioning request names another station or organisation than expected.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The commissioning request names another station or organisation than expected. Check the station id and the organisation configured at headquarters.',
  },
  COMMISSION_STATION_CERT_INVALID: {
    text: 'The station certificate in the commissioning request does not follow the profile.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The station certificate in the commissioning request does not follow the profile (issued by the station CA key under its name, CN = station id, CA:false, digitalSignature, a key other than the CA key). Create a new request.',
  },
  COMMISSION_ANSWER_INVALID: {
    text: 'The commissioning answer does not verify.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The commissioning answer is not signed by the pinned headquarters certificate, or does not answer this request, or its certificates do not chain to the headquarters root. Do not install it; ask headquarters.',
  },
  // --- TPM 2.0 (core/tpm; docs/tpm.md) ---
  TPM_LOCKOUT: {
    text: 'The TPM of the board is in dictionary-attack lockout.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The board's TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT): it refuses authorisations until its lockout time passes or its owner resets it. Nothing was issued. Set the board aside for engineering review.",
  },
  TPM_COMMAND_FAILED: {
    text: 'The TPM of the board refused a command.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The board's TPM refused a command (the message names its response code). Set the board aside for engineering review; if every board fails the same way, call a supervisor.",
  },
  TPM_RESPONSE_MALFORMED: {
    text: 'The TPM response relayed by the board is malformed.',
    kind: 'user',
    action: 'reseat',
    guidance:
      'The TPM response relayed by the board is malformed (truncated, oversized or inconsistent). Re-seat the board and retry; if it repeats, set it aside.',
  },
  TPM_EK_CERT_INVALID: {
    text: 'The endorsement key certificate of the TPM is invalid.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      "The TPM's endorsement key certificate is missing, unreadable or does not match the TPM's endorsement key. Nothing was issued. Set the board aside and report it.",
  },
  TPM_KEY_ATTRIBUTES_INVALID: {
    text: 'A TPM key does not have the attributes the station requires.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'A key the TPM reported does not have the attributes the station requires (fixedTPM, fixedParent, sensitiveDataOrigin, type and curve): something may have altered the key template. Nothing was issued. Set the board aside and report it.',
  },
  TPM_UNSUPPORTED: {
    text: 'The TPM uses an algorithm or key type the station does not support.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The TPM uses an algorithm or key type the station does not support (see docs/tpm.md). Set the board aside for engineering review.',
  },
  // --- baseline policy ---
  POLICY_VIOLATION: {
    text: 'The board does not match the baseline of the work order.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'The board does not match the expected baseline for this work order. Set it aside for rework.',
  },
  // --- store ---
  STORE_FAILED: {
    text: 'The station database reported an error.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'The station database reported an error. Call a supervisor.',
  },
  STORE_VERSION_TOO_NEW: {
    text: 'The station database was written by a newer Line Station.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The station database was written by a newer Line Station. Update the station software.',
  },
  STORE_AUDIT_BROKEN: {
    text: 'The audit trail failed verification.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The audit trail failed verification. Stop the line and call a supervisor.',
  },
  STORE_AUDIT_NOT_ANCHORED: {
    text: 'The audit trail no longer holds the history headquarters anchored.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The audit trail no longer holds the history headquarters anchored (rewritten, or restored from an old backup). Stop the line and call a supervisor.',
  },
  // --- flow ---
  FLOW_ALREADY_PROVISIONED: {
    text: 'This board is already provisioned.',
    kind: 'user',
    action: 'none',
    guidance: 'This board is already provisioned. Re-provisioning needs a supervisor override.',
  },
  FLOW_CANCELLED: {
    text: 'Provisioning was cancelled.',
    kind: 'user',
    action: 'retry',
    guidance: 'Provisioning was cancelled. Retry when ready.',
  },
  FLOW_PROFILE_UNKNOWN: {
    text: 'No board profile matches this board.',
    kind: 'user',
    action: 'set-aside',
    guidance: 'No board profile matches this board. Set it aside and call a supervisor.',
  },
  FLOW_DRIVER_UNKNOWN: {
    text: 'Profile {profile} names the board driver {driver}, which this station does not have.',
    params: ['profile', 'driver'],
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      "The board's profile names a board driver this station does not have. Set the board aside; a supervisor updates the station or the profile.",
  },
  FLOW_WORK_ORDER_MISMATCH: {
    text: 'Board profile {profile} is not part of work order {workOrder}.',
    params: ['profile', 'workOrder'],
    kind: 'user',
    action: 'set-aside',
    guidance: 'This board does not belong to the current work order. Set it aside.',
  },
  FLOW_SCAN_MISMATCH: {
    text: 'The barcode scanned for this port, {scanned}, is not the board on it ({serialNumber}).',
    params: ['scanned', 'serialNumber'],
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The barcode scanned for this port is not the board on it. Check which board is on the port and scan its own label again; if they still differ, set the board aside.',
  },
  FLOW_SCAN_REQUIRED: {
    text: "Work order {workOrder} requires the board's barcode to be scanned first.",
    params: ['workOrder'],
    kind: 'user',
    action: 'retry',
    guidance: "This work order requires scan-in: scan the board's own barcode for its port, then provisioning starts.",
  },
  FLOW_BOARD_BUSY: {
    text: 'This board is already being provisioned on another port.',
    kind: 'user',
    action: 'none',
    guidance: 'This board is already being provisioned on another port.',
  },
  // identity lifecycle (station/lifecycle): the registry's signed policy and quotas
  FLOW_BLOCKED: {
    text: 'Headquarters has blocked board {serialNumber} (policy version {policyVersion}).',
    params: ['serialNumber', 'policyVersion'],
    kind: 'user',
    action: 'set-aside',
    guidance: 'Headquarters has blocked or decommissioned this board. Set it aside and call a supervisor.',
  },
  FLOW_QUOTA_EXHAUSTED: {
    text: 'The quota of work order {workOrder} is used up.',
    params: ['workOrder'],
    kind: 'user',
    action: 'call-supervisor',
    guidance: "Call a supervisor: the work order's quota is used up.",
  },
  FLOW_STATION_REVOKED: {
    text: 'Station {stationId} has been revoked by headquarters.',
    params: ['stationId'],
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'This station has been revoked by headquarters; contact your supervisor. It cannot provision boards.',
  },
  FLOW_RUN_ABANDONED: {
    text: 'The run was ended without a record.',
    kind: 'user',
    action: 'set-aside',
    guidance:
      'The run was ended without a record (the board was scrapped by a supervisor); a certificate issued for it is revoked.',
  },
  FLOW_RUN_EXPIRED: {
    text: 'The board did not come back in time after its certificate was issued.',
    kind: 'user',
    action: 'retry',
    guidance:
      'The board did not come back within the active-run lifetime after its certificate was issued; the run was ended and that certificate revoked. Provision the board again: it gets a new identity.',
  },
  // --- sessions (operators and supervisors) ---
  AUTH_REQUIRED: {
    text: 'Please sign in.',
    kind: 'user',
    action: 'none',
    guidance: 'Sign in with your operator id and PIN (or scan your badge).',
  },
  AUTH_INVALID_CREDENTIALS: {
    text: 'Operator id, PIN or badge not recognised.',
    kind: 'user',
    action: 'retry',
    guidance:
      'Operator id, PIN or badge not recognised. Try again; repeated failures lock sign-in, each lock twice as long as the one before.',
  },
  AUTH_LOCKED: {
    text: 'Sign-in is locked until {lockedUntil}.',
    params: ['lockedUntil'],
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'Too many sign-in attempts: this operator id (or badge sign-in at this station) is locked until the time shown, and a right PIN does not unlock it. Call a supervisor.',
  },
  AUTH_SESSION_EXPIRED: {
    text: 'Your session ended.',
    kind: 'user',
    action: 'none',
    guidance: 'Your session ended (no activity for a while, or the longest session time was reached). Sign in again.',
  },
  AUTH_PIN_POLICY: {
    text: 'A supervisor PIN needs at least {minLength} digits.',
    params: ['minLength'],
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'This PIN is shorter than the station requires for a supervisor. Enrol a longer PIN: station operator add (same id).',
  },
  AUTH_FORBIDDEN: {
    text: 'This needs a supervisor.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'This needs a supervisor. Ask a supervisor to confirm with their PIN.',
  },
  AUTH_REVOKED: {
    text: 'This operator has been revoked.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'This operator has been revoked (at this station or by headquarters) and cannot sign in; work in progress under their name stops starting new boards. Another operator must sign in.',
  },
  // --- sync with the registry ---
  SYNC_UNREACHABLE: {
    text: 'The registry is not reachable.',
    kind: 'user',
    action: 'none',
    guidance: 'The registry is not reachable. Records stay queued and are sent when it is back, or export a bundle.',
  },
  SYNC_REJECTED: {
    text: 'The registry refused a request from this station.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The registry refused a request from this station. A supervisor must check the station enrolment.',
  },
  SYNC_REGISTRY_UNTRUSTED: {
    text: 'The registry did not prove it is the enrolled registry.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The registry did not prove it is the enrolled registry (its TLS certificate or signed answer does not match the pinned registry.pem). Nothing was sent. A supervisor must check the registry URL and registry.pem.',
  },
  SYNC_INSECURE_URL: {
    text: 'The registry URL must use https.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'A registry URL that is not on this machine (loopback) must use https. A supervisor must enrol the station with an https:// registry URL.',
  },
  SYNC_RECEIPT_INVALID: {
    text: 'A receipt did not verify.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'A receipt did not verify (wrong registry, wrong station or modified). Nothing was marked as synced.',
  },
  SYNC_RESPONSE_TOO_LARGE: {
    text: 'The registry answer was too large.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The server at the registry URL answered more than a registry ever sends; the station stopped reading and applied nothing. Check the registry URL.',
  },
  // --- labels and label printers (core/labels, native/printers; docs/operations.md "Label printer") ---
  LABEL_DATA_INVALID: {
    text: 'No label could be made from this record.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The record does not give what a label needs (serial, chip id, certificate, device URN). No label was made; call a supervisor.',
  },
  LABEL_TOO_SMALL: {
    text: 'The label does not fit the configured label size.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The label text and QR code do not fit the configured label size. A supervisor must set a larger size (config.json labels).',
  },
  PRINTER_NOT_CONFIGURED: {
    text: 'No label printer is configured.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'No label printer is configured (config.json labels.printer). A supervisor must configure one.',
  },
  PRINTER_UNREACHABLE: {
    text: 'The label printer could not be reached.',
    kind: 'user',
    action: 'retry',
    guidance:
      'The label printer could not be reached or did not take the label in time. The board is fine: check the printer (power, network, paper), then reprint.',
  },
  PRINTER_FAILED: {
    text: 'The label printer refused the label.',
    kind: 'user',
    action: 'retry',
    guidance:
      'The label printer or print queue refused the label. The board is fine: check the printer and its queue, then reprint.',
  },
  PRINTER_LP_MISSING: {
    text: 'The CUPS print client is not installed.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The CUPS client `lp` is not installed on this station. A supervisor must install cups-client or use a raw TCP printer.',
  },
  // --- configuration ---
  STATION_BUSY: {
    text: 'Another station process uses this data directory.',
    kind: 'user',
    action: 'retry',
    guidance:
      'Another station process uses this data directory (station serve, watch or a key rotation). Stop it, then try again.',
  },
  CONFIG_INVALID: {
    text: 'The station configuration is invalid.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The station configuration is invalid. A supervisor must fix it.',
  },
  CONFIG_INSECURE_PERMISSIONS: {
    text: 'A file or directory of the station is open to other users.',
    kind: 'user',
    action: 'call-supervisor',
    guidance:
      'The data directory (or a file in it, or a PIN file) can be read or changed by other users of this computer, belongs to another user, or the secret file is a symbolic link or not a regular file: it holds PIN hashes, HSM tokens and secrets. Run the chmod (or chown) the message names as the user that runs the service, or point to the file itself, then try again.',
  },
  CONFIG_NOT_FOUND: {
    text: 'The station is not initialised.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'The station is not initialised. Run station init.',
  },
  PROTOCOL_REQUEST_TOO_LARGE: {
    text: 'A request to the board exceeds the protocol frame size.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'A request to the board exceeds the protocol frame size. Call a supervisor.',
  },
  INPUT_INVALID: {
    text: 'An input is invalid.',
    kind: 'user',
    action: 'call-supervisor',
    guidance: 'An input file is invalid. See the message for the location of the problem.',
  },
  INTERNAL: {
    text: 'An internal error occurred.',
    kind: 'bug',
    action: 'call-supervisor',
    guidance: 'An internal error occurred. Call a supervisor; the station log has the details.',
  },
} as const satisfies Record<string, ErrorCatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface StationError {
  readonly code: ErrorCode;
  /** What happened, for people. Never contains PINs or key material. */
  readonly message: string;
  readonly kind: 'user' | 'bug';
  readonly action: OperatorAction;
  readonly guidance: string;
  /** Structured context (step, port, expected/actual values). JSON-serialisable, no secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
  /**
   * The values of the code's catalogue `params`, taken from `details` (strings and numbers only): what a UI needs to
   * say `text` in its own language. Absent when the code has no params or the producer gave none of them.
   */
  readonly params?: ErrorParams;
}

/** Longest param value (characters): longer strings are cut (core/api.ts ErrorParamsSchema). */
export const MAX_PARAM_LENGTH = 512;

/** The catalogue `params` of `code` picked from `details` (string and finite number values only). */
export function errorParams(
  code: ErrorCode,
  details: Readonly<Record<string, unknown>> | undefined,
): ErrorParams | null {
  const names: readonly string[] = (ERROR_CATALOGUE[code] as ErrorCatalogueEntry).params ?? [];
  if (!details || names.length === 0) return null;
  const out: Record<string, string | number> = {};
  for (const n of names) {
    const v = details[n];
    if (typeof v === 'string') out[n] = v.slice(0, MAX_PARAM_LENGTH);
    else if (typeof v === 'number' && Number.isFinite(v)) out[n] = v;
  }
  return Object.keys(out).length > 0 ? out : null;
}

export function stationError(code: ErrorCode, message: string, details?: Record<string, unknown>): StationError {
  const c = ERROR_CATALOGUE[code];
  const params = errorParams(code, details);
  return {
    code,
    message,
    kind: c.kind,
    action: c.action,
    guidance: c.guidance,
    ...(details ? { details } : {}),
    ...(params ? { params } : {}),
  };
}

/**
 * Shorthand for `err(stationError(...))`. The return type is result.ts's `Err<StationError>`, written out so that
 * errors.ts imports nothing of result.ts (result.ts imports StationError from here: no cycle).
 */
export function fail(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
): { readonly ok: false; readonly error: StationError } {
  return { ok: false, error: stationError(code, message, details) };
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, x);
}

/**
 * Failures that interrupt a run without failing it: the run stays active (its checkpoints, key and certificate kept)
 * and the next attempt on that board resumes it. They say nothing about the board, only that the conversation
 * stopped — the link went away (`LINK_DISCONNECTED`), the station cancelled (`FLOW_CANCELLED`), or the board did not
 * answer within the timeout after the client's retries (`PROTOCOL_TIMEOUT`: it may answer after a re-seat). Every
 * verification is repeated on resume (fresh nonce). An answer that arrives but is wrong (CRC, malformed, unexpected)
 * fails the run. ONE rule for the flow (core/provisioning/flow.ts `failRun`), the UI slots and `station watch`
 * (core/boards/lifecycle.ts).
 */
export const RESUMABLE_CODES = [
  'LINK_DISCONNECTED',
  'FLOW_CANCELLED',
  'PROTOCOL_TIMEOUT',
] as const satisfies readonly ErrorCode[];

/** The failure leaves the run active and resumable (RESUMABLE_CODES). */
export function isResumable(code: ErrorCode): boolean {
  return (RESUMABLE_CODES as readonly ErrorCode[]).includes(code);
}
