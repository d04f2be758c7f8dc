/**
 * Sync with the headquarters registry (station/sync.ts): `station sync` (send what is pending now, then pull the
 * policy and quotas and send queued revocation events; or --status), `station export` (a signed bundle for
 * `registry import`) and `station import-receipt` (apply the receipt `registry import` wrote). Imports core/,
 * native/, station/ (engine) and sibling command modules.
 */
import { resolve } from 'node:path';
import { flagOn, str, type Io } from '../../core/cli/program.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import type { Engine } from '../engine.js';
import { engineCommand, readArgFile, type StationCommand } from './context.js';
import { describeError, EXIT, exitFor, reportError } from './exit.js';

type Sync = NonNullable<Engine['sync']>;

/** `fn` with the engine's sync, or CONFIG_INVALID (exit 3) when no registry is configured. */
function withSync(engine: Engine, o: Io, fn: (sync: Sync) => Promise<number>): Promise<number> | number {
  const sync = engine.sync;
  if (!sync) {
    o.err(
      'CONFIG_INVALID: no registry is configured\n  -> run: station enroll --registry URL --registry-cert registry.pem',
    );
    return EXIT.notReady;
  }
  return fn(sync);
}

function printStatus(st: ReturnType<Sync['status']>, o: Io): void {
  o.out(
    `registry ${st.registryUrl ?? '(none: offline)'}: ${st.reachable === null ? 'not checked' : st.reachable ? 'reachable' : 'NOT reachable'}`,
  );
  o.out(`records: ${st.acknowledged} acknowledged, ${st.pending} pending, ${st.sent} sent, ${st.failed} failed`);
  if (st.lastReceipt)
    o.out(`last receipt ${st.lastReceipt.receiptId} at ${st.lastReceipt.at} (${st.lastReceipt.count} records)`);
  if (st.lastError) o.out(`last error: ${st.lastError}`);
  for (const b of st.failingBatches)
    o.out(
      `batch ${b.batchId} (${b.records} records, ${b.attempts} attempts) not accepted: ${b.code}: ${b.message} at ${b.at}; retried with backoff`,
    );
}

/** `station sync`. */
export const syncCommand: StationCommand = {
  name: 'sync',
  summary: 'send pending records to the registry now (then pull its policy and quotas), or show the sync state',
  options: {
    status: { type: 'boolean', help: 'show the sync state (pending, sent, acknowledged, failed, last receipt)' },
    json: { type: 'boolean', help: 'the result as JSON' },
  },
  run: engineCommand((engine, args, o) =>
    withSync(engine, o, async (sync) => {
      const json = flagOn(args, 'json');
      if (flagOn(args, 'status')) {
        await sync.checkHealth();
        const st = sync.status();
        if (json) o.out(JSON.stringify(st, null, 2));
        else printStatus(st, o);
        return EXIT.ok;
      }
      const r = await sync.syncOnce();
      const st = sync.status();
      // Then the registry's policy and quotas (verified; never rolled back) and queued scrap / failed-issuance events.
      const pulled = r.ok ? await engine.lifecycle.pull() : null;
      const revs = r.ok ? await engine.lifecycle.sendRevocations() : null;
      if (json)
        o.out(
          JSON.stringify(
            {
              ...(r.ok ? st : { ...st, error: r.error }),
              lifecycle: pulled ? (pulled.ok ? pulled.value : { error: pulled.error }) : null,
              revocations: revs ? (revs.ok ? revs.value : { error: revs.error }) : null,
            },
            null,
            2,
          ),
        );
      else {
        printStatus(st, o);
        if (!r.ok) o.err(describeError(r.error));
        if (pulled?.ok)
          o.out(
            `policy version ${pulled.value.policy.version} (${pulled.value.policy.outcome}), quotas version ${pulled.value.quotas.version} (${pulled.value.quotas.outcome})`,
          );
        else if (pulled) o.err(`policy not updated: ${describeError(pulled.error)}`);
        if (revs?.ok && revs.value.unsupported)
          o.out('revocation events queued: the registry does not accept them yet');
        else if (revs?.ok && revs.value.sent)
          o.out(`${revs.value.sent} revocation event(s) acknowledged by the registry`);
        else if (revs && !revs.ok) o.err(`revocation events not sent: ${describeError(revs.error)}`);
      }
      return r.ok ? EXIT.ok : exitFor(r.error);
    }),
  ),
};

/** `station export`. */
export const exportCommand: StationCommand = {
  name: 'export',
  summary: 'write a signed bundle of the records not yet acknowledged (for registry import)',
  options: {
    out: { type: 'string', arg: 'FILE', help: 'where to write the bundle (default: its own name, here)' },
    json: { type: 'boolean', help: 'the result as JSON' },
  },
  run: engineCommand((engine, args, o) =>
    withSync(engine, o, async (sync) => {
      const r = await sync.exportBundle();
      if (!r.ok) return reportError(o, r.error);
      const file = resolve(str(args, 'out') ?? r.value.fileName);
      writeFileAtomic(file, r.value.content);
      if (flagOn(args, 'json'))
        o.out(JSON.stringify({ file, count: r.value.count, revocationEvents: r.value.revocationEvents }));
      else
        o.out(
          `${r.value.count} records and ${r.value.revocationEvents} revocation events exported to ${file}\n  import it at headquarters: registry import ${file}`,
        );
      return EXIT.ok;
    }),
  ),
};

/** `station import-receipt`. */
export const importReceiptCommand: StationCommand = {
  name: 'import-receipt',
  summary: 'apply a receipt that registry import wrote: marks exactly those records acknowledged',
  synopsis: 'FILE [options]',
  options: { json: { type: 'boolean', help: 'the result as JSON' } },
  positionals: [{ name: 'FILE', help: 'the receipt (bundle.jws.receipt.jws) (required)' }],
  run: engineCommand((engine, args, o) =>
    withSync(engine, o, async (sync) => {
      const file = args.positionals[0];
      if (!file) {
        o.err('import-receipt needs the receipt FILE');
        return EXIT.usage;
      }
      const content = readArgFile(file, o);
      if (content === null) return EXIT.usage;
      const r = await sync.importReceipt(content);
      if (!r.ok) return reportError(o, r.error);
      o.out(flagOn(args, 'json') ? JSON.stringify(r.value) : r.value.message);
      return EXIT.ok;
    }),
  ),
};
