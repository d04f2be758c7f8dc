/**
 * `station rotate-key`: a new station key, online with the registry, or hand-carried (--out the request, then
 * --answer the registry's answer); resumes a pending rotation (station/rotate-key.ts). Stop `station serve` /
 * `watch` first: they hold the old key. Imports core/, station/ (rotate-key) and sibling command modules.
 */
import { resolve } from 'node:path';
import { flagOn, str } from '../../core/cli/program.js';
import { withSetup, type StationCommand } from './context.js';
import { EXIT, reportError } from './exit.js';

/** `station rotate-key`. */
export const rotateKeyCommand: StationCommand = {
  name: 'rotate-key',
  summary: 'new station key: online with the registry, or hand-carried (resumes a pending one)',
  synopsis: '[--out REQUEST.json | --answer ANSWER.json] [options]',
  details:
    'Hand-carried: station rotate-key --out REQUEST.json; at headquarters registry rotate-station-key --request\n' +
    'REQUEST.json --out ANSWER.json; then station rotate-key --answer ANSWER.json. Stop station serve and watch first.',
  options: {
    out: { type: 'string', arg: 'REQUEST.json', help: 'write the rotation request for the registry to carry' },
    answer: { type: 'string', arg: 'ANSWER.json', help: "apply the registry's answer to a request" },
    json: { type: 'boolean', help: 'the result as JSON' },
  },
  run: (args, { io: o }) =>
    withSetup(args, o, async ({ dataDir, logger }) => {
      const out = str(args, 'out');
      const answer = str(args, 'answer');
      if (out && answer) {
        o.err('rotate-key: give --out (write the request) or --answer (apply the registry answer), not both');
        return EXIT.usage;
      }
      const { rotateStationKey } = await import('../rotate-key.js');
      const r = await rotateStationKey({
        dataDir,
        logger,
        mode: out
          ? { kind: 'request', out: resolve(out) }
          : answer
            ? { kind: 'answer', file: resolve(answer) }
            : { kind: 'online' },
      });
      if (!r.ok) return reportError(o, r.error);
      const v = r.value;
      if (flagOn(args, 'json')) o.out(JSON.stringify(v, null, 2));
      else if (v.status === 'requested')
        o.out(
          `key rotation ${v.requestId} requested${v.resumed ? ' (pending request written again)' : ''}: new key "${v.newLabel}" generated, not in use yet\n` +
            `  request written to ${v.out}; at headquarters: registry rotate-station-key --request FILE --out ANSWER.json\n` +
            `  then: station rotate-key --answer ANSWER.json --data-dir ${dataDir}`,
        );
      else
        o.out(
          `station key rotated${v.resumed ? ' (resumed)' : ''}: now "${v.newLabel}" (certificate ${v.certificateSha256.slice(0, 16)}...), ` +
            `registry switched at ${v.rotatedAt ?? '?'}; old key "${v.oldLabel}" destroyed\n  new chain: ${v.chainFile}`,
        );
      return EXIT.ok;
    }),
};
