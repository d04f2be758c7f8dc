/** PKCS#11 HSM adapter: public surface. */
export { openHsm, findTokenSlot, tokenDisplayName, type HsmAdmin, type HsmConfig } from './pkcs11-hsm.js';
export { loadedModuleCount } from './module-registry.js';
export { mapPkcs11Error, codeForCkr, ckrOf } from './errors.js';
export { inspectToken, type InspectTokenOptions } from './inspect.js';
export {
  loadTokenProfiles,
  shippedTokenProfiles,
  tokenProfileById,
  tokenProfileFor,
  findProfileModule,
  resolveTokenConfig,
  type TokenConfig,
  DEFAULT_TOKEN_PROFILE_DIR,
} from './token-profiles.js';
