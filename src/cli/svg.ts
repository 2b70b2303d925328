/**
 * Grouped bar charts as standalone SVG, in the style of the FlashAttention papers' speed plots:
 * one group per sequence length, one bar per implementation, the value printed on each bar.
 * Hand-written so the bench can emit figures without a plotting dependency.
 */
import { OptionError } from '../errors.js';

export interface BarSeries {
  name: string;
  /** One per group; null (or a non-finite number) leaves a gap, e.g. a config a baseline can't run. */
  values: (number | null)[];
}

export interface BarChartSpec {
  title: string;
  /** X categories, e.g. sequence lengths "512", "1k", ... */
  groups: string[];
  series: BarSeries[];
  yLabel: string;
  xLabel?: string;
  /** Pixel size of the chart; defaults 560 x 360. */
  width?: number;
  height?: number;
}

/** Tableau 10: distinguishable, print-safe, and fixed so a series keeps its colour across panels. */
export const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
  '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
] as const;

const FONT = 'Helvetica, Arial, sans-serif';
const INK = '#222';
const MUTED = '#555';
const GRID = '#e3e3e3';

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Coordinates rounded to 0.01 px keep the files small without visible error. */
function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** Rough advance width of Helvetica text; enough to lay out legends and decide label rotation. */
function textWidth(s: string, size: number): number {
  return [...s].length * size * 0.58;
}

function text(x: number, y: number, s: string, attrs: string): string {
  return `<text x="${n(x)}" y="${n(y)}" ${attrs}>${escapeXml(s)}</text>`;
}

export function formatValue(v: number): string {
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return String(Number(v.toPrecision(3)));
}

