// Votes: the ballots on this chain and the live tally of one, refreshed
// every 3 s, with its counts as a bar chart and the rule violations found.
//
//	#/votes            the ballots
//	#/votes/<ballot>   one ballot's tally

import { api, poll } from './api.js';
import { h, replace, fmtNum, fmtUnixSeconds, fmtDate, errorBox, table, figures, card, hexCode, recordLink, redrawer } from './dom.js';
import { barChart } from './chart.js';

export function mount(root, arg, ctx) {
  const list = h('div', { 'data-testid': 'ballots' }, h('p', { class: 'muted' }, 'Loading the ballots…'));
  const tally = h('div', { 'data-testid': 'tally' });
  root.append(h('h1', null, 'Votes'), card('Ballots', list), tally);
  const ctl = new AbortController();
  api('/api/votes/ballots', { signal: ctl.signal })
    .then((r) => {
      if (ctl.signal.aborted) return;
      const ballots = r.ballots ?? [];
      replace(list, table([
        { label: 'Ballot', cell: (b) => h('a', { href: '#/votes/' + encodeURIComponent(b.ballot), 'data-testid': 'ballot-link', 'aria-current': b.ballot === arg ? 'true' : null }, b.ballot) },
        { label: 'Question', cell: (b) => b.question },
        { label: 'Opens', cell: (b) => fmtUnixSeconds(b.opens), class: 'nowrap' },
        { label: 'Closes', cell: (b) => fmtUnixSeconds(b.closes), class: 'nowrap' },
        { label: 'State', cell: (b) => stateBadge(b.opens, b.closes) },
        { label: 'Records', cell: (b) => fmtNum(b.records), class: 'num' },
      ], ballots, { empty: 'No ballots on this chain yet.', testid: 'ballots-table' }));
      if (!arg && ballots.length > 0) ctx.redirect('#/votes/' + encodeURIComponent(ballots[0].ballot));
    })
    .catch((e) => e.name !== 'AbortError' && replace(list, errorBox(e, 'Cannot list the ballots')));
  if (!arg) {
    tally.append(h('p', { class: 'muted' }, 'Pick a ballot to see its tally.'));
    return () => ctl.abort();
  }
  const draw = redrawer(tally, tallyView);
  const stop = poll(async () => {
    try {
      draw(await api('/api/votes/tally?ballot=' + encodeURIComponent(arg), { signal: ctl.signal }));
    } catch (e) {
      if (e.name !== 'AbortError') draw.show(card('Tally of ' + arg, errorBox(e, 'Cannot compute the tally')));
    }
  }, 3000);
  return () => {
    stop();
    ctl.abort();
  };
}

function stateBadge(opens, closes) {
  const now = Date.now() / 1000;
  if (now < opens) return h('span', { class: 'badge' }, 'not yet open');
  if (now >= closes) return h('span', { class: 'badge' }, 'closed');
  return h('span', { class: 'badge ok' }, 'open');
}

function tallyView(t) {
  const counts = t.counts ?? [];
  const total = counts.reduce((a, c) => a + c.votes, 0);
  const pct = (n) => (total ? ` (${((100 * n) / total).toFixed(1)} %)` : '');
  return card(`Tally: ${t.ballot}`,
    h('p', { class: 'question', 'data-testid': 'tally-question' }, t.question),
    h('p', { class: 'muted' }, 'Open ', fmtUnixSeconds(t.opens), ' to ', fmtUnixSeconds(t.closes), ' · ', stateBadge(t.opens, t.closes),
      ' · updated ', fmtDate(new Date())),
    barChart(counts.map((c) => ({ label: c.choice, value: c.votes, text: fmtNum(c.votes) + pct(c.votes) })),
      { title: 'Votes per choice', testid: 'tally-chart' }),
    figures([
      ['Registered', fmtNum(t.registered), 'tally-registered'],
      ['Withdrawn', fmtNum(t.withdrawn)],
      ['Effective', fmtNum(t.effective)],
      ['Voted', fmtNum(t.voted), 'tally-voted'],
      ['Turnout', t.effective ? ((100 * t.voted) / t.effective).toFixed(1) + ' %' : '—'],
      ['Replaced casts', fmtNum(t.replaced)],
      ['Records', fmtNum(t.records)],
    ], 'tally-figures'),
    h('dl', { class: 'fields' },
      h('div', { class: 'kv' }, h('dt', null, 'Digest'), h('dd', null, hexCode(t.digest), h('div', { class: 'muted small' }, 'SHA-256 over the ballot\'s record ids: equal digests, equal records'))),
      h('div', { class: 'kv' }, h('dt', null, 'Defined by'), h('dd', null, recordLink(t.defined_by, 16)))),
    violations(t.violations));
}

// violations lists the records an application refused to count and why.
export function violations(list) {
  const v = list ?? [];
  return h('div', { class: 'violations' },
    h('h3', null, `Violations (${v.length})`),
    table([
      { label: 'Rule', cell: (x) => h('code', null, x.rule) },
      { label: 'Detail', cell: (x) => x.detail },
      { label: 'Kind', cell: (x) => x.kind },
      { label: 'Record', cell: (x) => recordLink(x.id, 10) },
      { label: 'Clashes with', cell: (x) => (x.ref ? recordLink(x.ref, 10) : '') },
    ], v, { empty: 'None: every record followed the rules.', testid: 'violations' }));
}
