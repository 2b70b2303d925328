/**
 * Plain-text tables for CLI output. The layout is a GitHub-flavoured Markdown pipe table, so the
 * same text reads well in a terminal and renders as a table when pasted into an issue or README.
 *
 *   | seqlen | flash3 ms | note |
 *   |-------:|----------:|------|
 *   |    512 |     0.041 | warm |
 */

export type Align = 'l' | 'r';

export interface TableOptions {
  /** Per-column alignment; columns left out are right-aligned if every cell looks numeric. */
  align?: Align[];
}

/** Numbers as benchmarks print them: plain, signed, exponent, or with a %, x or unit suffix. */
const NUMERIC = /^[-+]?(\d[\d,_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*(%|x|×|[a-zµ]{0,2}s|[KMGT]?i?B|TFLOPs?(\/s)?)?$/;

function cellText(v: string | number): string {
  // Newlines and pipes would break the row structure.
  return String(v).replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

function looksNumeric(v: string | number): boolean {
  if (typeof v === 'number') return true;
  const s = v.trim();
  return NUMERIC.test(s) || s === 'NaN' || s === 'inf' || s === '-inf' || s === '—' || s === '-';
}

/** Display width in code points (good enough for the Latin text and µ/× glyphs we print). */
function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, align: Align): string {
  const fill = ' '.repeat(w - width(s));
  return align === 'r' ? fill + s : s + fill;
}

/**
 * Renders `rows` under `headers`. Numbers are printed with String(); format them first for a
 * fixed number of decimals. Rows may be ragged: missing cells are blank.
 */
export function formatTable(headers: string[], rows: (string | number)[][], opts: TableOptions = {}): string {
  const ncol = Math.max(headers.length, ...rows.map((r) => r.length));
  const head = Array.from({ length: ncol }, (_, c) => cellText(headers[c] ?? ''));
  const body = rows.map((r) => Array.from({ length: ncol }, (_, c) => cellText(r[c] ?? '')));

  const align: Align[] = Array.from({ length: ncol }, (_, c) => {
    const given = opts.align?.[c];
    if (given !== undefined) return given;
    const cells = rows.map((r) => r[c]).filter((v) => v !== undefined && v !== '');
    return cells.length > 0 && cells.every((v) => looksNumeric(v as string | number)) ? 'r' : 'l';
  });
  // Markdown needs at least three dashes per column.
  const widths = head.map((h, c) => Math.max(3, width(h), ...body.map((r) => width(r[c]))));

  const line = (cells: string[]) => `| ${cells.map((s, c) => pad(s, widths[c], align[c])).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (align[c] === 'r' ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}
