/** PKCS#11 HSM adapter: public surface. */
export {
  openHsm,
  loadedModuleCount,
  type ExportedWrappedKey,
  type HsmAdmin,
  type HsmConfig,
  type SigningKeyOptions,
} from './pkcs11-hsm.js';
export { mapPkcs11Error, codeForCkr, ckrOf } from './errors.js';
export { measureSignRate } from './bench.js';
