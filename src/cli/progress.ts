/**
 * A dependency-free progress bar for long CLI runs (benchmark sweeps, test grids).
 *
 * On a terminal it redraws one line in place. Elsewhere (CI logs, files) a line per redraw would
 * bury the log, so it prints one line each time another tenth of the work is done.
 */
import { OptionError } from '../errors.js';

/** The part of a stream the bar uses; process.stderr and process.stdout both fit. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  label?: string;
  /** Defaults to stderr so that stdout stays clean for piping results. */
  stream?: ProgressStream;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

const BAR_WIDTH = 24;
/** Terminal redraws closer together than this are skipped; the eye can't follow them anyway. */
const REDRAW_MS = 80;

/** 950 ms -> "0.9s", 75 s -> "1m15s", 4000 s -> "1h06m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = ms / 1000;
  if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export class ProgressBar {
  private readonly total: number;
  private readonly label: string;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly start: number;
  private readonly tty: boolean;
  private count = 0;
  private detail = '';
  private lastDraw = -Infinity;
  private lastWidth = 0;
  private lastDecile = 0;
  private finished = false;

  constructor(total: number, opts: ProgressOptions = {}) {
    if (!Number.isFinite(total) || total < 0) {
      throw new OptionError('ProgressBar total must be a finite non-negative number', { param: 'total', value: total });
    }
    this.total = total;
    this.label = opts.label ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
    this.tty = this.stream.isTTY === true;
  }

  /** Marks one more unit done; `detail` names what was just finished (or is running next). */
  tick(detail?: string): void {
    if (this.finished) return;
    this.count++;
    if (detail !== undefined) this.detail = detail;
    if (this.tty) {
      const t = this.now();
      if (t - this.lastDraw >= REDRAW_MS || this.count >= this.total) this.draw(t);
      return;
    }
    const decile = this.total === 0 ? 10 : Math.floor((Math.min(this.count, this.total) * 10) / this.total);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(`${this.line(this.now(), false)}\n`);
    }
  }

  /** Ends the bar; safe to call more than once, and before all ticks happened (on errors). */
  done(): void {
    if (this.finished) return;
    this.finished = true;
    const t = this.now();
    if (this.tty) {
      this.draw(t);
      this.stream.write('\n');
    } else if (this.lastDecile < 10 || this.total === 0) {
      // The last decile line already said 100%; otherwise say where we stopped.
      this.stream.write(`${this.line(t, false)}\n`);
    }
  }

  private draw(t: number): void {
    this.lastDraw = t;
    let text = this.line(t, true);
    // A line that wraps can't be redrawn with \r, so cut it to the terminal width.
    const cols = this.stream.columns;
    if (cols !== undefined && cols > 1 && text.length > cols - 1) text = text.slice(0, cols - 1);
    const clear = ' '.repeat(Math.max(0, this.lastWidth - text.length));
    this.lastWidth = text.length;
    this.stream.write(`\r${text}${clear}`);
  }

  private line(t: number, withBar: boolean): string {
    const elapsed = t - this.start;
    const done = Math.min(this.count, this.total);
    const frac = this.total === 0 ? 1 : done / this.total;
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    if (withBar) {
      const full = Math.round(frac * BAR_WIDTH);
      parts.push(`[${'#'.repeat(full)}${'.'.repeat(BAR_WIDTH - full)}]`);
    }
    parts.push(`${this.count}/${this.total}`, `${Math.floor(frac * 100)}%`.padStart(4), `elapsed ${formatDuration(elapsed)}`);
    if (done < this.total) {
      parts.push(`eta ${done === 0 ? '--' : formatDuration((elapsed / done) * (this.total - done))}`);
    }
    if (this.detail) parts.push(this.detail);
    return parts.join('  ');
  }
}
