/**
 * Serial-port adapter: a ByteLink over serialport's SerialPort (USB CDC-ACM, UART bridges, pty pairs).
 * Bytes are passed through unchanged; framing is core/protocol's job.
 */
import { read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
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

const readAsync = promisify(fsRead);

type Binding = typeof SerialPort.binding;
type PortBinding = Awaited<ReturnType<Binding['open']>>;

/** The unix internals of a bindings-cpp port binding that the hang-up aware read needs. */
interface UnixPortInternals {
  fd: number | null;
  isOpen: boolean;
  poller?: { once(event: 'readable', cb: (err?: Error | null) => void): unknown };
}

/**
 * serialport's unix read retries forever when read() returns 0 bytes, which is what a tty returns after a
 * hang-up (USB unplug, pty master closed): a busy loop and no 'close' event. This read treats EOF as a
 * disconnect, so the stream emits 'close' with an error and the ByteLink's onClose fires.
 */
function hangupAwareRead(port: PortBinding): void {
  const p = port as unknown as UnixPortInternals;
  if (process.platform === 'win32' || typeof p.fd !== 'number' || !p.poller) return;
  // After a hang-up or once closing starts, never touch the fd or the (possibly destroyed) poller again.
  let finished = false;
  const canceled = () => Object.assign(new Error('Port is not open'), { canceled: true });
  const close = port.close.bind(port);
  port.close = () => {
    finished = true;
    return close();
  };
  port.read = async (buffer: Buffer, offset: number, length: number) => {
    for (;;) {
      if (finished || !p.isOpen || p.fd === null || !p.poller) throw canceled();
      const poller = p.poller;
      try {
        const { bytesRead } = await readAsync(p.fd, buffer, offset, length, null);
        if (bytesRead === 0) {
          if (finished) throw canceled();
          finished = true;
          throw Object.assign(new Error('serial line hung up (end of file)'), { disconnect: true, code: 'EOF' });
        }
        return { bytesRead, buffer };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') {
          if (finished) throw canceled();
          await new Promise<void>((resolve, reject) => {
            poller.once('readable', (err) => (err ? reject(err) : resolve()));
          });
          continue;
        }
        if (!(e as { canceled?: boolean }).canceled) finished = true;
        throw e;
      }
    }
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
    hangupAwareRead(port);
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
