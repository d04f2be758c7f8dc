/**
 * An in-memory ByteLink pair: what one end writes, the other end receives (asynchronously, like a real port).
 * For tests and the simulator; pure (no native modules).
 */
import type { ByteLink } from '../core/ports.js';

export interface MemoryLinkOptions {
  /** Deliver writes in pieces of at most this many bytes (default: whole writes). */
  readonly chunkSize?: number;
}

export interface MemoryLink extends ByteLink {
  /** Close this end as if the cable were pulled (both ends see onClose with an error). */
  sever(reason?: string): void;
  readonly closed: boolean;
}

const defer: (f: () => void) => void =
  typeof setImmediate === 'function' ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/** Create two connected in-memory ByteLinks. Closing either end closes both. */
export function memoryLinkPair(
  pathA = 'mem:a',
  pathB = 'mem:b',
  opts: MemoryLinkOptions = {},
): [MemoryLink, MemoryLink] {
  type End = {
    path: string;
    data: Set<(c: Uint8Array) => void>;
    close: Set<(e?: Error) => void>;
    closed: boolean;
    peer?: End;
  };
  const mk = (path: string): End => ({ path, data: new Set(), close: new Set(), closed: false });
  const a = mk(pathA);
  const b = mk(pathB);
  a.peer = b;
  b.peer = a;

  const shut = (e: End, error?: Error) => {
    if (e.closed) return;
    e.closed = true;
    const cbs = [...e.close];
    e.close.clear();
    e.data.clear();
    defer(() => {
      for (const cb of cbs) cb(error);
    });
  };

  const wrap = (self: End): MemoryLink => ({
    path: self.path,
    get closed() {
      return self.closed;
    },
    write(data: Uint8Array): Promise<void> {
      if (self.closed) return Promise.reject(new Error(`${self.path} is closed`));
      const peer = self.peer!;
      const copy = data.slice();
      const size = opts.chunkSize && opts.chunkSize > 0 ? opts.chunkSize : copy.length || 1;
      return new Promise((resolve) => {
        defer(() => {
          for (let o = 0; o < copy.length; o += size) {
            const piece = copy.subarray(o, o + size);
            for (const cb of [...peer.data]) cb(piece);
          }
          resolve();
        });
      });
    },
    onData(cb) {
      self.data.add(cb);
      return () => self.data.delete(cb);
    },
    onClose(cb) {
      self.close.add(cb);
      return () => self.close.delete(cb);
    },
    close(): Promise<void> {
      shut(self);
      shut(self.peer!);
      return Promise.resolve();
    },
    sever(reason = 'link severed'): void {
      shut(self, new Error(reason));
      shut(self.peer!, new Error(reason));
    },
  });
  return [wrap(a), wrap(b)];
}
