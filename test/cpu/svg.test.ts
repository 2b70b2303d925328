import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { barChartSvg, escapeXml, formatValue, panelGridSvg, PALETTE, type BarChartSpec } from '../../src/cli/svg.js';
import { OptionError } from '../../src/errors.js';

const spec: BarChartSpec = {
  title: 'Forward <causal> & "hdim" 128',
  groups: ['512', '1k', '2k', '4k'],
  yLabel: 'Speed (TFLOPs/s)',
  xLabel: 'Sequence length',
  series: [
    { name: 'FA2', values: [239, 289, null, 335] },
    { name: 'cuDNN', values: [302, 412, 495, NaN] },
    { name: "flash3 'fp16'", values: [332, 461, 567, 625] },
  ],
};

/** Well-formedness check without an XML library: every tag closes in order, entities are known. */
function assertWellFormed(svg: string): void {
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(body); m; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    assert.ok(!/[<>]/.test(between), `stray markup before ${m[0]}: ${between}`);
    assert.ok(!/&(?!(amp|lt|gt|quot|apos);)/.test(between), `bad entity in ${between}`);
    last = tag.lastIndex;
    if (m[1]) assert.equal(stack.pop(), m[2], `close tag ${m[2]}`);
    else if (!m[4]) stack.push(m[2]);
    if (stack.length === 0) assert.equal(body.slice(last).trim(), '', 'content after root');
  }
  assert.deepEqual(stack, []);
  assert.ok(last > 0);
}

const count = (s: string, needle: string) => s.split(needle).length - 1;
const hasPython = spawnSync('python3', ['-c', 'import xml.etree.ElementTree'], { stdio: 'ignore' }).status === 0;

test('bar chart is a well-formed standalone SVG with one rect per finite value', () => {
  const svg = barChartSvg(spec);
  assert.match(svg, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="560" height="360"/);
  assertWellFormed(svg);
  assert.equal(count(svg, '<rect class="bar"'), 10); // 12 slots, one null, one NaN
  assert.equal(count(svg, '<rect class="legend-swatch"'), 3);
  assert.ok(!svg.includes('NaN') && !svg.includes('undefined') && !svg.includes('Infinity'));
  for (const c of PALETTE.slice(0, 3)) assert.ok(svg.includes(`fill="${c}"`));
});

test('text is escaped', () => {
  const svg = barChartSvg(spec);
  assert.ok(svg.includes('Forward &lt;causal&gt; &amp; &quot;hdim&quot; 128'));
  assert.ok(svg.includes('flash3 &apos;fp16&apos;'));
  assert.ok(!svg.includes('<causal>'));
  assert.equal(escapeXml(`a<b>&"'`), 'a&lt;b&gt;&amp;&quot;&apos;');
});

test('value labels, axis labels and group labels are all there', () => {
  const svg = barChartSvg(spec);
  for (const s of ['>625<', '>239<', '>Speed (TFLOPs/s)<', '>Sequence length<', '>512<', '>4k<']) assert.ok(svg.includes(s), s);
  // Gridline ticks go past the tallest bar, so its label has room.
  const ticks = [...svg.matchAll(/text-anchor="end" font-size="10" fill="#555">([\d.]+)</g)].map((m) => Number(m[1]));
  assert.equal(ticks[0], 0);
  assert.ok(ticks[ticks.length - 1] >= 625);
});

test('formatValue keeps labels short', () => {
  assert.deepEqual([661.4, 45.27, 3.456, 0.01234, 0].map(formatValue), ['661', '45.3', '3.46', '0.0123', '0']);
});

test('degenerate inputs still render', () => {
  for (const s of [
    { ...spec, series: [] },
    { ...spec, groups: [], series: [{ name: 'a', values: [] }] },
    { ...spec, series: [{ name: 'zeros', values: [0, 0, 0, 0] }] },
    { ...spec, series: [{ name: 'nothing', values: [null, null, null, null] }] },
    { ...spec, series: [{ name: 'negative', values: [-3, 2, -0.5, 1] }] },
  ]) {
    const svg = barChartSvg(s);
    assertWellFormed(svg);
    assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'), s.series[0]?.name);
  }
});

test('panel grid lays charts out in rows with all their bars', () => {
  const panels = [spec, { ...spec, title: 'causal' }, { ...spec, title: 'hdim 256', width: 400 }];
  const svg = panelGridSvg(panels, 2, { title: 'H100 & FP16' });
  assertWellFormed(svg);
  assert.equal(count(svg, '<svg'), 1);
  assert.equal(count(svg, '<g class="panel"'), 3);
  assert.equal(count(svg, '<rect class="bar"'), 30);
  assert.match(svg, /width="1120" height="756"/); // 2 columns of 560, title band + 2 rows of 360
  assert.ok(svg.includes('H100 &amp; FP16'));
  assert.ok(svg.includes('translate(80 396)')); // the narrower chart is centred in its cell
});

test('invalid specs throw OptionError naming the field', () => {
  assert.throws(
    () => barChartSvg({ ...spec, series: [{ name: 'short', values: [1] }] }),
    (e) => e instanceof OptionError && /spec\.series\[0\]\.values/.test(e.message),
  );
  assert.throws(() => panelGridSvg([spec], 0), OptionError);
  assert.throws(() => barChartSvg({ ...spec, width: 10 }), OptionError);
});

test('python xml parser accepts the output', { skip: hasPython ? false : 'python3 not available' }, () => {
  const svg = panelGridSvg([spec, spec], 2);
  const r = spawnSync(
    'python3',
    ['-c', 'import sys, xml.etree.ElementTree as ET; r = ET.fromstring(sys.stdin.buffer.read()); print(r.tag, len(r.findall(".//{http://www.w3.org/2000/svg}rect")))'],
    { input: svg, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '{http://www.w3.org/2000/svg}svg 27'); // background + 2 x (10 bars + 3 swatches)
});
