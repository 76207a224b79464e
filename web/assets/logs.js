// Logs: the node log and the replication log, live
// (/api/events/logs), filtered by level on the node. Logs name accounts and
// client addresses, so they need a login.

import { stream, session, refreshSession, isAdmin } from './api.js';
import { h, replace, fmtNum, errorBox } from './dom.js';

const levels = ['debug', 'info', 'warn', 'error'];
const keep = 1000; // lines per pane
const prefs = { level: 'info' };

export function mount(root) {
  root.append(h('h1', null, 'Logs'));
  const gate = h('div', { 'data-testid': 'logs-gate' });
  root.append(gate);
  const ctl = { stopped: false, stop: null };
  if (!session.user) {
    replace(gate, loginNeeded());
    return () => {};
  }
  // The cookie may have expired since the page loaded: ask the node before
  // opening streams, whose failures are less clear.
  refreshSession().then((s) => {
    if (ctl.stopped) return;
    if (!s.user) replace(gate, loginNeeded());
    else if (s.mustChange) replace(gate, notice('Choose your own password first: this account still has its one-time password.', 'Change it'));
    else if (!isAdmin()) replace(gate, notice(`The logs are for admins; you are logged in as ${s.user} (${s.role}).`, 'Log in as an admin'));
    else ctl.stop = panes(root);
  }).catch((e) => replace(gate, errorBox(e, 'Cannot check the login')));
  return () => {
    ctl.stopped = true;
    ctl.stop?.();
  };
}

function notice(text, action) {
  return h('div', { class: 'card notice-card', 'data-testid': 'logs-not-admin' },
    h('p', null, text), h('a', { class: 'button', href: '#/account' }, action));
}

function loginNeeded() {
  return h('div', { class: 'card notice-card', 'data-testid': 'logs-login-needed' },
    h('p', null, 'Log in to see the logs. They name accounts and client addresses, so the node shows them only to its admins.'),
    h('a', { class: 'button primary', href: '#/account' }, 'Log in'));
}

function panes(root) {
  let paused = false;
  const level = h('select', { id: 'log-level', name: 'level', 'data-testid': 'log-level' },
    levels.map((l) => h('option', { value: l, selected: l === prefs.level }, l)));
  const pause = h('button', { type: 'button', 'data-testid': 'log-pause', 'aria-pressed': 'false' }, 'Pause');
  const clear = h('button', { type: 'button', class: 'ghost', 'data-testid': 'log-clear' }, 'Clear');
  const follow = h('input', { type: 'checkbox', id: 'log-follow', checked: true });
  root.append(h('div', { class: 'toolbar' },
    h('label', { for: 'log-level' }, 'Level at least'), level, pause, clear,
    h('label', { class: 'check' }, follow, ' follow the newest line')));
  const grid = h('div', { class: 'log-grid' });
  root.append(grid);
  const panes = {
    node: pane('node', 'Node log', grid, () => paused, follow),
    replication: pane('replication', 'Replication log', grid, () => paused, follow),
  };
  const all = Object.values(panes);
  // One stream carries both logs (a browser keeps only six connections to
  // a host over plain HTTP; the live views should not take them all).
  let close = null;
  const start = () => {
    close?.();
    all.forEach((p) => p.state('connecting', 'badge'));
    close = stream(`/api/events/logs?level=${encodeURIComponent(prefs.level)}`, {
      open() {
        all.forEach((p) => p.state('live', 'badge ok', null));
      },
      event(ev, data) {
        if (ev === 'log') panes[data.stream]?.add(data);
      },
      error(err, final) {
        all.forEach((p) => p.state(final ? 'stopped' : 'reconnecting', 'badge bad',
          err.status === 401 ? loginNeeded() : errorBox(err, 'Logs')));
      },
    });
  };
  level.addEventListener('change', () => {
    prefs.level = level.value;
    all.forEach((p) => p.clear());
    start();
  });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) all.forEach((p) => p.flush());
  });
  clear.addEventListener('click', () => all.forEach((p) => p.clear()));
  start();
  return () => close?.();
}

function pane(name, title, grid, isPaused, follow) {
  const status = h('span', { class: 'badge' }, 'connecting');
  const count = h('span', { class: 'muted small' });
  const msg = h('div');
  const lines = h('ol', { class: 'log-lines', 'data-testid': 'log-lines-' + name, tabindex: '0', 'aria-label': title });
  grid.append(h('section', { class: 'card log-pane', 'data-testid': 'log-' + name },
    h('div', { class: 'pane-head' }, h('h2', null, title), status, count), msg, lines));
  let held = [];
  const counter = () => {
    count.textContent = `${fmtNum(lines.children.length)} lines${held.length ? `, ${fmtNum(held.length)} held` : ''}`;
  };
  const show = (e) => {
    lines.append(line(e));
    while (lines.children.length > keep) lines.firstChild.remove();
    if (follow.checked) lines.scrollTop = lines.scrollHeight;
  };
  return {
    // state shows the stream's state, and a message (undefined: keep it).
    state(text, cls, message) {
      status.textContent = text;
      status.className = cls;
      if (message !== undefined) replace(msg, message);
    },
    add(data) {
      if (isPaused()) {
        held.push(data);
        if (held.length > keep) held.shift();
      } else show(data);
      counter();
    },
    flush() {
      held.forEach(show);
      held = [];
      counter();
    },
    clear() {
      lines.replaceChildren();
      held = [];
      counter();
    },
  };
}

function line(e) {
  const lv = String(e.level ?? '').toLowerCase();
  const t = new Date(e.time);
  const attrs = Object.entries(e.attrs ?? {});
  return h('li', { class: 'log-line lv-' + lv, 'data-level': lv },
    h('time', { datetime: e.time, title: e.time }, Number.isNaN(t.getTime()) ? e.time : t.toLocaleTimeString(undefined, { hour12: false })),
    h('span', { class: 'lv' }, lv),
    h('span', { class: 'body' },
      h('span', { class: 'msg' }, e.msg), ' ',
      attrs.map(([k, v]) => [h('span', { class: 'attr' }, h('span', { class: 'k' }, k, '='), typeof v === 'string' ? v : JSON.stringify(v)), ' '])));
}
