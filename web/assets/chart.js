// Charts drawn as SVG by hand: horizontal bar charts for counts and
// amounts, and a sparkline. Colours come from app.css classes.

import { s } from './dom.js';

// barChart draws one horizontal bar per item {label, value, text?, class?}.
// Negative values grow left of the zero line. text is the value as shown
// (default: the number). The chart scales to its container's width.
export function barChart(items, { title = '', testid = null, width = 640 } = {}) {
  const rowH = 30;
  const labelW = Math.min(200, Math.max(80, Math.round(width * 0.28)));
  const valueW = 130;
  const top = 6;
  const height = top * 2 + Math.max(1, items.length) * rowH;
  const plotX = labelW + 8;
  const plotW = width - plotX - valueW;
  // Values may be BigInt (amounts beyond 2^53): a chart needs only
  // their size.
  items = items.map((i) => ({ ...i, value: Number(i.value) }));
  const max = Math.max(0, ...items.map((i) => i.value));
  const min = Math.min(0, ...items.map((i) => i.value));
  const span = max - min || 1;
  const x = (v) => plotX + ((v - min) / span) * plotW;
  const svg = s('svg', {
    class: 'chart bar-chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': title || 'bar chart', 'data-testid': testid, preserveAspectRatio: 'xMinYMin meet',
  }, s('title', null, title));
  if (items.length === 0) {
    svg.append(s('text', { x: width / 2, y: height / 2 + 4, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data'));
    return svg;
  }
  items.forEach((it, i) => {
    const y = top + i * rowH;
    const x0 = x(0);
    const x1 = x(it.value);
    const g = s('g', { class: 'bar ' + (it.class ?? 'c' + (i % 6)), 'data-label': it.label },
      s('title', null, `${it.label}: ${it.text ?? it.value}`),
      s('text', { x: labelW, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'chart-label' }, clip(it.label, 26)),
      s('rect', { x: Math.min(x0, x1), y: y + 5, width: Math.max(Math.abs(x1 - x0), it.value ? 2 : 0), height: rowH - 10, rx: 3 }),
      s('text', { x: Math.max(x0, x1) + 6, y: y + rowH / 2 + 4, class: 'chart-value' }, it.text ?? String(it.value)));
    svg.append(g);
  });
  if (min < 0) svg.append(s('line', { x1: x(0), x2: x(0), y1: top, y2: height - top, class: 'chart-axis' }));
  return svg;
}

function clip(t, n) {
  t = String(t);
  return t.length > n ? t.slice(0, n - 1) + '…' : t;
}

// sparkline draws a small line chart of the values, newest last.
export function sparkline(values, { width = 240, height = 48, title = '' } = {}) {
  const svg = s('svg', { class: 'chart sparkline', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'none' },
    s('title', null, title));
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 3 - (v / max) * (height - 6)).toFixed(1)}`);
  svg.append(s('polyline', { points: [`0,${height}`, ...pts, `${width},${height}`].join(' '), class: 'spark-area' }));
  svg.append(s('polyline', { points: pts.join(' '), class: 'spark-line' }));
  return svg;
}
