/** One-line summaries of zod validation failures, for coded errors at every boundary. */
import type { z } from 'zod';

/** One-line summary of zod issues (path: message; ...). */
export function zodMessage(e: z.ZodError, prefix?: string): string {
  return e.issues
    .slice(0, 5)
    .map((i) => {
      const path = [...(prefix === undefined ? [] : [prefix]), ...i.path.map(String)];
      return `${path.length ? path.join('.') : '(root)'}: ${i.message}`;
    })
    .join('; ');
}
