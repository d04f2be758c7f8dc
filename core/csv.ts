/**
 * CSV for the supervisor's reports (station/reports.ts), as RFC 4180 writes it except for the line end: fields
 * separated by commas, a field quoted (inner quotes doubled) when it holds a comma, a quote, CR or LF, and every
 * record ended by LF (not CRLF: every CSV reader takes both, and the station's terminal-safe output and UI transport
 * show a CR as the text `\u000d`). A text field a spreadsheet would evaluate as a formula (first character `=`, `+`,
 * `-`, `@`, tab or CR) is prefixed with a single quote, as OWASP recommends against CSV injection: serial numbers,
 * operator names and error messages come from boards, files and people. Numbers and booleans are written as they
 * are. Pure; imports nothing.
 */

/** One field value; null and undefined are written as an empty field. */
export type CsvCell = string | number | boolean | null | undefined;

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One field, escaped. */
export function csvCell(v: CsvCell): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const text = FORMULA_START.test(v) ? `'${v}` : v;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record: the escaped fields joined by commas, ended by LF. */
export function csvLine(cells: readonly CsvCell[]): string {
  return `${cells.map(csvCell).join(',')}\n`;
}
