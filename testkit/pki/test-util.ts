/** Test helpers for the PKI tests (fixed clocks, a test PKI, openssl in a temp dir). Not used in production. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../core/ports.js';
import type { Result } from '../../core/result.js';
import { createRootCertificate, issueCaCertificate } from '../../core/pki/ca.js';
import { createTestSigner, type TestSigner } from './test-signer.js';

/** A clock frozen at `iso` (monotonic time counts from 0). */
export function fixedClock(iso: string | Date): Clock {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return { now: () => new Date(d.getTime()), monotonicMs: () => 0 };
}

/** Unwrap a Result in tests: throws with the error's code and message (tests only; any coded error). */
export function must<T>(r: Result<T, { readonly code: string; readonly message: string }>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

export interface TestPki {
  readonly root: { signer: TestSigner; der: Uint8Array };
  readonly ca: { signer: TestSigner; der: Uint8Array };
}

/** Root -> issuing CA (pathLen 0) with fresh test signers. */
export async function createTestPki(clock: Clock, curve: 'P-256' | 'P-384' = 'P-256'): Promise<TestPki> {
  const rootSigner = await createTestSigner(curve);
  const caSigner = await createTestSigner('P-256');
  const rootDer = must(
    await createRootCertificate({
      signer: rootSigner,
      subject: { commonName: 'Test Root CA', organization: 'Line Station Test' },
      validityDays: 7300,
      clock,
    }),
  );
  const caDer = must(
    await issueCaCertificate({
      issuer: { signer: rootSigner, certificate: rootDer },
      subjectPublicKeySpki: caSigner.publicKeySpki,
      subject: { commonName: 'Test Issuing CA', organization: 'Line Station Test' },
      validityDays: 3650,
      pathLength: 0,
      clock,
    }),
  );
  return { root: { signer: rootSigner, der: rootDer }, ca: { signer: caSigner, der: caDer } };
}

/**
 * A self-signed P-256 certificate made by openssl (`req -x509`) in `dir` (writes k.pem and c.der there): DER, for
 * tests that need a certificate from an independent tool. `subject` in openssl's form, e.g. `/CN=x/O=y`.
 */
export function opensslSelfSignedDer(dir: string, subject: string): Uint8Array {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      subject,
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.der'),
      '-outform',
      'DER',
      '-days',
      '1',
    ],
    { stdio: 'ignore' },
  );
  return new Uint8Array(readFileSync(join(dir, 'c.der')));
}
