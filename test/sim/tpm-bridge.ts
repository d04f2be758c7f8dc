/**
 * Test support: tpm2-tools through a board's TPM relay. A loopback TCP server hands every raw TPM command it reads to
 * a `TpmTransmit` (e.g. the station's `BoardClient.tpmTransmit`, over the LS protocol and the board's pty) and writes
 * the response back; tpm2-tools reach it with the `cmd` TCTI (`cmd:socat - TCP:127.0.0.1:P`, libtss2-tcti-cmd). So
 * an independent TPM stack drives the TPM through the same path the station uses, relay faults included.
 */
import { execFile } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { promisify } from 'node:util';
import type { TpmTransmit } from '../../core/tpm/transport.js';

const run = promisify(execFile);

export interface TpmBridge {
  /** TPM2TOOLS_TCTI value for tpm2-tools. */
  readonly tcti: string;
  /** Run one tpm2-tools command through the bridge; rejects with its stderr on a non-zero exit. */
  tools(tool: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }>;
  close(): Promise<void>;
}

/** Serve `transmit` on a loopback port for the tpm2-tools `cmd` TCTI. */
export async function tpmBridge(transmit: TpmTransmit): Promise<TpmBridge> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buf = Buffer.alloc(0);
    let busy: Promise<void> = Promise.resolve();
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 10 && buf.length >= buf.readUInt32BE(2)) {
        const size = buf.readUInt32BE(2);
        if (size < 10) return void socket.destroy();
        const command = new Uint8Array(buf.subarray(0, size));
        buf = buf.subarray(size);
        busy = busy.then(async () => {
          const r = await transmit(command);
          if (r.ok) socket.write(r.value);
          else socket.destroy(); // the TCTI reports an I/O error
        });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const tcti = `cmd:socat - TCP:127.0.0.1:${port}`;
  return {
    tcti,
    async tools(tool, args) {
      if (!/^tpm2_[a-z_]+$/.test(tool)) throw new Error(`not a tpm2-tools command: ${tool}`);
      try {
        const r = await run(tool, [...args], { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: 60_000 });
        return { stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const x = e as Error & { stderr?: string };
        throw new Error(`${tool} ${args.join(' ')} failed: ${x.stderr ?? x.message}`);
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
