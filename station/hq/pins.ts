/**
 * The registry's pinned certificates as a station data dir holds them: the registry certificate (`registry.pem`,
 * given at `station enroll --registry-cert`: receipts and registry documents verify with it, its SHA-256 is the
 * audience of every signed request) and, for an https registry, the pinned TLS certificate
 * (`station enroll --registry-tls-cert`: the only TLS trust, station/hq/transport.ts).
 *
 * May import: node:fs, core/ (errors, pem, result).
 */
import { readFileSync } from 'node:fs';
import { fail } from '../../core/errors.js';
import { fromPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';

/** Read the registry certificate (PEM, first certificate) for `registryCertificate`. */
export function readRegistryCertificate(file: string): Result<Uint8Array> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail('CONFIG_INVALID', `cannot read the registry certificate ${file}: ${(e as Error).message}`);
  }
  const der = fromPem(text, 'CERTIFICATE');
  return der.ok ? der : fail('CONFIG_INVALID', `${file}: ${der.error.message}`);
}

/**
 * The pinned registry TLS certificate of a data dir (`registry.tlsCertificate` in config.json, written by
 * `station enroll --registry-tls-cert`), or null when none is configured (loopback http only).
 */
export function readRegistryTlsCertificate(cfg: {
  readonly config: { readonly registry?: { readonly tlsCertificate?: string | undefined } | undefined };
  path(rel: string): string;
}): Result<Uint8Array | null> {
  const rel = cfg.config.registry?.tlsCertificate;
  return rel ? readRegistryCertificate(cfg.path(rel)) : ok(null);
}
