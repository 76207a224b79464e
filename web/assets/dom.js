// Small DOM builders and the formatting every view shares. No inline
// styles or HTML strings: the panel's Content-Security-Policy allows
// neither, and text set through textContent cannot inject markup.

// h builds an element: h('a', {href: '#', class: 'x', onclick: f}, 'text', child…).
// Attribute values of true set an empty attribute; false, null and
// undefined leave it out. Children may be strings, numbers, nodes, arrays
// or null.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';

// s builds an SVG element the same way.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// replace empties el and fills it with children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ---- formatting ----

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const numFmt = new Intl.NumberFormat();

export function fmtNum(n) {
  if (n === null || n === undefined || n === '') return '—';
  return numFmt.format(n);
}

// fmtNanos shows Unix nanoseconds as a local date and time.
export function fmtNanos(ns) {
  if (ns === null || ns === undefined) return '—';
  const ms = typeof ns === 'bigint' ? Number(ns / 1000000n) : Math.floor(Number(ns) / 1e6);
  return fmtDate(new Date(ms));
}

export function fmtDate(d) {
  if (!(d instanceof Date)) d = new Date(d);
  if (Number.isNaN(d.getTime())) return '—';
  return dateFmt.format(d);
}

// fmtAgo says how long ago a date was, in words a person reads at a glance.
export function fmtAgo(d) {
  if (!d) return '—';
  if (!(d instanceof Date)) d = new Date(d);
  const s = (Date.now() - d.getTime()) / 1000;
  if (Number.isNaN(s)) return '—';
  if (s < -5) return 'in ' + fmtSeconds(-s);
  if (s < 5) return 'just now';
  return fmtSeconds(s) + ' ago';
}

