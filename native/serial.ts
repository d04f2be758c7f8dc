/**
 * Serial-port adapter: a ByteLink over serialport's SerialPort (USB CDC-ACM, UART bridges, pty pairs).
 * Bytes are passed through unchanged; framing is core/protocol's job.
 */
import { readSync, writeSync } from 'node:fs';
import { SerialPort } from 'serialport';
import type { ByteLink, ByteLinkOpener, DetectedPort, Logger, UsbDescriptor } from '../core/ports.js';
import { fail } from '../core/errors.js';
import { ok, type Result } from '../core/result.js';

export const DEFAULT_BAUD_RATE = 115_200;

export interface SerialOpenerOptions {
  baudRate?: number;
  logger?: Logger;
}

const silent: Logger = { log: () => undefined, child: () => silent };

function isAccessDenied(e: Error): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' || /EACCES|EPERM|permission denied|access denied/i.test(e.message);
}

class SerialLink implements ByteLink {
  private readonly dataCbs = new Set<(chunk: Uint8Array) => void>();
  private readonly closeCbs = new Set<(error?: Error) => void>();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly port: SerialPort,
    private readonly log: Logger,
  ) {
    port.on('data', (buf: Buffer) => {
      const chunk = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      for (const cb of [...this.dataCbs]) cb(chunk);
    });
    port.on('close', (e?: Error | null) => this.finish(e ?? undefined));
    port.on('error', (e: Error) => {
      // serialport emits 'error' for failures outside a callback; the port is unusable afterwards.
      this.log.log('warn', 'serial port error', { error: e.message });
      if (!port.isOpen) this.finish(e);
    });
  }

  private finish(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.log.log(error ? 'warn' : 'info', 'serial port closed', error ? { error: error.message } : undefined);
    const cbs = [...this.closeCbs];
    this.closeCbs.clear();
    this.dataCbs.clear();
    for (const cb of cbs) cb(error);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.closed || !this.port.isOpen) return Promise.reject(new Error(`${this.path} is closed`));
    return new Promise((resolve, reject) => {
      this.port.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength), (e) => {
        if (e) reject(e);
        else resolve();
      });
    });
  }

  onData(cb: (chunk: Uint8Array) => void): () => void {
    this.dataCbs.add(cb);
    return () => this.dataCbs.delete(cb);
  }

  onClose(cb: (error?: Error) => void): () => void {
    if (this.closed) {
      queueMicrotask(() => cb());
      return () => undefined;
    }
    this.closeCbs.add(cb);
    return () => this.closeCbs.delete(cb);
  }

  close(): Promise<void> {
    if (this.closed || !this.port.isOpen) {
      this.finish();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.port.close((e) => {
        if (e) this.log.log('debug', 'error while closing serial port', { error: e.message });
        this.finish();
        resolve();
      });
    });
  }
}

type Binding = typeof SerialPort.binding;
type PortBinding = Awaited<ReturnType<Binding['open']>>;

/** The unix internals of a bindings-cpp port binding that the direct read/write needs. */
interface UnixPortInternals {
  fd: number | null;
  isOpen: boolean;
  writeOperation: Promise<void> | null;
  poller?: { once(event: 'readable' | 'writable', cb: (err?: Error | null) => void): unknown };
}

const RETRY_CODES: ReadonlySet<string | undefined> = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR']);
/** Error codes bindings-cpp treats as a vanished device (it sets `disconnect`, and the stream emits 'close'). */
const DISCONNECT_CODES: ReadonlySet<string | undefined> = new Set(['EBADF', 'ENXIO', 'EIO', 'UNKNOWN']);

/**
 * Replaces the unix binding's read and write (bindings-cpp dispatches each `fs.read`/`fs.write` to the libuv
 * thread pool and, when nothing is buffered, pays a second round trip for the EAGAIN before polling).
 *
 * The fd is opened O_NONBLOCK, so a direct `readSync`/`writeSync` never blocks: a read waits for the poller's
 * 'readable' first (unless the previous read filled the buffer) and then takes what is there in one system call;
 * a write goes straight into the tty buffer and waits for 'writable' only on EAGAIN. Measured on a socat pty
 * pair: about half the CPU per request/response round trip, and no queueing behind WebCrypto or PKCS#11 jobs in the
 * thread pool (scripts/bench.ts, docs/benchmarks.md).
 *
 * Hang-up: serialport's unix read retries forever when read() returns 0 bytes, which is what a tty returns after
 * a hang-up (USB unplug, pty master closed): a busy loop and no 'close' event. This read treats EOF as a
 * disconnect, so the stream emits 'close' with an error and the ByteLink's onClose fires.
 */
