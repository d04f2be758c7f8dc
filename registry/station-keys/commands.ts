/**
 * `registry` commands of the station-keys feature (docs/lifecycle.md "Station key rotation"): rotate-station-key
 * (apply a hand-carried rotation request, the station's `rotate-key --out` file, and write the signed answer file
 * for `station rotate-key --answer`) and station-keys (a station's current and replaced keys). Imports core/,
 * native/atomic-file.ts and registry/cli/; the lifecycle service when a command runs.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { flagOn } from '../../core/cli/program.js';
import { writeFileAtomic } from '../../native/atomic-file.js';
import type { stationKeyRotation } from './rotation.js';
import { fileProblem, given, JSON_OPTION, printJson, usage, type Out, type RegistryCommand } from '../cli/command.js';
import { answer, reportGuided, type Refusal } from '../cli/report.js';

/** The signed request in a rotation request file (at most 256 KiB), or the refusal. */
async function readRequest(file: string): Promise<{ request: string } | Refusal> {
  const [{ KeyRotationRequestFileSchema }, { zodMessage }] = await Promise.all([
    import('../../core/hq/key-rotation.js'),
    import('../../core/zod-message.js'),
  ]);
  try {
    const raw = readFileSync(file);
    if (raw.length > 256 * 1024) return { code: 'INPUT_INVALID', message: `${file}: larger than 256 KiB` };
    const p = KeyRotationRequestFileSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!p.success)
      return { code: 'INPUT_INVALID', message: `${file}: not a station key rotation request (${zodMessage(p.error)})` };
    return { request: p.data.request };
  } catch (e) {
    return { code: 'INPUT_INVALID', message: `${file}: ${fileProblem(e)}` };
  }
}

type Rotation = Extract<Awaited<ReturnType<typeof stationKeyRotation>>, { ok: true }>['value'];

function printRotation(out: Out, r: Rotation, outFile: string | undefined): void {
  out.log(
    `station ${r.stationId}: key rotated${r.repeated ? ' (request applied before: same answer)' : ''} at ${r.rotatedAt}, ` +
      `certificate ${r.previousCertificateSha256.slice(0, 16)}... -> ${r.certificateSha256.slice(0, 16)}...\n` +
      (outFile
        ? `  answer written to ${resolve(outFile)}: give it to the station (station rotate-key --answer FILE)`
        : '  no --out given: the station needs the answer file (run again with --out ANSWER.json, same answer)'),
  );
}

const rotate: RegistryCommand = {
  name: 'rotate-station-key',
  summary: 'apply a hand-carried station key rotation request (station rotate-key --out); write its answer',
  details: 'Applying the same request again gives the same answer.',
  options: {
    request: {
      type: 'string',
      arg: 'REQUEST.json',
      help: 'the station’s request file (station rotate-key --out)',
      required: true,
    },
    out: { type: 'string', arg: 'ANSWER.json', help: 'where to write the signed answer file' },
    ...JSON_OPTION,
  },
  opens: 'registry',
  hsm: true,
  acting: 'admin-or-officer',
  async run(a, { ctx, out, role }) {
    const file = given(a, 'request');
    const outFile = given(a, 'out');
    if (!file) return usage('rotate-station-key needs --request REQUEST.json [--out ANSWER.json]');
    const req = await readRequest(file);
    if (!('request' in req)) return reportGuided(out, req);
    const [{ stationKeyRotation }, { KEY_ROTATION_ANSWER_FILE }] = await Promise.all([
      import('./rotation.js'),
      import('../../core/hq/key-rotation.js'),
    ]);
    const r = await stationKeyRotation(ctx, req.request, { via: 'hand-carried', actor: role });
    if (!r.ok) return reportGuided(out, r.error);
    const answerFile = {
      schema: KEY_ROTATION_ANSWER_FILE,
      stationId: r.value.stationId,
      requestId: r.value.requestId,
      answer: r.value.answer,
    };
    if (outFile) {
      try {
        writeFileAtomic(outFile, JSON.stringify(answerFile, null, 2) + '\n');
      } catch (e) {
        return reportGuided(out, { code: 'INPUT_INVALID', message: `cannot write ${outFile}: ${fileProblem(e)}` });
      }
    }
    if (flagOn(a, 'json')) printJson(out, { ...r.value, ...(outFile ? { out: resolve(outFile) } : {}) });
    else printRotation(out, r.value, outFile);
    return 'ok';
  },
};

const history: RegistryCommand = {
  name: 'station-keys',
  summary: "a station's current and replaced keys, with their times",
  options: { ...JSON_OPTION },
  positionals: [{ name: 'STATION', help: 'the station id', required: true }],
  opens: 'registry',
  hsm: false,
  acting: 'admin-or-officer',
  async run(a, { ctx, out }) {
    const id = a.positionals[0];
    if (!id) return usage('station-keys needs exactly one STATION id');
    const { stationKeyHistory } = await import('./history.js');
    return answer(a, out, await stationKeyHistory(ctx, id), reportGuided, (h) => {
      out.log(`station ${id}${h.revokedAt ? ` (revoked at ${h.revokedAt})` : ''}: ${h.keys.length} key(s)`);
      for (const k of h.keys)
        out.log(
          `  ${k.replacedAt ? 'replaced' : 'current '}  ${k.certificateSha256}  serial ${k.serialNumber}  in use ${k.since} .. ${k.replacedAt ?? 'now'}  (valid to ${k.notAfter})`,
        );
    });
  },
};

/** The station-keys feature's commands. */
export const STATION_KEY_COMMANDS: readonly RegistryCommand[] = [rotate, history];
