// Overview: who this node is and how its chain and replication are doing,
// refreshed every 2 s from /api/info.

import { h, replace, fmtNum, fmtSeconds, fmtDate, hexCode, errorBox, card, selecting } from './dom.js';
import { sparkline } from './chart.js';

export function mount(root, _arg, ctx) {
  const status = h('div', { class: 'status-line', 'aria-live': 'polite' });
  const body = h('div', { class: 'overview' }, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', null, 'Overview'), status, body);
  const stop = ctx.onInfo((info, err) => {
    replace(status, err ? errorBox(err, 'Cannot read /api/info') : null);
    if (!info || selecting(body)) return;
    replace(body, render(info, ctx.rates));
  });
  return stop;
}

function render(info, rates) {
  const lag = info.replication_lag_seconds;
  const identity = card('Identity',
    h('dl', { class: 'fields' },
      field('Node id', hexCode(info.node_id), 'ov-node-id'),
      field('Fingerprint', h('code', null, info.fingerprint), 'ov-fingerprint'),
      field('Network', info.network, 'ov-network'),
      field('Genesis', hexCode(info.genesis_hash)),
      info.peer_id ? field('Peer id', h('code', { class: 'hex' }, info.peer_id)) : null,
      field('Version', info.version, 'ov-version'),
      field('Started', fmtDate(info.started_time)),
      field('Mode', info.dev ? h('span', { class: 'badge warn' }, 'dev: logins skip the TOTP code') : 'production')));
  const chain = card('Chain',
    h('dl', { class: 'fields' },
      field('Root', hexCode(info.root), 'ov-root'),
      field('Link', hexCode(info.link)),
      field('Applications', info.apps_ready ? 'index ready' : h('span', { class: 'badge warn' }, 'index loading'))),
    h('div', { class: 'spark-box' },
      h('div', { class: 'label' }, `Records per second over the last minute, sampled every 2 s since this page opened (${rates.length} samples)`),
      rates.length > 1 ? sparkline(rates, { title: 'records per second' }) : h('div', { class: 'muted small' }, 'Collecting samples…')));
  return h('div', null,
    h('div', { class: 'figures big', 'data-testid': 'overview-figures' },
      big('Height', fmtNum(info.size), 'ov-height', 'records in the chain'),
      big('Records / s', (info.records_per_second ?? 0).toFixed(2), 'ov-rate', 'over the last minute'),
      big('Peers', fmtNum(info.peers ?? 0), 'ov-peers', 'connected and ready'),
      big('Replication lag', lag === undefined || lag === null ? '—' : fmtSeconds(lag), 'ov-lag',
        lag === undefined || lag === null ? 'no ready peers' : 'since the oldest last sync'),
      big('Uptime', fmtSeconds(info.uptime_seconds), 'ov-uptime', 'since ' + fmtDate(info.started_time))),
    h('div', { class: 'columns' }, identity, chain));
}

function field(label, value, testid) {
  return h('div', { class: 'kv' }, h('dt', null, label), h('dd', { 'data-testid': testid ?? null }, value));
}

function big(label, value, testid, note) {
  return h('div', { class: 'figure' },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value', 'data-testid': testid }, value),
    note ? h('div', { class: 'note' }, note) : null);
}
