// Peers: the replication network as this node sees it (/api/peers),
// refreshed every 3 s, and, for an admin, the actions on it: sync now,
// block or unblock a peer, add or remove a configured peer.

import { api, poll, isAdmin } from './api.js';
import { h, replace, fmtNum, fmtSeconds, fmtAgo, fmtDate, fmtBytes, errorBox, table, figures, card, selecting } from './dom.js';

// The configured list as the node last answered it (GET /api/admin/peers,
// or the answer to a change).
let configured = null;

export function mount(root) {
  const status = h('div', { 'data-testid': 'peers-status' }, h('p', { class: 'muted' }, 'Loading…'));
  const list = h('div', { 'data-testid': 'peers' });
  const stats = h('div');
  const actionOut = h('div', { class: 'action-out', 'aria-live': 'polite', 'data-testid': 'peer-action-out' });
  const ctl = new AbortController();

  const act = async (what, path, body) => {
    replace(actionOut, h('p', { class: 'muted' }, what + '…'));
    try {
      const r = await api(path, { method: 'POST', body });
      replace(actionOut, h('p', { class: 'ok-msg' }, what + ': done.'), describe(path, r));
      refresh();
      return r;
    } catch (e) {
      replace(actionOut, errorBox(e, what));
      return null;
    }
  };

  const syncAll = h('button', { type: 'button', class: 'admin-only primary', 'data-testid': 'sync-all' }, 'Sync now with every peer');
  syncAll.addEventListener('click', () => act('Sync with every ready peer', '/api/admin/sync', {}));

  const addr = h('input', { id: 'peer-addr', name: 'addr', type: 'text', placeholder: '/ip4/192.0.2.7/tcp/6667/p2p/12D3Koo…', autocomplete: 'off', spellcheck: 'false', 'data-testid': 'peer-addr' });
  const addBtn = h('button', { type: 'submit', 'data-testid': 'peer-add' }, 'Add peer');
  const rmBtn = h('button', { type: 'button', class: 'danger', 'data-testid': 'peer-remove' }, 'Remove peer');
  const cfgList = h('div', { 'data-testid': 'configured-peers' });
  const form = h('form', { class: 'toolbar wrap' }, h('label', { for: 'peer-addr' }, 'Configured peer'), addr, addBtn, rmBtn);
  const change = async (kind) => {
    const a = addr.value.trim();
    if (!a) {
      replace(actionOut, errorBox({ code: 'bad_request', message: 'Type a multiaddr with /p2p/<peer id>.' }, kind === 'add' ? 'Add peer' : 'Remove peer'));
      return;
    }
    const r = await act(kind === 'add' ? 'Add peer ' + a : 'Remove peer ' + a, '/api/admin/peers', { [kind]: a });
    if (r) {
      configured = r.peers ?? [];
      addr.value = '';
      drawConfigured();
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    change('add');
  });
  rmBtn.addEventListener('click', () => change('remove'));
  const drawConfigured = () => replace(cfgList, configured === null ? null : table([
    { label: 'Configured multiaddr', cell: (a) => h('code', { class: 'hex' }, a) },
    { label: '', cell: (a) => h('button', { type: 'button', class: 'danger small', onclick: () => { addr.value = a; change('remove'); } }, 'Remove') },
  ], configured, { empty: 'No configured peers.' }));
  drawConfigured();

  root.append(h('h1', null, 'Peers'), status,
    h('section', { class: 'card admin-only', 'data-testid': 'peer-admin' }, h('h2', null, 'Admin'),
      h('div', { class: 'toolbar' }, syncAll), form, cfgList, actionOut),
    h('p', { class: 'muted logged-out-only' }, 'Log in as an admin to sync, block peers or change the configured peers.'),
    list, stats);

  const refresh = async () => {
    try {
      const r = await api('/api/peers', { signal: ctl.signal });
      draw(r);
      if (isAdmin()) {
        const c = await api('/api/admin/peers', { signal: ctl.signal });
        const next = c.peers ?? [];
        if (JSON.stringify(next) !== JSON.stringify(configured)) {
          configured = next;
          drawConfigured();
        }
      }
    } catch (e) {
      if (e.name !== 'AbortError') replace(status, errorBox(e, 'Cannot read the peers'));
    }
  };
  const draw = (r) => {
    if (selecting(root)) return; // keep a selection (a peer id being copied)
    if (!r.enabled) {
      replace(status, card('Replication', h('p', null, 'Replication is off on this node: it neither sends nor receives records from peers.')));
      replace(list);
      replace(stats);
      return;
    }
    replace(status, card('This node on the network',
      h('dl', { class: 'fields' },
        h('div', { class: 'kv' }, h('dt', null, 'Peer id'), h('dd', null, h('code', { class: 'hex', 'data-testid': 'own-peer-id' }, r.peer_id))),
        h('div', { class: 'kv' }, h('dt', null, 'Listening on'), h('dd', null, (r.addrs ?? []).map((a) => h('div', null, h('code', { class: 'hex' }, a))))),
        h('div', { class: 'kv' }, h('dt', null, 'Record set'), h('dd', null, `${fmtNum(r.set_size)} records`)))));
    const peers = r.peers ?? [];
    replace(list, card(`Peers (${peers.length})`, table([
      { label: 'Peer', cell: (p) => [h('code', { class: 'hex', title: p.id }, p.id.length > 20 ? p.id.slice(0, 8) + '…' + p.id.slice(-8) : p.id),
        p.software ? h('div', { class: 'muted small' }, p.software) : null] },
      { label: 'State', cell: stateOf },
      { label: 'Addresses', cell: (p) => (p.addrs ?? []).map((a) => h('div', null, h('code', { class: 'small' }, a))) },
      { label: 'Connected since', cell: (p) => (p.since_time ? h('span', { title: fmtDate(p.since_time) }, fmtAgo(p.since_time)) : '—'), class: 'nowrap' },
      { label: 'Last sync', cell: (p) => (p.last_sync_time ? h('span', { title: fmtDate(p.last_sync_time) }, fmtAgo(p.last_sync_time)) : 'never'), class: 'nowrap' },
      { label: 'In', cell: (p) => fmtNum(p.records_in), class: 'num' },
      { label: 'Out', cell: (p) => fmtNum(p.records_out), class: 'num' },
      { label: 'Lag', cell: (p) => (p.lag_seconds === undefined || p.lag_seconds === null ? '—' : fmtSeconds(p.lag_seconds)), class: 'num' },
      { label: 'Error', cell: (p) => [p.last_error ? h('span', { class: 'bad-text' }, p.last_error) : '', p.refused ? h('div', { class: 'bad-text' }, 'refused: ' + p.refused) : ''] },
      { label: 'Actions', class: 'admin-only nowrap', cell: (p) => h('div', { class: 'row-actions' },
        h('button', { type: 'button', class: 'small', 'data-testid': 'peer-sync', disabled: !p.ready, onclick: () => act('Sync with ' + p.id.slice(-8), '/api/admin/sync', { peer: p.id }) }, 'Sync'),
        p.refused
          ? h('button', { type: 'button', class: 'small', 'data-testid': 'peer-unblock', title: 'Let it back in (lifts a block or a ban)', onclick: () => act('Unblock ' + p.id.slice(-8), '/api/admin/block', { peer: p.id, blocked: false }) }, 'Unblock')
          : h('button', { type: 'button', class: 'small danger', 'data-testid': 'peer-block', onclick: () => act('Block ' + p.id.slice(-8), '/api/admin/block', { peer: p.id, blocked: true }) }, 'Block')) },
    ], peers, { empty: 'No peers connected, configured or known yet.', testid: 'peers-table' })));
    const st = r.stats ?? {};
    const rejected = Object.entries(st.rejected ?? {});
    replace(stats, card('Replication since start',
      figures([
        ['Gossip accepted', fmtNum(st.gossip_accepted)],
        ['Gossip ignored', fmtNum(st.gossip_ignored)],
        ['Published', fmtNum(st.published)],
        ['Republished', fmtNum(st.republished)],
        ['Sync sessions', fmtNum(st.sync_sessions)],
        ['Sync failures', fmtNum(st.sync_failed)],
        ['Sync rounds', fmtNum(st.sync_rounds)],
        ['Records in / out', `${fmtNum(st.sync_records_in)} / ${fmtNum(st.sync_records_out)}`],
        ['Bytes in / out', `${fmtBytes(st.sync_bytes_in)} / ${fmtBytes(st.sync_bytes_out)}`],
      ]),
      rejected.length ? table([{ label: 'Rejected (path/reason)', cell: (x) => x[0] }, { label: 'Count', cell: (x) => fmtNum(x[1]), class: 'num' }], rejected) : null));
  };
  const stop = poll(refresh, 3000);
  return () => {
    stop();
    ctl.abort();
  };
}

