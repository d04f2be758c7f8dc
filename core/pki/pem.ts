/** PEM (RFC 7468, strict form) encoding and parsing, and certificate fingerprints. Pure. */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { sha256Hex } from '../bytes.js';

const MAX_PEM_CHARS = 1 << 20;
const LABEL_RE = /^[A-Z0-9](?:[A-Z0-9 -]*[A-Z0-9])?$/;

/** DER -> PEM with 64-character lines and a trailing newline, e.g. `toPem(der, 'CERTIFICATE')`. */
export function toPem(der: Uint8Array, label: string): string {
  if (!LABEL_RE.test(label)) throw new Error(`toPem: invalid label ${JSON.stringify(label)}`);
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}${lines.length ? '\n' : ''}-----END ${label}-----\n`;
}

/**
 * Parse every PEM block of a bundle (RFC 7468 strict: matching BEGIN/END labels, standard base64
 * that re-encodes identically, only whitespace between blocks). With `expectedLabel`, every block
 * must carry it. INPUT_INVALID on any deviation or when there is no block.
 */
export function fromPemAll(pem: string, expectedLabel?: string): Result<Array<{ label: string; der: Uint8Array }>> {
  if (typeof pem !== 'string') return fail('INPUT_INVALID', 'PEM: expected a string');
  if (pem.length > MAX_PEM_CHARS) return fail('INPUT_INVALID', `PEM: larger than ${MAX_PEM_CHARS} characters`);
  const lines = pem.replace(/\r\n/g, '\n').split('\n');
  const blocks: Array<{ label: string; der: Uint8Array }> = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!.trim();
    i++;
    if (line === '') continue;
    const begin = /^-----BEGIN (.+)-----$/.exec(line);
    if (!begin)
      return fail('INPUT_INVALID', `PEM line ${i}: expected "-----BEGIN <label>-----", got text outside a block`);
    const label = begin[1]!;
    if (!LABEL_RE.test(label)) return fail('INPUT_INVALID', `PEM line ${i}: invalid label`);
    if (expectedLabel !== undefined && label !== expectedLabel)
      return fail('INPUT_INVALID', `PEM line ${i}: expected label ${expectedLabel}, got ${label}`);
    let body = '';
    let closed = false;
    while (i < lines.length) {
      const l = lines[i]!.trim();
      i++;
      if (l.startsWith('-----')) {
        if (l !== `-----END ${label}-----`)
          return fail('INPUT_INVALID', `PEM line ${i}: expected "-----END ${label}-----"`);
        closed = true;
        break;
      }
      if (!/^[A-Za-z0-9+/=]*$/.test(l)) return fail('INPUT_INVALID', `PEM line ${i}: invalid base64 characters`);
      body += l;
    }
    if (!closed) return fail('INPUT_INVALID', `PEM: block ${label} is not terminated`);
    if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(body))
      return fail('INPUT_INVALID', `PEM: block ${label} has malformed base64`);
    const der = new Uint8Array(Buffer.from(body, 'base64'));
    if (Buffer.from(der).toString('base64') !== body)
      return fail('INPUT_INVALID', `PEM: block ${label} has non-canonical base64`);
    blocks.push({ label, der });
  }
  if (blocks.length === 0) return fail('INPUT_INVALID', 'PEM: no PEM block found');
  return ok(blocks);
}

/** Parse exactly one PEM block (see fromPemAll); INPUT_INVALID if there are zero or several. */
export function fromPem(pem: string, expectedLabel?: string): Result<Uint8Array> {
  const r = fromPemAll(pem, expectedLabel);
  if (!r.ok) return r;
  if (r.value.length !== 1) return fail('INPUT_INVALID', `PEM: expected one block, found ${r.value.length}`);
  return ok(r.value[0]!.der);
}

/** SHA-256 (lower-case hex) of a certificate's DER encoding: the fingerprint used everywhere. */
export function certificateSha256(der: Uint8Array): Promise<string> {
  return sha256Hex(der);
}

/** Parse a bundle of CERTIFICATE blocks (e.g. a CA chain file) to DER, in file order. INPUT_INVALID on any problem. */
export function fromPemChain(pem: string): Result<Uint8Array[]> {
  const r = fromPemAll(pem, 'CERTIFICATE');
  return r.ok ? ok(r.value.map((b) => b.der)) : r;
}
