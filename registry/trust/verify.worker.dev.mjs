// Development entry of the record verification worker (registry/trust/pool.ts): registers tsx in this worker
// thread, then loads the TypeScript worker. Compiled builds start verify.worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./verify.worker.ts');
