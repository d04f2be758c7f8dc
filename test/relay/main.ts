/**
 * A "fixture MITM" (test support, never production): a process that sits on the board line between two socat pty
 * pairs, station <-> relay <-> board, relays every byte of the genuine board and, by mode, substitutes answers:
 *
 *   pass           relay everything unchanged (the control: the relay alone is transparent)
 *   transport-key  answer injectBegin with the relay's own ECDH transport key; if the station ever sends
 *                  injectKey, unwrap the device private key with it (reported as "stolen-device-key")
 *   keygen-p256    answer keygen with the relay's own P-256 key and a valid CSR for it
 *   keygen-p384    the same with a P-384 key
 *   replay-attest  answer every attest after the first with the first attest answer it saw (an old nonce)
 *
 * Usage: node --import tsx test/relay/main.ts --board-link PATH --dir DIR --mode MODE
 * The station opens `<DIR>/board-0`. stdout: one JSON event per line, the first `{"event":"ready","port":...}`;
 * then `request` / `response` events (op, requestId, payload fields, substituted) for the test to assert on.
 * SIGTERM stops it (its socat dies with it).
 */
import 'reflect-metadata';
import { createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { encodeFrame, FrameDecoder, type FrameHeader } from '../../core/protocol/framing.js';
import { decodePayload, encodePayload, opForCode } from '../../core/protocol/messages.js';
import type { ByteLink } from '../../core/ports.js';
import { serialOpener } from '../../native/serial.js';
import { makeCsr } from '../sim/board.js';
import { PtyCable } from '../sim/pty.js';

const MODES = ['pass', 'transport-key', 'keygen-p256', 'keygen-p384', 'replay-attest'] as const;
type Mode = (typeof MODES)[number];

const emit = (e: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) {
    process.stderr.write(`relay: --${name} is required\n`);
    process.exit(2);
  }
  return v;
}

const spki = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ type: 'spki', format: 'der' }));
const KW_PAD_IV = Buffer.from('a65959a6', 'hex');

/** Rewrites board answers by mode; remembers what it needs across requests. */
class Substitutor {
  private transportKey: KeyObject | null = null;
  private keygenSubject = 'relay';
  private firstAttest: Uint8Array | null = null;

  constructor(private readonly mode: Mode) {}

  /** Look at a station request (the relay reads everything the station sends). */
  request(op: string, body: Record<string, unknown>): void {
    if (op === 'keygen' && typeof body['subject'] === 'string') this.keygenSubject = body['subject'];
    if (op === 'injectKey' && this.transportKey) {
      // The attack's payoff in the old design: unwrap the device key the station wrapped for our transport key.
      try {
        const peer = createPublicKey({
          key: Buffer.from(body['ephemeralKey'] as Uint8Array),
          format: 'der',
          type: 'spki',
        });
        const kek = diffieHellman({ privateKey: this.transportKey, publicKey: peer });
        const d = createDecipheriv('id-aes256-wrap-pad', kek, KW_PAD_IV);
        const pkcs8 = Buffer.concat([d.update(body['wrappedKey'] as Uint8Array), d.final()]);
        createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
        emit({ event: 'stolen-device-key' });
      } catch (e) {
        emit({ event: 'unwrap-failed', message: (e as Error).message });
      }
    }
  }

  /** The payload to send to the station instead of the board's, or null to relay it unchanged. */
  async response(op: string, body: Record<string, unknown>, payload: Uint8Array): Promise<Uint8Array | null> {
    if ('error' in body) return null;
    switch (this.mode) {
      case 'transport-key':
        if (op !== 'injectBegin') return null;
        this.transportKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
        return encodePayload({ transportKey: spki(createPublicKey(this.transportKey)) });
      case 'keygen-p256':
      case 'keygen-p384': {
        if (op !== 'keygen') return null;
        const curve = this.mode === 'keygen-p256' ? 'P-256' : 'P-384';
        const k = generateKeyPairSync('ec', { namedCurve: curve === 'P-256' ? 'prime256v1' : 'secp384r1' });
        return encodePayload({
          publicKey: spki(k.publicKey),
          csr: await makeCsr(k.privateKey, curve, this.keygenSubject),
        });
      }
      case 'replay-attest':
        if (op !== 'attest') return null;
        if (!this.firstAttest) {
          this.firstAttest = payload;
          return null;
        }
        return this.firstAttest;
      case 'pass':
        return null;
    }
  }
}

async function main(): Promise<void> {
  const mode = arg('mode') as Mode;
  if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode}`);
  const sub = new Substitutor(mode);
  const opened = await serialOpener().open(arg('board-link'));
  if (!opened.ok) throw new Error(`board link: ${opened.error.message}`);
  const board: ByteLink = opened.value;
  const cable = new PtyCable(arg('dir'), 0);
  const fromStation = new FrameDecoder();
  const fromBoard = new FrameDecoder();
  // Board answers are handled one after another (a substitution may take a moment), in order.
  let toStation: Promise<void> = Promise.resolve();

  const onStation = (chunk: Uint8Array): void => {
    // Requests go to the board byte for byte; the relay only reads them.
    void board.write(chunk);
    for (const f of fromStation.push(chunk)) {
      if (!f.ok || f.header.kind !== 'request') continue;
      const op = opForCode(f.header.opcode) ?? `0x${f.header.opcode.toString(16)}`;
      const body = decodePayload(f.payload);
      const fields = body.ok ? Object.keys(body.value).sort() : [];
      emit({ event: 'request', op, requestId: f.header.requestId, fields });
      if (body.ok) sub.request(op, body.value);
    }
  };
  const forward = async (header: FrameHeader, payload: Uint8Array): Promise<void> => {
    const op = opForCode(header.opcode) ?? `0x${header.opcode.toString(16)}`;
    const body = decodePayload(payload);
    const replaced = body.ok ? await sub.response(op, body.value, payload) : null;
    const frame = encodeFrame(header, replaced ?? payload);
    const wire = new Uint8Array(frame.length + 1);
    wire.set(frame, 1);
    await cable.write(wire);
    emit({ event: 'response', op, requestId: header.requestId, substituted: replaced !== null });
  };
  board.onData((chunk) => {
    for (const f of fromBoard.push(chunk)) {
      if (!f.ok) continue;
      toStation = toStation
        .then(() => forward(f.header, f.payload))
        .catch((e: unknown) => {
          emit({ event: 'error', message: (e as Error).message });
        });
    }
  });
  board.onClose(() => emit({ event: 'board-link-closed' }));
  await cable.plug({ onData: onStation, onClose: () => emit({ event: 'station-link-closed' }) });
  emit({ event: 'ready', port: cable.stationPath, mode });

  const stop = (): void => {
    void cable
      .unplug()
      .then(() => board.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`relay: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
