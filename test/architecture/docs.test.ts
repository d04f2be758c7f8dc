/**
 * docs/architecture.md cannot go stale on the folder graph: its generated block equals what scripts/arch-graph.ts
 * prints for the code as it is (regenerate with `npm run arch:graph -- --write`). Every top-level folder has a
 * README that says what it may import and where its tests are; the doc names every folder of the layer table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, archBlock, replaceBlock } from '../../scripts/arch-graph.js';
import { readGraph } from '../../scripts/architecture/graph.js';
import { CODE_FOLDERS } from '../../scripts/architecture/layers.mjs';

const root = resolve(import.meta.dirname, '../..');
const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');

describe('docs/architecture.md', () => {
  it('has the folder graph of the code as it is (npm run arch:graph -- --write)', () => {
    const a = doc.indexOf(BEGIN);
    const b = doc.indexOf(END);
    expect(a, 'the generated block is missing').toBeGreaterThanOrEqual(0);
    expect(doc.slice(a, b + END.length)).toBe(archBlock(readGraph(root)));
  });

  it('the block is replaced in place (what --write does)', () => {
    const text = `intro\n${BEGIN}\nold\n${END}\noutro\n`;
    expect(replaceBlock(text, `${BEGIN}\nnew\n${END}`)).toBe(`intro\n${BEGIN}\nnew\n${END}\noutro\n`);
    expect(() => replaceBlock('no block', 'x')).toThrow(/no .* block/);
  });

  it('names every top-level code folder and the ports', () => {
    for (const f of CODE_FOLDERS) expect(doc, f).toContain(`\`${f}/\``);
    for (const p of ['core/ports.ts', 'core/provisioning/store.ts', 'core/hq/registry-db.ts'])
      expect(doc, p).toContain(p);
  });
});

describe('folder READMEs', () => {
  it.each([...CODE_FOLDERS, 'resources'])(
    '%s/README.md says what lives there, what it may import, where its tests are',
    (f) => {
      const path = join(root, f, 'README.md');
      expect(existsSync(path), path).toBe(true);
      const text = readFileSync(path, 'utf8');
      expect(text.startsWith(`# ${f}/`)).toBe(true);
      expect(text).toMatch(/\*\*Tests:\*\*|\*\*Run:\*\*/);
      if (f !== 'resources') expect(text).toContain('**May import:**');
    },
  );
});
