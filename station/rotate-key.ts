/**
 * `station rotate-key`: rotate the station signing key (docs/lifecycle.md "Station key rotation").
 *
 * 1. prepare: a NEW station key in the station token (token object, sensitive, not extractable, label with a
 *    version suffix: station-signing -> station-signing-v2), its certificate issued by the station's issuing CA key
 *    in the HSM (CN = station id, like `station init`), stored in the token and in pki/; the rotation request
 *    (JWS typ line-station-key-rotation+jws) signed with the CURRENT key; all of it remembered in
 *    pki/station-key-rotation.json (the pending rotation) before anything is sent;
 * 2. the request goes to the registry (online: POST /v1/stations/key-rotation, LS-Sig, through the registry
 *    client station/hq/client.ts; hand-carried: --out file, then `registry rotate-station-key`, then --answer file);
 * 3. the registry's signed answer is verified with the registry certificate configured by `station enroll`;
 * 4. switch: config.json (tmp + rename) names the new key and chain; audited `station.key-rotated`;
 * 5. only then the old private key is destroyed in the token (audited `station.key-destroyed`) and the pending
 *    file removed.
 *
 * Crash safety: every step is recorded in the pending file before the next one starts, and a retry resumes from
 * it. Until the switch the old key stays the configured one; once the registry has applied the request (answer
 * lost in a crash) the retry authenticates with the NEW key and the registry answers the stored answer again.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { sha256Hex } from '../core/bytes.js';
import { fail } from '../core/errors.js';
import type { Clock, Logger, Signer } from '../core/ports.js';
import { systemClock } from '../core/ports.js';
import { issueStationCertificate } from '../core/pki/ca.js';
import { fromPemChain, toPem } from '../core/pki/pem.js';
import { err, ok, type Result } from '../core/result.js';
import type { HsmAdmin } from '../native/hsm/index.js';
import { ROUTES } from '../core/hq/routes.js';
import {
  KEY_ROTATION_ANSWER_FILE,
  KEY_ROTATION_REQUEST_FILE,
  KEY_ROTATION_SCHEMA,
  KeyRotationAnswerFileSchema,
  MAX_KEY_ROTATION_FILE_BYTES,
  signKeyRotationRequest,
  verifyKeyRotationAnswer,
  type KeyRotationRequest,
} from '../core/hq/key-rotation.js';
import { lockForRotation } from './instance.js';
import {
  configNotFound,
  loadConfig,
  readPin,
  updateStationConfig,
  type LoadedConfig,
  STATION_CERT_DAYS,
} from './config.js';
import { createRegistryClient, routeLabel } from './hq/client.js';
import { readRegistryCertificate, readRegistryTlsCertificate } from './hq/pins.js';
import { openTokenAndStore } from './token-store.js';
import { writeFileAtomic } from '../native/atomic-file.js';

/** The pending rotation, relative to the data dir. */
export const PENDING_ROTATION_FILE = join('pki', 'station-key-rotation.json');
const PENDING_SCHEMA = 'line-station/station-key-rotation-pending/v1';

const PendingSchema = z
  .object({
    schema: z.literal(PENDING_SCHEMA),
    stationId: z.string(),
    requestId: z.uuid(),
    oldLabel: z.string().min(1),
    newLabel: z.string().min(1),
    oldChainFile: z.string().min(1),
    newChainFile: z.string().min(1),
    previousCertificateSha256: z.string(),
    certificateSha256: z.string(),
    request: z.string().min(1),
    createdAt: z.string(),
    state: z.enum(['requested', 'answered', 'switched']),
    answer: z.string().optional(),
    rotatedAt: z.string().optional(),
  })
  .strict();
export type PendingRotation = z.infer<typeof PendingSchema>;

/** What to do: the whole online rotation, write the hand-carried request, or apply the registry's answer file. */
export type RotateMode =
  | { readonly kind: 'online' }
  | { readonly kind: 'request'; readonly out: string }
  | { readonly kind: 'answer'; readonly file: string };