function directUnixIo(port: PortBinding): void {
  const p = port as unknown as UnixPortInternals;
  if (process.platform === 'win32' || typeof p.fd !== 'number' || !p.poller) return;
  // After a hang-up or once closing starts, never touch the fd or the (possibly destroyed) poller again.
  let finished = false;
  // Whether the last read filled its buffer (more may be waiting): then read before polling.
  let mayHaveMore = true;
  const canceled = () => Object.assign(new Error('Port is not open'), { canceled: true });
  const wait = (event: 'readable' | 'writable') => {
    const poller = p.poller;
    if (!poller) return Promise.reject(canceled());
    return new Promise<void>((resolve, reject) => {
      poller.once(event, (err) => (err ? reject(err) : resolve()));
    });
  };
  const failed = (e: unknown): Error => {
    const error = e as NodeJS.ErrnoException & { disconnect?: boolean; canceled?: boolean };
    if (DISCONNECT_CODES.has(error.code)) error.disconnect = true;
    if (!error.canceled) finished = true;
    return error;
  };
  const close = port.close.bind(port);
  port.close = () => {
    finished = true;
    return close();
  };
  port.read = async (buffer: Buffer, offset: number, length: number) => {
    for (;;) {
      if (finished || !p.isOpen || p.fd === null) throw canceled();
      if (!mayHaveMore) {
        await wait('readable').catch((e: unknown) => {
          throw failed(e);
        });
        mayHaveMore = true;
        continue;
      }
      let bytesRead: number;
      try {
        bytesRead = readSync(p.fd, buffer, offset, length, null);
      } catch (e) {
        if (RETRY_CODES.has((e as NodeJS.ErrnoException).code)) {
          mayHaveMore = false;
          continue;
        }
        throw failed(e);
      }
      if (bytesRead === 0) {
        finished = true;
        throw Object.assign(new Error('serial line hung up (end of file)'), { disconnect: true, code: 'EOF' });
      }
      mayHaveMore = bytesRead === length;
      return { bytesRead, buffer };
    }
  };
  const writeAll = async (buffer: Buffer): Promise<void> => {
    let offset = 0;
    while (offset < buffer.length) {
      if (finished || !p.isOpen || p.fd === null) throw new Error('Port is not open');
      try {
        offset += writeSync(p.fd, buffer, offset, buffer.length - offset);
      } catch (e) {
        if (!RETRY_CODES.has((e as NodeJS.ErrnoException).code)) throw failed(e);
        await wait('writable').catch((e2: unknown) => {
          throw failed(e2);
        });
      }
    }
  };
  port.write = (buffer: Buffer) => {
    if (finished || !p.isOpen || p.fd === null) return Promise.reject(new Error('Port is not open'));
    // bindings-cpp's drain() awaits writeOperation before tcdrain.
    const op = writeAll(buffer).finally(() => {
      if (p.writeOperation === op) p.writeOperation = null;
    });
    p.writeOperation = op;
    return op;
  };
}

const hangupAwareBinding: Binding = {
  ...SerialPort.binding,
  list: () => SerialPort.binding.list(),
  async open(options: Parameters<Binding['open']>[0]) {
    const open = SerialPort.binding.open.bind(SerialPort.binding) as (
      o: Parameters<Binding['open']>[0],
    ) => Promise<PortBinding>;
    const port = await open(options);
    directUnixIo(port);
    return port;
  },
} as Binding;

/** A ByteLinkOpener for serial ports (serialport 13): LINK_ACCESS_DENIED on EACCES, LINK_OPEN_FAILED otherwise. */
export function serialOpener(opts: SerialOpenerOptions = {}): ByteLinkOpener {
  const baudRate = opts.baudRate ?? DEFAULT_BAUD_RATE;
  const base = opts.logger ?? silent;
  return {
    open(path: string): Promise<Result<ByteLink>> {
      const log = base.child(`[serial ${path}]`);
      return new Promise((resolve) => {
        let port: SerialPort;
        try {
          const options = {
            path,
            baudRate,
            autoOpen: false,
            dataBits: 8,
            stopBits: 1,
            parity: 'none',
            binding: hangupAwareBinding,
          };
          port = new SerialPort(options as ConstructorParameters<typeof SerialPort>[0]);
        } catch (e) {
          resolve(
            fail('LINK_OPEN_FAILED', `cannot open ${path}: ${e instanceof Error ? e.message : String(e)}`, { path }),
          );
          return;
        }
        port.open((e) => {
          if (e) {
            log.log('warn', 'open failed', { error: e.message });
            resolve(
              isAccessDenied(e)
                ? fail('LINK_ACCESS_DENIED', `no permission to open ${path}: ${e.message}`, { path })
                : fail('LINK_OPEN_FAILED', `cannot open ${path}: ${e.message}`, { path }),
            );
            return;
          }
          log.log('debug', 'opened', { baudRate });
          resolve(ok(new SerialLink(path, port, log)));
        });
      });
    },
  };
}

function hexId(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = s.trim().replace(/^0x/i, '');
  return /^[0-9a-fA-F]{1,4}$/.test(t) ? parseInt(t, 16) : undefined;
}

/** Shape of serialport's PortInfo that we read. */
export interface SerialPortInfo {
  path: string;
  manufacturer?: string | undefined;
  serialNumber?: string | undefined;
  vendorId?: string | undefined;
  productId?: string | undefined;
}

/** Map serialport's PortInfo (hex-string VID/PID) to a DetectedPort with numeric USB ids. */
export function toDetectedPort(p: SerialPortInfo): DetectedPort {
  const vendorId = hexId(p.vendorId);
  const productId = hexId(p.productId);
  if (vendorId === undefined || productId === undefined) return { path: p.path, source: 'serial' };
  const usb: UsbDescriptor = {
    vendorId,
    productId,
    ...(p.serialNumber ? { serialNumber: p.serialNumber } : {}),
    ...(p.manufacturer ? { manufacturer: p.manufacturer } : {}),
  };
  return { path: p.path, source: 'serial', usb };
}
