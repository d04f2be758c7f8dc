/** Signing throughput benchmark (used by `npm run bench`). */
import type { Hsm } from '../../core/ports.js';

/**
 * Measure sustained signatures per second for the key labelled `label` over about `seconds` seconds,
 * with `concurrency` callers in flight (default 8). Throws if the key is unusable or a signature fails
 * (a benchmark on a broken token has no meaningful result).
 */
export async function measureSignRate(hsm: Hsm, label: string, seconds: number, concurrency = 8): Promise<number> {
  const s = await hsm.signer(label);
  if (!s.ok) throw new Error(`measureSignRate: ${s.error.code}: ${s.error.message}`);
  const signer = s.value;
  const data = new Uint8Array(64);
  globalThis.crypto.getRandomValues(data);
  const start = performance.now();
  const deadline = start + Math.max(0.05, seconds) * 1000;
  let count = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const r = await signer.sign(data);
      if (!r.ok) throw new Error(`measureSignRate: ${r.error.code}: ${r.error.message}`);
      count++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(concurrency)) }, worker));
  return count / ((performance.now() - start) / 1000);
}