/** Points where tests simulate a crash (the failpoint throws). */
export type RotateFailPoint = 'after-prepare' | 'after-send' | 'after-answer' | 'after-switch';

export interface RotateKeyOptions {
  readonly dataDir: string;
  readonly mode: RotateMode;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly timeoutMs?: number;
  readonly failpoint?: (p: RotateFailPoint) => void | Promise<void>;
}

export interface RotateKeyResult {
  /** `requested`: the request file was written (hand-carried, nothing switched yet); `rotated`: done. */
  readonly status: 'requested' | 'rotated';
  readonly stationId: string;
  readonly requestId: string;
  readonly oldLabel: string;
  readonly newLabel: string;
  readonly previousCertificateSha256: string;
  readonly certificateSha256: string;
  /** True when this run continued a rotation left pending by an earlier run. */
  readonly resumed: boolean;
  readonly rotatedAt?: string;
  /** The new chain file (absolute). */
  readonly chainFile: string;
  /** The request file written (hand-carried). */
  readonly out?: string;
  /** The registry answered a request it had applied before. */
  readonly repeated?: boolean;
  readonly oldKeyDestroyed?: boolean;
}

/** The next versioned label: station-signing -> station-signing-v2 -> station-signing-v3. */
export function nextKeyLabel(label: string): string {
  const m = /^(.*)-v([0-9]{1,6})$/.exec(label);
  return m ? `${m[1]}-v${Number(m[2]) + 1}` : `${label}-v2`;
}

/** The pending rotation of a data dir (null: none). */
export function readPendingRotation(cfg: LoadedConfig): Result<PendingRotation | null> {
  const f = cfg.path(PENDING_ROTATION_FILE);
  if (!existsSync(f)) return ok(null);
  try {
    const p = PendingSchema.safeParse(JSON.parse(readFileSync(f, 'utf8')));
    if (!p.success) return fail('CONFIG_INVALID', `${f}: not a pending key rotation (${p.error.issues[0]?.message})`);
    if (p.data.stationId !== cfg.config.stationId)
      return fail('CONFIG_INVALID', `${f} is a rotation of station ${p.data.stationId}, not ${cfg.config.stationId}`);
    return ok(p.data);
  } catch (e) {
    return fail('CONFIG_INVALID', `${f}: ${(e as Error).message}`);
  }
}

/** Rotate the station key (see the module comment); one step of the hand-carried flow per call. */
export async function rotateStationKey(o: RotateKeyOptions): Promise<Result<RotateKeyResult>> {
  // No engine of another process may sign with the old key while it is switched and destroyed, and no other
  // rotation may read or write the pending file meanwhile: take the data dir first (but never create one).
  const missing = configNotFound(o.dataDir);
  if (missing) return missing;
  const locked = lockForRotation(resolve(o.dataDir));
  if (!locked.ok) return locked;
  try {
    return await rotateLocked(o);
  } finally {
    locked.value();
  }
}

