/**
 * A fault-injecting TCP proxy on loopback for exactly-once tests. Each accepted connection gets one fault,
 * drawn from a seeded PRNG with the given weights:
 *  - `none`            forward both ways;
 *  - `reset-request`   forward part of the request, then reset both sides (the request never completes);
 *  - `reset-response`  forward the whole request, let the upstream answer, then reset the client after part
 *                      of the response (the server did the work, the client does not know);
 *  - `delay`           hold the request for a while before forwarding;
 *  - `duplicate`       forward the request normally AND send a copy of its bytes on a second upstream
 *                      connection whose answer is discarded (a duplicated request).
 * When the upstream is down (a restart), the client connection is reset.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type Fault = 'none' | 'reset-request' | 'reset-response' | 'delay' | 'duplicate';

export interface FaultProxyOptions {
  readonly upstreamPort: number;
  readonly upstreamHost?: string;
  readonly weights?: Partial<Record<Fault, number>>;
  readonly seed?: number;
  readonly maxDelayMs?: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Faults injected so far. */
  readonly stats: Record<Fault, number>;
  close(): Promise<void>;
}

/** Mulberry32: a small seeded PRNG (reproducible fault sequences). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Start the proxy on 127.0.0.1 (ephemeral port). */
export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const rand = prng(o.seed ?? 1);
  const weights: Record<Fault, number> = {
    none: 1,
    'reset-request': 0,
    'reset-response': 0,
    delay: 0,
    duplicate: 0,
    ...o.weights,
  };
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  const stats: Record<Fault, number> = { none: 0, 'reset-request': 0, 'reset-response': 0, delay: 0, duplicate: 0 };
  const host = o.upstreamHost ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    return s;
  };
  const pick = (): Fault => {
    let x = rand() * total;
    for (const [f, w] of Object.entries(weights) as Array<[Fault, number]>) {
      if (x < w) return f;
      x -= w;
    }
    return 'none';
  };

  const server: Server = createServer((client) => {
    track(client);
    const fault = pick();
    stats[fault]++;
    const upstream = track(createConnection({ host, port: o.upstreamPort }));
    const kill = () => {
      client.resetAndDestroy();
      upstream.destroy();
    };
    upstream.on('error', kill);
    upstream.on('close', () => client.end());
    client.on('close', () => upstream.destroy());
    let sentToUpstream = 0;
    const cutRequestAt = 64 + Math.floor(rand() * 4096);
    const delayMs = Math.floor(rand() * (o.maxDelayMs ?? 200));
    const copy: Buffer[] = [];
    let dupSent = false;
    const forward = (chunk: Buffer) => {
      if (fault === 'reset-request' && sentToUpstream + chunk.length >= cutRequestAt) {
        upstream.write(chunk.subarray(0, Math.max(0, cutRequestAt - sentToUpstream)));
        kill();
        return;
      }
      sentToUpstream += chunk.length;
      upstream.write(chunk);
      if (fault === 'duplicate') copy.push(chunk);
    };
    client.on('data', (chunk: Buffer) => {
      if (fault === 'delay') setTimeout(() => !client.destroyed && forward(chunk), delayMs);
      else forward(chunk);
    });
    let received = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (fault === 'duplicate' && !dupSent) {
        // The request is complete once the upstream answers: replay its bytes on a second connection.
        dupSent = true;
        const dup = track(createConnection({ host, port: o.upstreamPort }));
        dup.on('connect', () => dup.end(Buffer.concat(copy)));
        dup.on('data', () => undefined);
      }
      if (fault === 'reset-response') {
        received += chunk.length;
        if (received > 40) {
          client.write(chunk.subarray(0, 20));
          kill();
          return;
        }
      }
      client.write(chunk);
    });
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
