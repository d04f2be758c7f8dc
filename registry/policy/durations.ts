/**
 * The bounds of the policy's durations (certificate lifetime, rotate-before window): a module of constants, so that
 * the `registry policy` command's declaration (./commands.ts) reads them without loading the policy service.
 * Imports nothing.
 */

/** Shortest certificate lifetime / rotate-before window a policy may set (1 hour). */
export const MIN_POLICY_DURATION_S = 3600;
/** Longest certificate lifetime / rotate-before window a policy may set (100 years of 365 days). */
export const MAX_POLICY_DURATION_S = 100 * 365 * 86_400;
