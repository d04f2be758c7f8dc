/**
 * Test support: run the `station` CLI in this process (`main` of station/cli/program.ts) with PINs in the
 * environment, as an operator's shell would pass them; the output lines joined, the variables restored afterwards.
 */
import { main } from '../station/cli/program.js';

/** The exit code and the output (stdout and stderr lines, in order) of `station ARGS` with `env` set. */
export async function runStationCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number; text: string }> {
  const out: string[] = [];
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const code = await main([...args], { out: (s) => out.push(s), err: (s) => out.push(s) });
    return { code, text: out.join('\n') };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** `station provision` of the board on `port` for `workOrder`, signed in as `operator` (arguments, without extras). */
export function provisionArgs(dataDir: string, port: string, workOrder: string, operator = 'op-1'): string[] {
  return ['provision', '--data-dir', dataDir, '--port', port, '--work-order', workOrder, '--operator', operator];
}
