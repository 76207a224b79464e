// Resources: account balances and usage per period
// (/api/resources/report), as a table and a bar chart.
//
//	#/resources                   by month
//	#/resources/<period>[/<account>]

import { api, poll } from './api.js';
import { h, replace, fmtNum, fmtDate, errorBox, table, card, hexCode, recordLink, redrawer } from './dom.js';
import { barChart } from './chart.js';
import { violations } from './votes.js';

const periods = ['day', 'month', 'year'];

export function mount(root, arg, ctx) {
  const [p, account = ''] = arg.split('/');
  const period = periods.includes(p) ? p : 'month';
  const sel = h('select', { id: 'res-period', name: 'period', 'data-testid': 'res-period' },
    periods.map((x) => h('option', { value: x, selected: x === period }, x)));
  const acct = h('input', { id: 'res-account', name: 'account', type: 'text', value: account, placeholder: 'all accounts', 'data-testid': 'res-account', autocomplete: 'off' });
  const form = h('form', { class: 'toolbar' },
    h('label', { for: 'res-period' }, 'Usage per'), sel,
    h('label', { for: 'res-account' }, 'Account'), acct,
    h('button', { type: 'submit' }, 'Show'));
  const go = () => ctx.navigate(`#/resources/${sel.value}${acct.value.trim() ? '/' + encodeURIComponent(acct.value.trim()) : ''}`);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go();
  });
  sel.addEventListener('change', go);
  const out = h('div', { 'data-testid': 'resources' }, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', null, 'Resources'), form, out);
  const ctl = new AbortController();
  const q = `period=${period}${account ? '&account=' + encodeURIComponent(account) : ''}`;
  const draw = redrawer(out, view);
  const stop = poll(async () => {
    try {
      draw(await api('/api/resources/report?' + q, { signal: ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') draw.show(errorBox(e, 'Cannot compute the resource report'));
    }
  }, 5000);
  return () => {
    stop();
    ctl.abort();
  };
}

function view(r) {
  const accounts = r.accounts ?? [];
  const usage = r.usage ?? [];
  return h('div', null,
    card('Balances',
      h('p', { class: 'muted' }, `Updated ${fmtDate(new Date())}.`),
      barChart(accounts.map((a) => ({ label: a.account, value: a.balance, text: `${fmtNum(a.balance)} ${a.unit}`, class: a.balance < 0 ? 'neg' : null })),
        { title: 'Balance per account', testid: 'res-chart' }),
      table([
        { label: 'Account', cell: (a) => a.account },
        { label: 'Unit', cell: (a) => a.unit },
        { label: 'Balance', cell: (a) => fmtNum(a.balance), class: 'num' },
        { label: 'Allocated', cell: (a) => fmtNum(a.allocated), class: 'num' },
        { label: 'Used', cell: (a) => fmtNum(a.used), class: 'num' },
        { label: 'Sent', cell: (a) => fmtNum(a.sent), class: 'num' },
        { label: 'Received', cell: (a) => fmtNum(a.received), class: 'num' },
        { label: 'Overdraft', cell: (a) => (a.overdraft ? 'allowed' : 'no') },
        { label: 'Defined by', cell: (a) => recordLink(a.defined_by, 10) },
      ], accounts, { empty: 'No resource accounts on this chain yet.', testid: 'res-balances' })),
    card(`Usage per ${r.period}`,
      usage.length ? barChart(usage.map((u) => ({ label: `${u.account} · ${u.period}`, value: u.amount, text: fmtNum(u.amount) })), { title: `Usage per ${r.period}`, testid: 'res-usage-chart' }) : null,
      table([
        { label: 'Account', cell: (u) => u.account },
        { label: r.period[0].toUpperCase() + r.period.slice(1), cell: (u) => u.period },
        { label: 'Used', cell: (u) => fmtNum(u.amount), class: 'num' },
        { label: 'Records', cell: (u) => fmtNum(u.count), class: 'num' },
      ], usage, { empty: 'No usage recorded.', testid: 'res-usage' })),
    card('Report',
      h('dl', { class: 'fields' }, h('div', { class: 'kv' }, h('dt', null, 'Digest'), h('dd', null, hexCode(r.digest))),
        h('div', { class: 'kv' }, h('dt', null, 'Records'), h('dd', null, fmtNum(r.records)))),
      violations(r.violations)));
}