export function fmtSeconds(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
  if (sec < 1) return sec.toFixed(2) + ' s';
  if (sec < 60) return (sec < 10 ? sec.toFixed(1) : Math.round(sec)) + ' s';
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m} min ${Math.round(sec % 60)} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${m % 60} min`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

// fmtUnixSeconds shows Unix seconds (the applications' opens and closes).
export function fmtUnixSeconds(sec) {
  if (sec === null || sec === undefined) return '—';
  return fmtDate(new Date(Number(sec) * 1000));
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
}

// fmtMoney shows an amount in minor units with two decimals and the
// code, as APPLICATIONS.md and 'pyvnode charity report' do for every
// currency: 12345 EUR reads "123.45 EUR". Exact for BigInt amounts.
export function fmtMoney(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const cur = currency ?? '';
  let v;
  if (typeof minor === 'bigint') v = minor;
  else if (typeof minor === 'string' && /^-?\d+$/.test(minor)) v = BigInt(minor);
  else v = BigInt(Math.trunc(Number(minor)));
  const neg = v < 0n;
  if (neg) v = -v;
  const major = v / 100n;
  const cents = String(v % 100n).padStart(2, '0');
  return `${neg ? '−' : ''}${numFmt.format(major)}.${cents} ${cur}`.trim();
}

// moneyValue is the major-unit number of an amount, for charts.
export function moneyValue(minor) {
  return Number(minor) / 100;
}

// shortHex shows the start of a long hex string; the whole is in the title.
export function shortHex(hex, n = 10) {
  if (!hex) return '—';
  return hex.length > n ? hex.slice(0, n) + '…' : hex;
}

// hexCode renders a hex string in monospace that breaks anywhere.
export function hexCode(hex, cls = '') {
  return h('code', { class: ('hex ' + cls).trim() }, hex ?? '—');
}

// recordLink links to a record in the explorer, showing a short id.
export function recordLink(id, n = 10) {
  if (!id) return '—';
  return h('a', { href: '#/record/' + id, class: 'rid', title: 'record ' + id, 'data-testid': 'record-link' }, shortHex(id, n));
}

// payloadLines renders a record's JSON payload as "key: value" lines,
// nesting maps and lists, so that a person reads what the record says.
export function payloadLines(payload, depth = 0) {
  const dl = h('dl', { class: 'payload' + (depth ? ' nested' : '') + (Array.isArray(payload) ? ' list' : '') });
  const entries = Array.isArray(payload) ? payload.map((v, i) => ['#' + (i + 1), v]) : Object.entries(payload ?? {});
  if (entries.length === 0) dl.append(h('div', { class: 'empty' }, Array.isArray(payload) ? '(empty list)' : '(empty)'));
  for (const [k, v] of entries) dl.append(h('div', { class: 'kv' }, h('dt', null, k), h('dd', null, value(v, depth))));
  return dl;
}

function value(v, depth) {
  if (v === null || typeof v !== 'object' || isBytes(v)) return scalar(v);
  // A list of plain values reads best on one line.
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object' || isBytes(x))) {
    if (v.length === 0) return h('span', { class: 'empty' }, '(empty list)');
    return h('span', { class: 'items' }, v.map((x) => h('span', { class: 'item' }, scalar(x))));
  }
  return payloadLines(v, depth + 1);
}

function isBytes(v) {
  return v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.$bytes === 'string';
}

function scalar(v) {
  if (isBytes(v)) {
    const n = Math.floor((v.$bytes.length * 3) / 4) - (v.$bytes.match(/=*$/)[0].length);
    return h('span', { class: 'bytes', title: 'base64 ' + v.$bytes }, `${n} bytes `, h('code', null, v.$bytes.length > 24 ? v.$bytes.slice(0, 24) + '…' : v.$bytes));
  }
  if (typeof v === 'boolean') return h('span', { class: 'bool' }, v ? 'yes' : 'no');
  if (typeof v === 'number' || typeof v === 'bigint') return h('span', { class: 'num' }, String(v));
  return h('span', { class: 'str' }, String(v));
}

// jsonText pretty-prints JSON, BigInt included.
export function jsonText(v) {
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number.isSafeInteger(Number(x)) ? Number(x) : x.toString() : x), 2);
}

// errorBox shows an API or network error to the person, never swallowing it.
export function errorBox(err, what) {
  const code = err && err.code ? err.code : 'error';
  const msg = err && err.message ? err.message : String(err);
  return h('div', { class: 'error', role: 'alert', 'data-testid': 'error' },
    h('strong', null, what ? what + ': ' : ''), msg, ' ', h('span', { class: 'code' }, `(${code}${err && err.check ? ', ' + err.check : ''})`));
}

// table builds a table from column definitions {label, cell(row), class}.
export function table(cols, rows, opts = {}) {
  const t = h('table', { class: 'grid ' + (opts.class ?? ''), 'data-testid': opts.testid ?? null },
    opts.caption ? h('caption', null, opts.caption) : null,
    h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col', class: c.class ?? null }, c.label)))));
  const tb = h('tbody');
  if (rows.length === 0) tb.append(h('tr', null, h('td', { colspan: cols.length, class: 'empty' }, opts.empty ?? 'Nothing yet.')));
  for (const r of rows) tb.append(h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null, cols.map((c) => h('td', { class: c.class ?? null }, c.cell(r)))));
  t.append(tb);
  return h('div', { class: 'table-wrap' }, t);
}

// figures shows labelled numbers as a grid of small cards.
export function figures(items, testid) {
  return h('div', { class: 'figures', 'data-testid': testid ?? null },
    items.map(([label, value, id]) => h('div', { class: 'figure' },
      h('div', { class: 'label' }, label),
      h('div', { class: 'value', 'data-testid': id ?? null }, value))));
}

// section is a titled card.
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...children);
}

// selecting tells whether the person has text selected inside el (to copy
// a hash, say): a timed refresh leaves el alone until they are done.
export function selecting(el) {
  const sel = document.getSelection();
  return !!sel && !sel.isCollapsed && (el.contains(sel.anchorNode) || el.contains(sel.focusNode));
}

// redrawer gives a function that redraws el with render(data) only when
// the data changed and no text is selected in it, so a view refreshed on
// a timer keeps its selection and focus while nothing new came.
// draw.show(...nodes) puts something else in el (an error) and forgets
// the data, so the next answer is drawn whatever it is.
export function redrawer(el, render) {
  let last = null;
  const draw = (data) => {
    const key = JSON.stringify(data, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
    if (key === last || selecting(el)) return;
    last = key;
    replace(el, render(data));
  };
  draw.show = (...nodes) => {
    last = null;
    replace(el, ...nodes);
  };
  return draw;
}
