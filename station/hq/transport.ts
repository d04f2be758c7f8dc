/**
 * The station's transport to the headquarters registry (docs/sync.md "Transport"): the registry URL policy
 * (`checkRegistryUrl`), TLS that trusts only the pinned registry certificate, capped answers, one fresh connection
 * per exchange, and the station error of a failed exchange. Every registry call of the station goes through
 * `httpExchange`, by way of the registry client (station/hq/client.ts).
 *
 * May import: node:http(s), node:tls, core/ (errors, pem, result, hq protocol constants). Nothing of station/.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { fail, stationError, type StationError } from '../../core/errors.js';
import { toPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import { MAX_RESPONSE_BYTES } from '../../core/hq/protocol.js';

/** Loopback IP literals: the only hosts the station talks to over plain http. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === '::1' || /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(h);
}

/**
 * The registry URL policy (docs/sync.md "Transport"), checked at `station enroll`, when the engine opens, and by
 * `httpExchange` before every call: http only to a loopback IP literal (127.0.0.0/8, [::1]); anything else must
 * be https with a pinned TLS certificate (`station enroll --registry-tls-cert`); no credentials in the URL.
 * SYNC_INSECURE_URL otherwise.
 */
export function checkRegistryUrl(url: string, tlsCertificate: Uint8Array | null | undefined): Result<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail('SYNC_INSECURE_URL', `${url} is not a URL`);
  }
  if (u.username || u.password) return fail('SYNC_INSECURE_URL', 'the registry URL must not carry credentials');
  if (u.protocol === 'http:') {
    if (isLoopbackHost(u.hostname)) return ok(u);
    return fail(
      'SYNC_INSECURE_URL',
      `http://${u.host} is not loopback: the registry must be reached over https (with --registry-tls-cert)`,
      { host: u.host },
    );
  }
  if (u.protocol !== 'https:') return fail('SYNC_INSECURE_URL', `unsupported registry URL scheme ${u.protocol}`);
  if (!tlsCertificate)
    return fail(
      'SYNC_INSECURE_URL',
      `https://${u.host}: no pinned TLS certificate (station enroll --registry-tls-cert)`,
      {
        host: u.host,
      },
    );
  return ok(u);
}

/** Thrown by `httpExchange` when the transport is refused before anything is sent (URL policy, TLS pin). */
export class RegistryRefusal extends Error {
  constructor(readonly error: StationError) {
    super(error.message);
  }
}

/** Node's codes for a server certificate OpenSSL could not verify (X509_V_ERR_* names, and the host name check). */
const TLS_VERIFY_CODE = /^(ERR_TLS_CERT_ALTNAME_INVALID|[A-Z_]*(CERT|SELF_SIGNED|ISSUER|SIGNATURE|UNABLE_TO)[A-Z_]*)$/;

/**
 * TLS to the registry trusts exactly the pinned certificate: it is the only trust anchor, and the server's chain
 * must contain it (the server certificate itself, or the CA that issued it). Host names are not checked: the pin
 * is the identity.
 */
function pinnedTls(pin: Uint8Array): {
  ca: string;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  return {
    ca: toPem(pin, 'CERTIFICATE'),
    checkServerIdentity: (_host, cert) => {
      const seen = new Set<PeerCertificate>();
      for (
        let c: PeerCertificate | undefined = cert;
        c && !seen.has(c);
        c = (c as DetailedPeerCertificate).issuerCertificate
      ) {
        seen.add(c);
        if (c.raw && Buffer.from(pin).equals(c.raw)) return undefined;
      }
      return new RegistryRefusal(
        stationError(
          'SYNC_REGISTRY_UNTRUSTED',
          'the registry TLS certificate is not the pinned one (registry TLS pin)',
        ),
      );
    },
  };
}

/** An answer larger than the exchange's cap: the station stopped reading it (SYNC_RESPONSE_TOO_LARGE). */
export class ResponseTooLarge extends Error {
  readonly code = 'SYNC_RESPONSE_TOO_LARGE';
  constructor(
    readonly limit: number,
    readonly declared: number | null,
  ) {
    super(
      `the registry's answer is larger than ${limit} bytes${declared === null ? '' : ` (Content-Length ${declared})`}: not read`,
    );
  }
}

/**
 * One HTTP exchange on a fresh connection (no keep-alive: a connection broken mid-batch is never reused),
 * aborted by `signal` (timeouts included). The registry URL policy (`checkRegistryUrl`) is applied first, and
 * https trusts only `tls` (the pinned registry TLS certificate): a refusal rejects with `RegistryRefusal` and
 * nothing is sent. Rejects on any network failure or an incomplete answer, and with ResponseTooLarge (the
 * connection closed at once) when the answer declares or reaches more than `maxResponseBytes` (default
 * MAX_RESPONSE_BYTES): a hostile server cannot make the station buffer more.
 */
export function httpExchange(
  url: string,
  o: {
    method: 'GET' | 'POST';
    headers?: Record<string, string>;
    body?: string;
    signal: AbortSignal;
    tls?: Uint8Array | null;
    maxResponseBytes?: number;
  },
): Promise<{ status: number; text: string }> {
  const cap = o.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  return new Promise((resolve, reject) => {
    const checked = checkRegistryUrl(url, o.tls);
    if (!checked.ok) {
      reject(new RegistryRefusal(checked.error));
      return;
    }
    const u = checked.value;
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string | number> = { ...o.headers, connection: 'close' };
    if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
    const tls = u.protocol === 'https:' && o.tls ? pinnedTls(o.tls) : {};
    const req = send(u, { method: o.method, headers, agent: false, signal: o.signal, ...tls }, (res) => {
      const tooLarge = (declared: number | null) => {
        reject(new ResponseTooLarge(cap, declared));
        res.destroy();
        req.destroy();
      };
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > cap) return tooLarge(declared);
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > cap) tooLarge(null);
        else chunks.push(c);
      });
      res.on('end', () =>
        res.complete
          ? resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })
          : reject(new Error('the answer was cut off')),
      );
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the answer was cut off')));
    });
    // A TLS pin mismatch arrives here before the request is written: as the RegistryRefusal checkServerIdentity
    // returned, or as OpenSSL's verification error (a certificate that does not chain to the pin).
    req.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (u.protocol === 'https:' && !(e instanceof RegistryRefusal) && TLS_VERIFY_CODE.test(code))
        reject(
          new RegistryRefusal(
            stationError('SYNC_REGISTRY_UNTRUSTED', `the registry TLS certificate is not the pinned one (${code})`),
          ),
        );
      else reject(o.signal.aborted ? (o.signal.reason ?? e) : e);
    });
    req.end(o.body);
  });
}

/**
 * The station error of a failed `httpExchange` (`what`: e.g. "POST /v1/batches"): a transport refusal's own error
 * (RegistryRefusal: URL policy, TLS pin), SYNC_RESPONSE_TOO_LARGE for an oversized answer, else SYNC_UNREACHABLE
 * (network failure, timeout after `timeoutMs`, answer cut off).
 */
export function exchangeError(
  e: unknown,
  what: string,
  timeoutMs?: number,
  details?: Record<string, unknown>,
): StationError {
  if (e instanceof RegistryRefusal) return e.error;
  if (e instanceof ResponseTooLarge)
    return stationError('SYNC_RESPONSE_TOO_LARGE', `${what}: ${e.message}`, { ...details, limit: e.limit });
  const why =
    (e as Error).name === 'TimeoutError' && timeoutMs !== undefined
      ? `no answer within ${timeoutMs} ms`
      : (e as Error).message;
  return stationError('SYNC_UNREACHABLE', `${what}: ${why}`, details);
}
