// Charity: the funds on this chain and, per fund, what it received,
// disbursed and holds, by source and by target, refreshed every 5 s.
//
//	#/charity          the funds (the first one opened)
//	#/charity/<fund>   one fund's report

import { api, poll } from './api.js';
import { h, replace, fmtNum, fmtMoney, moneyValue, fmtDate, errorBox, table, figures, card, hexCode, recordLink, redrawer } from './dom.js';
import { barChart } from './chart.js';
import { violations } from './votes.js';

export function mount(root, arg, ctx) {
  const list = h('div', { 'data-testid': 'funds' }, h('p', { class: 'muted' }, 'Loading the funds…'));
  const report = h('div', { 'data-testid': 'fund-report' });
  root.append(h('h1', null, 'Charity'), card('Funds', list), report);
  const ctl = new AbortController();
  api('/api/charity/funds', { signal: ctl.signal })
    .then((r) => {
      if (ctl.signal.aborted) return;
      const funds = r.funds ?? [];
      replace(list, funds.length === 0
        ? h('p', { class: 'muted' }, 'No funds on this chain yet.')
        : h('ul', { class: 'pills' }, funds.map((f) => h('li', null,
          h('a', { href: '#/charity/' + encodeURIComponent(f), class: 'pill', 'data-testid': 'fund-link', 'aria-current': f === arg ? 'true' : null }, f)))));
      if (!arg && funds.length > 0) ctx.redirect('#/charity/' + encodeURIComponent(funds[0]));
    })
    .catch((e) => e.name !== 'AbortError' && replace(list, errorBox(e, 'Cannot list the funds')));
  if (!arg) return () => ctl.abort();
  const draw = redrawer(report, reportView);
  const stop = poll(async () => {
    try {
      draw(await api('/api/charity/report?fund=' + encodeURIComponent(arg), { signal: ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') draw.show(card('Fund ' + arg, errorBox(e, 'Cannot compute the report')));
    }
  }, 5000);
  return () => {
    stop();
    ctl.abort();
  };
}

function reportView(r) {
  const cur = r.currency;
  const money = (n) => fmtMoney(n, cur);
  const bucketCols = (label) => [
    { label, cell: (b) => b.name || h('span', { class: 'muted' }, '(none given)') },
    { label: 'Amount', cell: (b) => money(b.amount), class: 'num' },
    { label: 'Records', cell: (b) => fmtNum(b.count), class: 'num' },
  ];
  return card(`${r.name || r.fund} (${r.fund})`,
    h('p', { class: 'muted' }, `Amounts in ${cur}. Updated ${fmtDate(new Date())}.`),
    barChart([
      { label: 'Received', value: moneyValue(r.received, cur), text: money(r.received), class: 'in' },
      { label: 'Disbursed', value: moneyValue(r.disbursed, cur), text: money(r.disbursed), class: 'out' },
      { label: 'Balance', value: moneyValue(r.balance, cur), text: money(r.balance), class: 'bal' },
    ], { title: `Fund ${r.fund}: received, disbursed, balance`, testid: 'fund-chart' }),
    figures([
      ['Received', money(r.received), 'fund-received'],
      ['Disbursed', money(r.disbursed), 'fund-disbursed'],
      ['Balance', money(r.balance), 'fund-balance'],
      ['Donations', fmtNum(r.donations)],
      ['Disbursements', fmtNum(r.disbursements)],
      ['Records', fmtNum(r.records)],
    ]),
    h('div', { class: 'columns' },
      h('div', null, h('h3', null, 'By source'),
        (r.by_source ?? []).length > 1 ? barChart(r.by_source.map((b) => ({ label: b.name || '(none)', value: moneyValue(b.amount, cur), text: money(b.amount) })), { title: 'Received by source' }) : null,
        table(bucketCols('Source'), r.by_source ?? [], { empty: 'No donations yet.', testid: 'by-source' })),
      h('div', null, h('h3', null, 'By target'),
        (r.by_target ?? []).length > 1 ? barChart(r.by_target.map((b) => ({ label: b.name || '(none)', value: moneyValue(b.amount, cur), text: money(b.amount) })), { title: 'Disbursed by target' }) : null,
        table(bucketCols('Target'), r.by_target ?? [], { empty: 'No disbursements yet.', testid: 'by-target' }))),
    h('dl', { class: 'fields' },
      h('div', { class: 'kv' }, h('dt', null, 'Digest'), h('dd', null, hexCode(r.digest))),
      h('div', { class: 'kv' }, h('dt', null, 'Defined by'), h('dd', null, recordLink(r.defined_by, 16)))),
    violations(r.violations));
}
