/**
 * Layout checks for the end-to-end tests: text the UI cuts (an element narrower than its content, with its overflow
 * hidden or ellipsised) or that sticks out of its slot tile. Runs in the page; returns one line per problem.
 */
import type { Page } from 'playwright-core';

/** The selectors whose text must be shown whole in every slot tile: step names, state, error texts. */
export const TILE_TEXT = '.step, .tile-state, .tile-state *, .verdict, .error-text p, .tile-note, .btn';

/** What the check reads of an element (the root tsconfig has no DOM lib). */
interface El {
  getBoundingClientRect(): { left: number; right: number; bottom: number; width: number; height: number };
  checkVisibility(o?: { contentVisibilityAuto?: boolean }): boolean;
  querySelectorAll(selector: string): ArrayLike<El>;
  getAttribute(name: string): string | null;
  readonly scrollWidth: number;
  readonly clientWidth: number;
  readonly scrollHeight: number;
  readonly clientHeight: number;
  readonly className: string;
  readonly tagName: string;
  readonly textContent: string | null;
}

/**
 * Elements under `.tile` matching `selector` whose text is cut (scrollWidth > clientWidth, or scrollHeight >
 * clientHeight) or whose box leaves its tile's box. Only rendered (visible) elements count.
 */
export async function cutText(page: Page, selector = TILE_TEXT): Promise<string[]> {
  return page.locator('.tile').evaluateAll((elements, sel) => {
    const out: string[] = [];
    for (const tile of elements as unknown as El[]) {
      const t = tile.getBoundingClientRect();
      for (const el of Array.from(tile.querySelectorAll(sel))) {
        const r = el.getBoundingClientRect();
        // not rendered: display none, or the content of a closed <details>
        if ((r.width === 0 && r.height === 0) || !el.checkVisibility({ contentVisibilityAuto: true })) continue;
        const port = tile.getAttribute('data-port') ?? '?';
        const what = `${port} ${el.className || el.tagName} "${(el.textContent ?? '').slice(0, 40)}"`;
        if (el.scrollWidth > el.clientWidth + 1) out.push(`${what}: cut (${el.scrollWidth} > ${el.clientWidth} px)`);
        if (el.scrollHeight > el.clientHeight + 1)
          out.push(`${what}: cut (${el.scrollHeight} > ${el.clientHeight} px high)`);
        if (r.left < t.left - 1 || r.right > t.right + 1 || r.bottom > t.bottom + 1)
          out.push(`${what}: outside its tile`);
      }
    }
    return out;
  }, selector);
}
