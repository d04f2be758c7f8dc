/**
 * The registry URL policy (station/hq/transport.ts `checkRegistryUrl`, docs/sync.md "Transport"): plain http only to a
 * loopback IP literal; https only with a pinned TLS certificate; nothing else.
 */
import { describe, expect, it } from 'vitest';
import { checkRegistryUrl } from './hq/transport.js';

const PIN = new Uint8Array([0x30, 0x00]);
const codeOf = (url: string, pin: Uint8Array | null) => {
  const r = checkRegistryUrl(url, pin);
  return r.ok ? 'ok' : r.error.code;
};

describe('checkRegistryUrl', () => {
  it.each([
    ['http://127.0.0.1:8080', null, 'ok'],
    ['http://127.8.9.10', null, 'ok'],
    ['http://[::1]:9000/', null, 'ok'],
    ['http://localhost:8080', null, 'SYNC_INSECURE_URL'],
    ['http://192.0.2.10:8443', null, 'SYNC_INSECURE_URL'],
    ['http://192.0.2.10:8443', PIN, 'SYNC_INSECURE_URL'],
    ['http://127.0.0.1.example.com', null, 'SYNC_INSECURE_URL'],
    ['http://[::ffff:127.0.0.1]', null, 'SYNC_INSECURE_URL'],
    ['https://hq.example:8443', null, 'SYNC_INSECURE_URL'],
    ['https://hq.example:8443', PIN, 'ok'],
    ['https://user:secret@hq.example', PIN, 'SYNC_INSECURE_URL'],
    ['ftp://hq.example', PIN, 'SYNC_INSECURE_URL'],
    ['not a url', PIN, 'SYNC_INSECURE_URL'],
  ] as const)('%s (pin: %s) -> %s', (url, pin, want) => {
    expect(codeOf(url, pin)).toBe(want);
  });
});
