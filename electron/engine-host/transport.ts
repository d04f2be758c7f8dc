/**
 * How the engine host talks to main: Electron's `process.parentPort` (utilityProcess) or Node's
 * `process.send` (child_process.fork, used by the tests).
 */
import type { HostMessage } from '../shared/ipc.js';

/** The two ways main can talk to this process. */
export interface HostTransport {
  readonly kind: 'electron' | 'node';
  send(msg: HostMessage): void;
  onMessage(cb: (msg: unknown) => void): void;
  onParentGone(cb: () => void): void;
}

type ElectronParentPort = {
  postMessage(m: unknown): void;
  on(ev: 'message', cb: (e: { data: unknown }) => void): void;
};

/** Pick the transport this process was started with, or null when it has no parent channel. */
export function detectTransport(p: NodeJS.Process = process): HostTransport | null {
  const port = (p as unknown as { parentPort?: ElectronParentPort }).parentPort;
  if (port) {
    return {
      kind: 'electron',
      send: (m) => port.postMessage(m),
      onMessage: (cb) => port.on('message', (e) => cb(e.data)),
      onParentGone: () => {
        /* Electron ends a utility process with its parent */
      },
    };
  }
  const send = p.send?.bind(p);
  if (send) {
    return {
      kind: 'node',
      send: (m) => void send(m),
      onMessage: (cb) => p.on('message', cb),
      onParentGone: (cb) => p.on('disconnect', cb),
    };
  }
  return null;
}
