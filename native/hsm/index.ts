/** PKCS#11 HSM adapter: public surface. */
export { openHsm, loadedModuleCount, type HsmAdmin, type HsmConfig } from './pkcs11-hsm.js';
export { mapPkcs11Error, codeForCkr, ckrOf } from './errors.js';
