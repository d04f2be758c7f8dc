// A worker thread's first module when its entry is TypeScript (the sources, not dist/node): registers tsx in this
// thread, then imports the entry named by the last argument (native/worker-entry.ts). The bins' tsx register() does
// not reach worker threads, nor does `--import tsx` in a worker's execArgv on Node 20.
import { register } from 'tsx/esm/api';

register();
await import(process.argv[process.argv.length - 1]);