/** rotateStationKey with the data dir locked. */
async function rotateLocked(o: RotateKeyOptions): Promise<Result<RotateKeyResult>> {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child('[rotate-key]');
  const cfgR = loadConfig(o.dataDir);
  if (!cfgR.ok) return cfgR;
  const cfg = cfgR.value;
  const c = cfg.config;
  if (o.mode.kind !== 'request' && !c.registry)
    return fail('CONFIG_INVALID', 'no registry is configured: run station enroll --registry-cert FILE first');
  if (o.mode.kind === 'online' && !c.registry?.url)
    return fail(
      'CONFIG_INVALID',
      'no registry URL is configured: rotate hand-carried (station rotate-key --out REQUEST.json) or enroll with --registry URL',
    );
  const pendingR = readPendingRotation(cfg);
  if (!pendingR.ok) return pendingR;
  if (!pendingR.value && o.mode.kind === 'answer')
    return fail(
      'INPUT_INVALID',
      'no key rotation is pending at this station: run station rotate-key --out REQUEST.json first',
    );
  const pin = readPin(cfg);
  if (!pin.ok) return pin;
  const opened = await openTokenAndStore(cfg, pin.value, { clock, hsmLogger: log, storeLogger: log });
  if (!opened.ok) return opened;
  const { hsm, store } = opened.value;
  try {
    let pending = pendingR.value;
    const resumed = pending !== null;
    if (!pending) {
      const p = await prepare(cfg, hsm, clock, log);
      if (!p.ok) return p;
      pending = p.value;
      store.appendAudit('station.key-rotation-requested', {
        requestId: pending.requestId,
        oldLabel: pending.oldLabel,
        newLabel: pending.newLabel,
        previousCertificateSha256: pending.previousCertificateSha256,
        certificateSha256: pending.certificateSha256,
      });
      await o.failpoint?.('after-prepare');
    } else log.log('info', 'resuming the pending key rotation', { requestId: pending.requestId, state: pending.state });

    const base = {
      stationId: c.stationId,
      requestId: pending.requestId,
      oldLabel: pending.oldLabel,
      newLabel: pending.newLabel,
      previousCertificateSha256: pending.previousCertificateSha256,
      certificateSha256: pending.certificateSha256,
      resumed,
      chainFile: cfg.path(pending.newChainFile),
    };
    let repeated: boolean | undefined;

    if (pending.state === 'requested') {
      if (o.mode.kind === 'request') {
        const file = {
          schema: KEY_ROTATION_REQUEST_FILE,
          stationId: c.stationId,
          requestId: pending.requestId,
          request: pending.request,
        };
        writeFileAtomic(o.mode.out, JSON.stringify(file, null, 2) + '\n');
        log.log('info', 'key rotation request written', { requestId: pending.requestId, out: o.mode.out });
        return ok({ ...base, status: 'requested', out: o.mode.out });
      }
      const regCert = readRegistryCertificate(cfg.path(c.registry!.certificate));
      if (!regCert.ok) return regCert;
      let answerJws: string;
      if (o.mode.kind === 'answer') {
        const a = readAnswerFile(o.mode.file, pending);
        if (!a.ok) return a;
        answerJws = a.value;
      } else {
        const s = await send(cfg, hsm, pending, clock, o.timeoutMs ?? 30_000, log, regCert.value);
        if (!s.ok) return s;
        answerJws = s.value.answer;
        repeated = s.value.repeated;
        await o.failpoint?.('after-send');
      }
      const v = await verifyKeyRotationAnswer(answerJws, regCert.value, {
        requestId: pending.requestId,
        stationId: c.stationId,
        previousCertificateSha256: pending.previousCertificateSha256,
        certificateSha256: pending.certificateSha256,
      });
      if (!v.ok) {
        log.log('warn', 'key rotation answer refused: it does not verify; the current key stays in use', {
          message: v.error.message,
        });
        return v;
      }
      pending = { ...pending, state: 'answered', answer: answerJws.trim(), rotatedAt: v.value.rotatedAt };
      writeFileAtomic(cfg.path(PENDING_ROTATION_FILE), JSON.stringify(pending, null, 2) + '\n');
      await o.failpoint?.('after-answer');
    } else if (o.mode.kind === 'request')
      return fail(
        'INPUT_INVALID',
        'the pending key rotation was already answered: run station rotate-key to finish it',
      );

    if (pending.state === 'answered') {
      // Switch atomically (config.json via tmp + rename); an earlier run may have switched already (the config
      // was loaded under the rotation lock: nothing changed it since).
      if (c.hsm.keys.station !== pending.newLabel) {
        const newLabel = pending.newLabel;
        const newChainFile = pending.newChainFile;
        const sw = updateStationConfig(cfg.dataDir, (raw) => {
          const hsmSec = raw['hsm'] as Record<string, unknown>;
          const pki = raw['pki'] as Record<string, unknown>;
          return {
            ...raw,
            hsm: { ...hsmSec, keys: { ...(hsmSec['keys'] as Record<string, unknown>), station: newLabel } },
            pki: { ...pki, stationChain: newChainFile },
          };
        });
        if (!sw.ok) return fail('CONFIG_INVALID', `the switched configuration is invalid: ${sw.error.message}`);
      }
      store.appendAudit('station.key-rotated', {
        requestId: pending.requestId,
        oldLabel: pending.oldLabel,
        newLabel: pending.newLabel,
        previousCertificateSha256: pending.previousCertificateSha256,
        certificateSha256: pending.certificateSha256,
        rotatedAt: pending.rotatedAt ?? null,
        chain: pending.newChainFile,
      });
      pending = { ...pending, state: 'switched' };
      writeFileAtomic(cfg.path(PENDING_ROTATION_FILE), JSON.stringify(pending, null, 2) + '\n');
      log.log('info', 'station key switched', { requestId: pending.requestId, label: pending.newLabel });
      await o.failpoint?.('after-switch');
    }

    // switched: only now destroy the old private key.
    const d = await hsm.destroyKeyPair(pending.oldLabel);
    if (!d.ok) return d;
    store.appendAudit('station.key-destroyed', {
      requestId: pending.requestId,
      label: pending.oldLabel,
      previousCertificateSha256: pending.previousCertificateSha256,
      objects: d.value.destroyed,
    });
    rmSync(cfg.path(PENDING_ROTATION_FILE), { force: true });
    log.log('info', 'old station key destroyed', { label: pending.oldLabel, objects: d.value.destroyed });
    return ok({
      ...base,
      status: 'rotated',
      ...(pending.rotatedAt ? { rotatedAt: pending.rotatedAt } : {}),
      ...(repeated !== undefined ? { repeated } : {}),
      oldKeyDestroyed: true,
    });
  } finally {
    await opened.value.close();
  }
}