function stateOf(p) {
  if (p.refused) return h('span', { class: 'badge bad' }, 'refused');
  if (p.ready) return h('span', { class: 'badge ok' }, 'ready');
  if (p.connected) return h('span', { class: 'badge' }, 'connected');
  return h('span', { class: 'badge' }, p.configured ? 'configured, not connected' : 'known');
}

function describe(path, r) {
  if (path === '/api/admin/sync') {
    const res = r.results ?? [];
    if (res.length === 0) return h('p', { class: 'muted' }, 'No ready peer to sync with.');
    return table([
      { label: 'Peer', cell: (x) => h('code', null, x.peer.slice(-12)) },
      { label: 'Received', cell: (x) => fmtNum(x.received), class: 'num' },
      { label: 'Sent', cell: (x) => fmtNum(x.sent), class: 'num' },
      { label: 'Rejected', cell: (x) => fmtNum(x.rejected), class: 'num' },
      { label: 'Rounds', cell: (x) => fmtNum(x.rounds), class: 'num' },
      { label: 'Took', cell: (x) => fmtSeconds(x.seconds), class: 'num' },
      { label: 'Error', cell: (x) => (x.error ? h('span', { class: 'bad-text' }, x.error) : '') },
    ], res, { testid: 'sync-results' });
  }
  return null;
}

