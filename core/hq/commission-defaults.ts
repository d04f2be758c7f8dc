/**
 * The commissioning defaults headquarters applies unless its configuration says otherwise (re-exported by
 * core/hq/commission.ts). Their own module so that the registry's configuration (registry/cli/open.ts), which every
 * registry command reads, does not load the commissioning schemas, the protocol and the X.509 stack (issue 12, cold
 * start). No imports.
 */

/** The organisation (O) of station CAs and station certificates unless headquarters configures another. */
export const DEFAULT_ORGANIZATION = 'Line Station';

/**
 * The EKUs a station CA certificate carries unless headquarters configures others: what the bundled device
 * profiles use (clientAuth, resources/boards) and the delegated revocation signer (OCSPSigning, docs/lifecycle.md).
 */
export const DEFAULT_STATION_CA_EKU: readonly string[] = ['clientAuth', 'OCSPSigning'];