/** Step 1: the new key, its certificate, the signed request, the pending file. */
async function prepare(cfg: LoadedConfig, hsm: HsmAdmin, clock: Clock, log: Logger): Promise<Result<PendingRotation>> {
  const c = cfg.config;
  const oldLabel = c.hsm.keys.station;
  const oldSigner = await hsm.signer(oldLabel);
  if (!oldSigner.ok) return oldSigner;
  const oldChain = fromPemChain(readFileSync(cfg.path(c.pki.stationChain), 'utf8'));
  if (!oldChain.ok) return oldChain;
  const caChain = fromPemChain(readFileSync(cfg.path(c.pki.caChain), 'utf8'));
  if (!caChain.ok) return caChain;
  // [issuing CA, (HQ CA ...), root]: a commissioned station's HQ chain may hold an HQ intermediate.
  const ca = caChain.value[0];
  if (!ca || caChain.value.length < 2 || oldChain.value.length !== caChain.value.length + 1)
    return fail('CONFIG_INVALID', 'the station chain files must hold station certificate, issuing CA and root');

  // A key left by a run that crashed before writing the pending file was never used: take it over.
  const newLabel = nextKeyLabel(oldLabel);
  const existing = await hsm.findKey(newLabel);
  if (!existing.ok) return existing;
  let spki: Uint8Array;
  if (existing.value) {
    const s = await hsm.signer(newLabel);
    if (!s.ok) return s;
    spki = s.value.publicKeySpki;
    log.log('warn', 'reusing a station key generated by an interrupted rotation', { label: newLabel });
  } else {
    const g = await hsm.generateSigningKey(newLabel, oldSigner.value.curve);
    if (!g.ok) return g;
    spki = g.value.publicKeySpki;
  }
  const caSigner = await hsm.signer(c.hsm.keys.issuingCa);
  if (!caSigner.ok) return caSigner;
  const cert = await issueStationCertificate({
    issuer: { signer: caSigner.value, certificate: ca },
    subjectPublicKeySpki: spki,
    stationId: c.stationId,
    validityDays: STATION_CERT_DAYS,
    clock,
  });
  if (!cert.ok) return cert;
  const imp = await hsm.importCertificate(newLabel, cert.value);
  if (!imp.ok) return imp;
  const chainPem = [cert.value, ...caChain.value].map((d) => toPem(d, 'CERTIFICATE')).join('');
  const newChainFile = join('pki', `station-chain-${newLabel.replace(/[^A-Za-z0-9._-]/g, '_')}.pem`);
  writeFileAtomic(cfg.path(newChainFile), chainPem);
  const req: KeyRotationRequest = {
    schema: KEY_ROTATION_SCHEMA,
    requestId: randomUUID(),
    stationId: c.stationId,
    previousCertificateSha256: await sha256Hex(oldChain.value[0]!),
    chainPem,
    requestedAt: clock.now().toISOString(),
  };
  const jws = await signKeyRotationRequest(oldSigner.value, oldChain.value, req);
  if (!jws.ok) return jws;
  const pending: PendingRotation = {
    schema: PENDING_SCHEMA,
    stationId: c.stationId,
    requestId: req.requestId,
    oldLabel,
    newLabel,
    oldChainFile: c.pki.stationChain,
    newChainFile,
    previousCertificateSha256: req.previousCertificateSha256,
    certificateSha256: await sha256Hex(cert.value),
    request: jws.value,
    createdAt: req.requestedAt,
    state: 'requested',
  };
  writeFileAtomic(cfg.path(PENDING_ROTATION_FILE), JSON.stringify(pending, null, 2) + '\n');
  log.log('info', 'key rotation prepared', { requestId: req.requestId, newLabel });
  return ok(pending);
}

