// The control panel: one page, one view at a time, chosen by the URL's
// hash (#/overview, #/record/<id>, …) so that views can be linked and the
// back button works. Each view module exports mount(root, arg, ctx) and
// returns a function that stops its timers and streams.

import { api, session, onSession, refreshSession, logout, isAdmin, canWrite, poll } from './api.js';
import { h, replace, fmtNum, shortHex, errorBox } from './dom.js';
import * as overview from './overview.js';
import * as live from './live.js';
import * as explorer from './explorer.js';
import * as votes from './votes.js';
import * as charity from './charity.js';
import * as resources from './resources.js';
import * as peers from './peers.js';
import * as logs from './logs.js';
import * as account from './account.js';

const views = {
  overview: { mod: overview, title: 'Overview' },
  live: { mod: live, title: 'Live records' },
  explorer: { mod: explorer, title: 'Explorer' },
  record: { mod: explorer, title: 'Record', nav: 'explorer' },
  votes: { mod: votes, title: 'Votes' },
  charity: { mod: charity, title: 'Charity' },
  resources: { mod: resources, title: 'Resources' },
  peers: { mod: peers, title: 'Peers' },
  logs: { mod: logs, title: 'Logs', session: true },
  account: { mod: account, title: 'Account', session: true },
};

// The node's /api/info, polled every 2 s for the header and the overview.
const infoListeners = new Set();
const ctx = {
  info: null,
  infoError: null,
  // records per second at each poll since the page loaded, newest last
  rates: [],
  onInfo(f) {
    infoListeners.add(f);
    if (ctx.info || ctx.infoError) f(ctx.info, ctx.infoError);
    return () => infoListeners.delete(f);
  },
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  // redirect shows another view in place of this one, without a history
  // entry the back button would bounce on.
  redirect(hash) {
    history.replaceState(null, '', hash);
    route();
  },
};

const main = document.getElementById('main');
let current = null; // {name, arg, stop}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const name = views[parts[0]] ? parts[0] : 'overview';
  const raw = parts.slice(1).join('/');
  let arg = raw;
  try {
    arg = decodeURIComponent(raw);
  } catch {
    // A malformed %-escape: keep the text as it is.
  }
  return { name, arg };
}

function route() {
  if (location.hash === '#main') return; // the skip link, not a view
  const { name, arg } = parseHash();
  mountView(name, arg);
}

function mountView(name, arg) {
  if (current?.stop) {
    try {
      current.stop();
    } catch (e) {
      console.error(e);
    }
  }
  const v = views[name];
  const navName = v.nav ?? name;
  for (const a of document.querySelectorAll('nav.views a')) {
    if (a.dataset.view === navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${v.title} · pyvnode`;
  const root = h('div', { class: 'view', id: 'view-' + name, 'data-testid': 'view-' + name, 'data-view': name });
  replace(main, root);
  let stop = null;
  try {
    stop = v.mod.mount(root, arg, ctx);
  } catch (e) {
    console.error(e);
    root.append(errorBox(e, 'This view failed'));
  }
  current = { name, arg, stop };
}

function renderSession() {
  const logged = Boolean(session.user);
  document.body.classList.toggle('logged-in', logged);
  document.body.classList.toggle('is-admin', isAdmin());
  document.body.classList.toggle('can-write', canWrite());
  document.getElementById('readonly-badge').hidden = logged;
  const who = document.getElementById('who-user');
  who.hidden = !logged;
  replace(who, logged ? [h('span', { class: 'user-name' }, session.user), ' ', h('span', { class: 'badge role' }, session.role)] : []);
  document.getElementById('login-link').hidden = logged;
  document.getElementById('logout-btn').hidden = !logged;
  document.getElementById('nav-account').textContent = logged ? 'Account' : 'Log in';
}

function renderHeader(info, err) {
  const el = document.getElementById('node-summary');
  if (err && !info) {
    replace(el, h('span', { class: 'badge bad' }, 'node unreachable'));
    return;
  }
  if (!info) return;
  replace(el,
    h('span', { class: 'badge net', title: 'network' }, info.network),
    info.dev ? h('span', { class: 'badge warn', title: 'logins skip the TOTP code' }, 'dev') : null,
    h('span', { class: 'muted', title: 'node id ' + info.node_id }, 'node ', h('code', null, shortHex(info.node_id, 8))),
    h('span', { class: 'muted' }, 'height ', h('strong', { 'data-testid': 'header-height' }, fmtNum(info.size))),
    err ? h('span', { class: 'badge bad', title: err.message }, 'stale') : null);
  document.getElementById('foot-version').textContent = `pyvnode ${info.version}`;
}

async function start() {
  document.getElementById('logout-btn').addEventListener('click', async () => {
    try {
      await logout();
    } catch (e) {
      main.prepend(errorBox(e, 'Log out'));
    }
  });
  let who = '';
  onSession(() => {
    renderSession();
    // Views that depend on the login are drawn again when it changes (not
    // when a view merely checks it).
    const now = `${session.user}|${session.role}|${session.mustChange}`;
    if (now === who) return;
    who = now;
    if (current && views[current.name].session) mountView(current.name, current.arg);
  });
  renderSession();
  poll(async () => {
    try {
      ctx.info = await api('/api/info');
      ctx.infoError = null;
      ctx.rates.push(ctx.info.records_per_second ?? 0);
      if (ctx.rates.length > 150) ctx.rates.shift();
    } catch (e) {
      ctx.infoError = e;
    }
    renderHeader(ctx.info, ctx.infoError);
    for (const f of infoListeners) f(ctx.info, ctx.infoError);
  }, 2000);
  window.addEventListener('hashchange', route);
// The skip link moves focus to the content without changing the view.
document.querySelector('a.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
  try {
    await refreshSession();
  } catch (e) {
    console.error(e);
  }
  route();
}

start();