/** A 1/2/2.5/5 x 10^k step giving about `target` intervals over `span`. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

function decimalsOf(step: number): number {
  let d = 0;
  while (d < 12 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d++;
  return d;
}

function validate(spec: BarChartSpec, where: string): void {
  if (!Array.isArray(spec.groups) || !Array.isArray(spec.series)) {
    throw new OptionError('a bar chart needs groups and series arrays', { param: where });
  }
  spec.series.forEach((s, i) => {
    if (!Array.isArray(s.values) || s.values.length !== spec.groups.length) {
      throw new OptionError(`series "${s.name}" has ${s.values?.length} values for ${spec.groups.length} groups`, {
        param: `${where}.series[${i}].values`,
        fix: 'give one value per group, null where there is no measurement',
      });
    }
  });
  for (const k of ['width', 'height'] as const) {
    const v = spec[k];
    if (v !== undefined && !(Number.isFinite(v) && v >= 120)) {
      throw new OptionError('chart size must be a number of pixels >= 120', { param: `${where}.${k}`, value: v });
    }
  }
}

interface Rendered {
  width: number;
  height: number;
  body: string;
}

function renderChart(spec: BarChartSpec, where: string): Rendered {
  validate(spec, where);
  const W = spec.width ?? 560;
  const H = spec.height ?? 360;
  const out: string[] = [];
  const left = 62;
  const right = W - 14;
  const plotW = right - left;

  out.push(text(W / 2, 22, spec.title, `text-anchor="middle" font-size="15" font-weight="bold" fill="${INK}"`));

  // Legend: swatch + name items flowed into rows under the title.
  const legendSize = 11;
  let lx = left;
  let ly = 42;
  spec.series.forEach((s, i) => {
    const w = 12 + 5 + textWidth(s.name, legendSize) + 16;
    if (lx > left && lx + w > right) {
      lx = left;
      ly += 17;
    }
    out.push(
      `<rect class="legend-swatch" x="${n(lx)}" y="${n(ly - 10)}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`,
      text(lx + 17, ly, s.name, `font-size="${legendSize}" fill="${INK}"`),
    );
    lx += w;
  });

  const top = spec.series.length > 0 ? ly + 16 : 36;
  const bottom = H - (spec.xLabel ? 44 : 28);
  const plotH = bottom - top;

  const nG = Math.max(1, spec.groups.length);
  const nS = Math.max(1, spec.series.length);
  const groupW = plotW / nG;
  const inner = groupW * 0.82;
  const barW = inner / nS;
  const labelSize = Math.max(7, Math.min(10, barW * 0.55));

  const finite = spec.series.flatMap((s) => s.values).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const label = (v: number) => formatValue(v);
  const rotated = finite.some((v) => textWidth(label(v), labelSize) > barW + 2);
  const labelExtent = rotated ? Math.max(0, ...finite.map((v) => textWidth(label(v), labelSize))) + 4 : labelSize + 4;

  // Y domain: nice ticks, grown until the tallest bar's label fits below the top of the plot.
  const maxV = Math.max(0, ...finite);
  const minV = Math.min(0, ...finite);
  const span = maxV - minV || 1;
  const step = niceStep(span, 5);
  let yMin = Math.floor(minV / step) * step;
  let yMax = Math.ceil(maxV / step) * step;
  if (yMax <= yMin) yMax = yMin + span; // no data, or all zeros: show an empty 0..1 axis
  const room = (v: number) => (plotH * v) / (yMax - yMin);
  for (let k = 0; k < 20 && maxV > 0 && room(yMax - maxV) < labelExtent; k++) yMax += step;
  for (let k = 0; k < 20 && minV < 0 && room(minV - yMin) < labelExtent; k++) yMin -= step;
  const y = (v: number) => bottom - ((v - yMin) / (yMax - yMin)) * plotH;

  const decimals = decimalsOf(step);
  for (let k = 0, t = yMin; t <= yMax + step * 1e-9; k++, t = yMin + k * step) {
    const yy = y(t);
    out.push(`<line class="grid" x1="${n(left)}" y1="${n(yy)}" x2="${n(right)}" y2="${n(yy)}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(left - 6, yy + 3.5, t.toFixed(decimals), `text-anchor="end" font-size="10" fill="${MUTED}"`));
  }
  out.push(
    text(16, top + plotH / 2, spec.yLabel, `text-anchor="middle" font-size="12" fill="${INK}" transform="rotate(-90 16 ${n(top + plotH / 2)})"`),
  );

  spec.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    s.values.forEach((v, gi) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return;
      const x = left + gi * groupW + (groupW - inner) / 2 + si * barW;
      const w = barW > 4 ? barW - 1 : barW; // a hairline gap keeps neighbouring bars apart
      const y0 = y(0);
      const y1 = y(v);
      const tip = `${s.name}, ${spec.groups[gi]}: ${formatValue(v)}`;
      out.push(
        `<rect class="bar" x="${n(x)}" y="${n(Math.min(y0, y1))}" width="${n(w)}" height="${n(Math.abs(y0 - y1))}" fill="${color}"><title>${escapeXml(tip)}</title></rect>`,
      );
      const cx = x + w / 2;
      const up = v >= 0;
      const attrs = `font-size="${n(labelSize)}" fill="${INK}"`;
      if (rotated) {
        const ty = up ? y1 - 3 : y1 + 3;
        out.push(text(cx + labelSize * 0.35, ty, label(v), `${attrs} text-anchor="${up ? 'start' : 'end'}" transform="rotate(-90 ${n(cx + labelSize * 0.35)} ${n(ty)})"`));
      } else {
        out.push(text(cx, up ? y1 - 3 : y1 + labelSize + 1, label(v), `${attrs} text-anchor="middle"`));
      }
    });
  });

  // Axes on top of the bars so the baseline stays crisp.
  out.push(`<line class="axis" x1="${n(left)}" y1="${n(top)}" x2="${n(left)}" y2="${n(bottom)}" stroke="${INK}" stroke-width="1"/>`);
  out.push(`<line class="axis" x1="${n(left)}" y1="${n(y(0))}" x2="${n(right)}" y2="${n(y(0))}" stroke="${INK}" stroke-width="1"/>`);
  spec.groups.forEach((g, gi) => {
    const cx = left + (gi + 0.5) * groupW;
    out.push(text(cx, bottom + 16, g, `text-anchor="middle" font-size="11" fill="${INK}"`));
  });
  if (spec.xLabel) out.push(text(left + plotW / 2, H - 10, spec.xLabel, `text-anchor="middle" font-size="12" fill="${INK}"`));

  return { width: W, height: H, body: out.join('\n') };
}

function svgDocument(width: number, height: number, body: string): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="${FONT}">`,
    `<rect class="background" width="100%" height="100%" fill="#fff"/>`,
    body,
    `</svg>`,
    '',
  ].join('\n');
}

/** One grouped bar chart as a standalone SVG document. */
export function barChartSvg(spec: BarChartSpec): string {
  const r = renderChart(spec, 'spec');
  return svgDocument(r.width, r.height, r.body);
}

/**
 * Several charts in one SVG, `columns` per row, each in a cell as large as the largest chart,
 * with an optional overall title (e.g. the GPU and dtype the sweep ran on).
 */
export function panelGridSvg(panels: BarChartSpec[], columns: number, opts: { title?: string } = {}): string {
  if (!Number.isInteger(columns) || columns < 1) {
    throw new OptionError('panel grid columns must be a positive integer', { param: 'columns', value: columns });
  }
  const rendered = panels.map((p, i) => renderChart(p, `panels[${i}]`));
  const cellW = Math.max(0, ...rendered.map((r) => r.width));
  const cellH = Math.max(0, ...rendered.map((r) => r.height));
  const cols = Math.min(columns, Math.max(1, rendered.length));
  const head = opts.title ? 36 : 0;
  const width = Math.max(cols * cellW, 200);
  const height = head + Math.ceil(rendered.length / cols) * cellH;
  const parts: string[] = [];
  if (opts.title) parts.push(text(width / 2, 25, opts.title, `text-anchor="middle" font-size="18" font-weight="bold" fill="${INK}"`));
  rendered.forEach((r, i) => {
    const x = (i % cols) * cellW + (cellW - r.width) / 2;
    const y = head + Math.floor(i / cols) * cellH + (cellH - r.height) / 2;
    parts.push(`<g class="panel" transform="translate(${n(x)} ${n(y)})">\n${r.body}\n</g>`);
  });
  return svgDocument(width, Math.max(height, 40), parts.join('\n'));
}