function readAnswerFile(file: string, pending: PendingRotation): Result<string> {
  let json: unknown;
  try {
    const raw = readFileSync(file);
    if (raw.length > MAX_KEY_ROTATION_FILE_BYTES) return fail('INPUT_INVALID', `${file}: larger than 256 KiB`);
    json = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return fail('INPUT_INVALID', `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const a = KeyRotationAnswerFileSchema.safeParse(json);
  if (!a.success)
    return fail(
      'INPUT_INVALID',
      `${file}: not a key rotation answer (${KEY_ROTATION_ANSWER_FILE}): ${a.error.issues[0]?.message}`,
    );
  if (a.data.requestId !== pending.requestId)
    return fail(
      'INPUT_INVALID',
      `${file} answers request ${a.data.requestId}, but the pending rotation is ${pending.requestId}`,
    );
  return ok(a.data.answer);
}

/**
 * Step 2 online: POST the request with an LS-Sig of the current key; when the registry does not know that key any
 * more (it applied this request before and the answer was lost), again with the new key.
 */
async function send(
  cfg: LoadedConfig,
  hsm: HsmAdmin,
  pending: PendingRotation,
  clock: Clock,
  timeoutMs: number,
  log: Logger,
  registryCertificate: Uint8Array,
): Promise<Result<{ answer: string; repeated: boolean }>> {
  const tls = readRegistryTlsCertificate(cfg);
  if (!tls.ok) return tls;
  let last: Result<never> | null = null;
  for (const label of [pending.oldLabel, pending.newLabel]) {
    const signer: Result<Signer> = await hsm.signer(label);
    if (!signer.ok) {
      last = signer;
      continue;
    }
    const registry = createRegistryClient({
      url: cfg.config.registry!.url!,
      tlsCertificate: tls.value,
      registryCertificate,
      stationId: cfg.config.stationId,
      signer: signer.value,
      clock,
      timeoutMs,
    });
    const r = await registry.rotateKey({ request: pending.request });
    if (r.ok) return r;
    const f = r.error;
    if (f.kind === 'unreachable')
      return fail(f.error.code, `${f.error.message}; the rotation stays pending: run station rotate-key again`);
    if (f.kind !== 'refused') return err(f.error);
    last = err(f.error);
    if (f.code !== 'AUTH_SIGNATURE_INVALID' || label === pending.newLabel) break;
    log.log('info', 'the registry does not accept the current key: retrying with the new key (applied before?)', {
      requestId: pending.requestId,
    });
  }
  return last ?? fail('SYNC_REJECTED', `${routeLabel(ROUTES.stationKeyRotation)}: no key could sign the request`);
}
