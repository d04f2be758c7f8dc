/** Test support: a worker thread entry that answers each message with `{ echo, typed }` (native/worker-entry.test.ts). */
import { parentPort } from 'node:worker_threads';

const typed: string = 'typescript syntax: compiled or run through tsx';
parentPort?.on('message', (m: unknown) => parentPort?.postMessage({ echo: m, typed }));
