/**
 * Generate the files derived from the board profiles (resources/boards/*.json):
 *   resources/udev/70-line-station.rules            udev rules for the profiles' USB VID/PIDs
 *   resources/boards/schema/board-profile.v1.schema.json   JSON Schema of a profile file (for editors)
 * Usage: npx tsx scripts/gen-udev.ts [--check]   (--check: exit 1 if a committed file is stale)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { boardProfileJsonSchema, renderUdevRules } from '../core/provisioning/profiles.js';
import { loadProfilesFromDir } from '../native/profiles-fs.js';

const boards = new URL('../resources/boards/', import.meta.url).pathname;
const outputs = [
  { file: new URL('../resources/udev/70-line-station.rules', import.meta.url).pathname, render: renderUdevRules },
  {
    file: new URL('../resources/boards/schema/board-profile.v1.schema.json', import.meta.url).pathname,
    // formatted as Prettier would, so `npm run format` leaves it alone
    render: () => JSON.stringify(boardProfileJsonSchema(), null, 2),
    prettier: true,
  },
];

const r = loadProfilesFromDir(boards);
if (!r.ok) {
  console.error(`gen-udev: ${r.error.message}`);
  process.exit(2);
}
const check = process.argv.includes('--check');
let stale = 0;
for (const o of outputs) {
  let text = o.render(r.value);
  if ('prettier' in o) text = await format(text, { ...(await resolveConfig(o.file)), filepath: o.file });
  if (check) {
    let current = '';
    try {
      current = readFileSync(o.file, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error(`gen-udev: ${o.file} is stale; run npx tsx scripts/gen-udev.ts`);
      stale++;
    } else console.log(`gen-udev: ${o.file} is up to date`);
  } else {
    mkdirSync(dirname(o.file), { recursive: true });
    writeFileSync(o.file, text);
    console.log(`gen-udev: wrote ${o.file} (${r.value.length} profiles)`);
  }
}
process.exit(stale > 0 ? 1 : 0);
