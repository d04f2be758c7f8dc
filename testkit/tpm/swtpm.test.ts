/**
 * The swtpm harness against the real swtpm: manufacture (two TPMs of one local CA, one of another), EK certificates
 * in NV checked with tpm2-tools and openssl, raw transmit, stop kills the real process.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  induceLockout,
  manufactureTpm,
  startSwtpm,
  tpm2tools,
  type ManufacturedTpm,
  type RunningSwtpm,
} from './swtpm.js';

const run = promisify(execFile);

describe('swtpm harness', () => {
  let root: string;
  let a: ManufacturedTpm;
  let b: ManufacturedTpm;
  let rogue: ManufacturedTpm;
  let tpm: RunningSwtpm;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ls-swtpm-'));
    const trusted = join(root, 'vendor-ca');
    [a, b, rogue] = await Promise.all([
      manufactureTpm({ dir: join(root, 'a'), localca: trusted }),
      manufactureTpm({ dir: join(root, 'b'), localca: trusted, ek: ['rsa'] }),
      manufactureTpm({ dir: join(root, 'rogue'), localca: join(root, 'rogue-ca') }),
    ]);
    tpm = await startSwtpm({ dir: a.dir });
  });
  afterAll(async () => {
    await tpm?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('keeps every file under the given directories', () => {
    expect(a.ca.dir).toBe(join(root, 'vendor-ca'));
    expect(b.ca.rootCertPem).toBe(a.ca.rootCertPem);
    expect(rogue.ca.dir).toBe(join(root, 'rogue-ca'));
    for (const p of [a.ca.rootCertPem, a.ca.issuerCertDer, rogue.ca.rootCertDer]) expect(p.startsWith(root)).toBe(true);
    expect(b.ekCerts.eccP256).toBeUndefined();
  });

  it('EK certificates chain to their own local CA only (openssl verify)', async () => {
    const verify = async (ca: ManufacturedTpm['ca'], der: Uint8Array): Promise<boolean> => {
      const f = join(root, `cert-${Math.random().toString(16).slice(2)}.der`);
      await writeFile(f, der);
      const pem = join(root, `cert-${Math.random().toString(16).slice(2)}.pem`);
      await run('openssl', ['x509', '-inform', 'der', '-in', f, '-out', pem]);
      return run('openssl', ['verify', '-CAfile', ca.rootCertPem, '-untrusted', ca.issuerCertPem, pem]).then(
        () => true,
        () => false,
      );
    };
    expect(await verify(a.ca, a.ekCerts.rsa2048)).toBe(true);
    expect(await verify(a.ca, a.ekCerts.eccP256!)).toBe(true);
    expect(await verify(a.ca, b.ekCerts.eccP384)).toBe(true);
    expect(await verify(a.ca, rogue.ekCerts.eccP256!)).toBe(false);
    expect(await verify(rogue.ca, rogue.ekCerts.eccP256!)).toBe(true);
  });

  it('the TPM holds the EK certificates in NV (tpm2_nvreadpublic, tpm2_nvread)', async () => {
    const tools = tpm2tools(tpm);
    const { stdout } = await tools('tpm2_nvreadpublic', []);
    for (const idx of ['0x1c00002:', '0x1c0000a:', '0x1c00016:']) expect(stdout).toContain(idx);
    const out = join(root, 'nv-p256.der');
    await tools('tpm2_nvread', ['0x01c0000a', '-C', 'o', '-o', out]);
    expect(new Uint8Array(await readFile(out))).toEqual(a.ekCerts.eccP256);
    // The certificate's key is the L-2 EK's (tpm2_createek -G ecc recreates it from the template).
    const pub = join(root, 'ek.pem');
    await tools('tpm2_createek', ['-c', '-', '-G', 'ecc', '-u', pub, '-f', 'pem']);
    const certKey = await run('openssl', [
      'x509',
      '-inform',
      'der',
      '-in',
      join(a.dir, 'ek-certs', 'ek-secp256r1.crt'),
      '-noout',
      '-pubkey',
    ]);
    expect((await readFile(pub, 'utf8')).trim()).toBe(certKey.stdout.trim());
  });

  it('transmit sends raw commands and reads whole responses, one at a time', async () => {
    // TPM2_GetRandom(16): tag NO_SESSIONS, size 12, TPM_CC_GetRandom, bytesRequested.
    const cmd = Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]);
    const rs = await Promise.all([tpm.transmit(cmd), tpm.transmit(cmd), tpm.transmit(cmd)]);
    for (const r of rs) {
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.value.length).toBe(10 + 2 + 16);
      expect(Buffer.from(r.value).readUInt32BE(6)).toBe(0); // TPM_RC_SUCCESS
    }
    const tooLong = await tpm.transmit(new Uint8Array(5000));
    expect(tooLong.ok ? '' : tooLong.error.code).toBe('PROTOCOL_REQUEST_TOO_LARGE');
  });

  it('induceLockout puts the TPM into DA lockout (tpm2_getcap shows inLockout)', async () => {
    const locked = await startSwtpm({ dir: rogue.dir });
    try {
      const tools = tpm2tools(locked);
      expect((await tools('tpm2_getcap', ['properties-variable'])).stdout).toMatch(/inLockout:\s+0/);
      await induceLockout(locked);
      expect((await tools('tpm2_getcap', ['properties-variable'])).stdout).toMatch(/inLockout:\s+1/);
    } finally {
      await locked.stop();
    }
  });

  it('stop kills the real swtpm process', async () => {
    const other = await startSwtpm({ dir: b.dir });
    expect(() => process.kill(other.pid, 0)).not.toThrow();
    await other.stop();
    expect(() => process.kill(other.pid, 0)).toThrow();
    const r = await other.transmit(Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16]));
    expect(r.ok ? '' : r.error.code).toBe('LINK_DISCONNECTED');
  });
});
