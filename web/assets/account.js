// Account: log in with a node account (the same passwords and TOTP codes
// as the client protocol), change a one-time password, log out; and for
// writers the "Put a record" form, for admins the list of users.

import { api, session, login, logout, changePassword, canWrite, isAdmin } from './api.js';
import { h, replace, errorBox, table, card, fmtNum, recordLink } from './dom.js';

export function mount(root, _arg, ctx) {
  root.append(h('h1', null, session.user ? 'Account' : 'Log in'));
  if (!session.user) {
    root.append(loginForm(Boolean(ctx.info && ctx.info.dev)));
    return () => {};
  }
  root.append(whoCard());
  if (session.mustChange) {
    root.append(passwordCard(true));
    return () => {};
  }
  if (canWrite()) root.append(putCard());
  const ctl = new AbortController();
  if (isAdmin()) root.append(usersCard(ctl.signal));
  root.append(passwordCard(false));
  return () => ctl.abort();
}

function field(id, label, attrs, ...hint) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name: id.replace(/^.*-/, ''), ...attrs }),
    hint.length ? h('div', { class: 'hint', id: id + '-hint' }, hint) : null);
}

function loginForm(dev) {
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'login-out' });
  const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'card form narrow', id: 'login-form', 'data-testid': 'login-form' },
    h('h2', null, 'Log in to this node'),
    h('p', { class: 'muted' }, 'Without a login the panel is read-only. An admin can sync and block peers and read the logs; a writer can put records.'),
    field('login-user', 'User', { type: 'text', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'login-user' }),
    field('login-password', 'Password', { type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' }),
    field('login-code', 'One-time code', { type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', 'data-testid': 'login-code', 'aria-describedby': 'login-code-hint' },
      dev ? ['This node runs with ', h('code', { class: 'nowrap' }, '--dev'), ': leave it empty.']
        : ['The 6 digits from your authenticator app (a node started with ', h('code', { class: 'nowrap' }, '--dev'), ' does not ask for it).']),
    h('div', { class: 'toolbar' }, btn), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    replace(out, h('p', { class: 'muted' }, 'Logging in…'));
    try {
      await login(form.elements.user.value.trim(), form.elements.password.value, form.elements.code.value.trim());
      // The account view is drawn again for the new session.
    } catch (err) {
      replace(out, errorBox(err, 'Login failed'));
      form.elements.password.select();
    } finally {
      btn.disabled = false;
    }
  });
  return form;
}

function whoCard() {
  const out = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'button', 'data-testid': 'account-logout' }, 'Log out');
  btn.addEventListener('click', async () => {
    try {
      await logout();
    } catch (e) {
      replace(out, errorBox(e, 'Log out'));
    }
  });
  return card('Logged in',
    h('p', { class: 'who-line' }, 'You are ', h('strong', { 'data-testid': 'account-user' }, session.user), ' with the role ',
      h('span', { class: 'badge role', 'data-testid': 'account-role' }, session.role), '.'),
    h('div', { class: 'toolbar' }, btn), out);
}

function passwordCard(required) {
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'form narrow', 'data-testid': 'password-form' },
    required ? h('p', { class: 'notice' }, 'This account has a one-time password. Choose your own before doing anything else.') : null,
    field('pw-old', 'Current password', { type: 'password', autocomplete: 'current-password', required: true }),
    field('pw-new', 'New password', { type: 'password', autocomplete: 'new-password', required: true, minlength: '10' }, 'At least 10 characters.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: required ? 'primary' : '' }, 'Change password')), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await changePassword(form.elements.old.value, form.elements.new.value);
      replace(out, h('p', { class: 'ok-msg' }, 'Password changed.'));
      form.reset();
    } catch (err) {
      replace(out, errorBox(err, 'Cannot change the password'));
    }
  });
  return required ? card('Change your password', form) : h('details', { class: 'card' }, h('summary', null, 'Change your password'), form);
}

function putCard() {
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'put-out' });
  const kind = h('input', { id: 'put-kind', name: 'kind', type: 'text', required: true, placeholder: 'note.text', autocomplete: 'off', spellcheck: 'false', 'data-testid': 'put-kind', 'aria-describedby': 'put-kind-hint' });
  const payload = h('textarea', { id: 'put-payload', name: 'payload', rows: '6', required: true, spellcheck: 'false', 'data-testid': 'put-payload', 'aria-describedby': 'put-payload-hint' });
  payload.value = '{\n  "text": "hello"\n}';
  const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'put-submit' }, 'Put the record');
  const form = h('form', { class: 'form', 'data-testid': 'put-form' },
    h('div', { class: 'field' }, h('label', { for: 'put-kind' }, 'Kind'), kind,
      h('div', { class: 'hint', id: 'put-kind-hint' }, 'Dot-separated lower-case parts, e.g. note.text or charity.donation. Application kinds follow their rules (docs/APPLICATIONS.md).')),
    h('div', { class: 'field' }, h('label', { for: 'put-payload' }, 'Payload (a JSON object)'), payload,
      h('div', { class: 'hint', id: 'put-payload-hint' }, 'Integers, text, booleans, lists and objects; bytes as {"$bytes": "<base64>"}. No fractions or null.')),
    h('div', { class: 'toolbar' }, btn), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let p;
    try {
      p = JSON.parse(payload.value);
    } catch (err) {
      replace(out, errorBox({ code: 'bad_json', message: 'The payload is not JSON: ' + err.message }, 'Put a record'));
      return;
    }
    if (p === null || typeof p !== 'object' || Array.isArray(p)) {
      replace(out, errorBox({ code: 'bad_json', message: 'The payload must be a JSON object.' }, 'Put a record'));
      return;
    }
    btn.disabled = true;
    replace(out, h('p', { class: 'muted' }, 'Mining and appending…'));
    try {
      // The payload goes as typed: JSON.parse above only checked it.
      const rawBody = '{"kind":' + JSON.stringify(kind.value.trim()) + ',"payload":' + payload.value + '}';
      const r = await api('/api/admin/records', { method: 'POST', rawBody });
      replace(out, h('p', { class: 'ok-msg', 'data-testid': 'put-ok' }, `Appended at height ${fmtNum(r.height)}: `, recordLink(r.id, 16)));
    } catch (err) {
      replace(out, errorBox(err, 'The node refused the record'));
    } finally {
      btn.disabled = false;
    }
  });
  return card('Put a record', form);
}

function usersCard(signal) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  api('/api/admin/users', { signal })
    .then((r) => replace(body, table([
      { label: 'User', cell: (u) => u.name },
      { label: 'Role', cell: (u) => h('span', { class: 'badge role' }, u.role) },
      { label: 'Enabled', cell: (u) => (u.enabled ? 'yes' : h('span', { class: 'bad-text' }, 'no')) },
      { label: 'TOTP', cell: (u) => (u.totp ? 'set up' : '—') },
      { label: 'File quota', cell: (u) => fmtNum(u.quota), class: 'num' },
    ], r.users ?? [], { testid: 'users' })))
    .catch((e) => e.name !== 'AbortError' && replace(body, errorBox(e, 'Cannot list the users')));
  return card('Users', body, h('p', { class: 'muted small' }, 'Add and change users with pyvnode user … or the client protocol.'));
}
