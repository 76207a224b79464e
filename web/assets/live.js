// Live records: every new entry of the chain as it arrives
// (/api/events/records), shown as its payload reads. The last 200 stay on
// screen; the kind filter is applied by the node.

import { stream } from './api.js';
import { h, replace, fmtNanos, fmtNum, payloadLines, recordLink, errorBox } from './dom.js';

const keep = 200;
// What was seen stays across visits to other views (the stream does not).
const state = { records: [], filter: '', paused: false, held: [] };

export function mount(root, _arg) {
  const filter = h('input', {
    id: 'live-kind', name: 'kind', type: 'text', value: state.filter, placeholder: 'e.g. vote, charity.donation',
    'data-testid': 'live-kind', autocomplete: 'off', spellcheck: 'false',
  });
  const status = h('span', { class: 'badge', 'data-testid': 'live-status' }, 'connecting');
  const counter = h('span', { class: 'muted', 'data-testid': 'live-count' });
  const notices = h('div', { class: 'notices', 'aria-live': 'polite' });
  const list = h('ol', { class: 'records live', 'data-testid': 'live-records', 'aria-live': 'polite', reversed: true });
  const pause = h('button', { type: 'button', 'data-testid': 'live-pause', 'aria-pressed': String(state.paused) }, state.paused ? 'Resume' : 'Pause');
  const clear = h('button', { type: 'button', class: 'ghost', 'data-testid': 'live-clear' }, 'Clear');
  const form = h('form', { class: 'toolbar', 'data-testid': 'live-filter-form' },
    h('label', { for: 'live-kind' }, 'Kinds'), filter,
    h('button', { type: 'submit' }, 'Apply'),
    pause, clear, status, counter);
  root.append(
    h('h1', null, 'Live records'),
    h('p', { class: 'lead' }, 'New records as this node appends them. A kind filter keeps the kinds equal to it or under it ',
      '(', h('code', null, 'vote'), ' also shows ', h('code', null, 'vote.cast'), '); separate several with commas.'),
    form, notices, list);

  const draw = () => {
    replace(list, state.records.map(recordItem));
    counter.textContent = `${fmtNum(state.records.length)} shown${state.held.length ? `, ${fmtNum(state.held.length)} held while paused` : ''}`;
  };
  const add = (rec) => {
    // A resumed stream may repeat what is on screen.
    if (state.records.some((r) => r.id === rec.id) || state.held.some((r) => r.id === rec.id)) return;
    if (state.paused) {
      state.held.push(rec);
      if (state.held.length > keep) state.held.shift();
      counter.textContent = `${fmtNum(state.records.length)} shown, ${fmtNum(state.held.length)} held while paused`;
      return;
    }
    state.records.unshift(rec);
    if (state.records.length > keep) state.records.length = keep;
    list.prepend(recordItem(rec));
    while (list.children.length > keep) list.lastChild.remove();
    counter.textContent = `${fmtNum(state.records.length)} shown`;
  };

  let close = null;
  const connect = () => {
    close?.();
    replace(notices);
    status.textContent = 'connecting';
    status.className = 'badge';
    const kinds = state.filter.split(/[,\s]+/).filter(Boolean);
    const q = kinds.map((k) => 'kind=' + encodeURIComponent(k)).join('&');
    // Coming back to the view resumes after the newest record seen, so
    // that nothing in between is missed (the node sends up to a burst).
    const seen = [...state.held, ...state.records];
    const resume = seen.length ? String(Math.max(...seen.map((r) => r.height))) : '';
    close = stream('/api/events/records' + (q ? '?' + q : ''), {
      open() {
        status.textContent = 'live';
        status.className = 'badge ok';
        replace(notices);
      },
      event(name, data) {
        if (name === 'record') add(data);
        else if (name === 'gap') {
          notices.append(h('p', { class: 'notice' }, `Skipped heights ${data.from} to ${data.to}: too many records arrived at once. The explorer has them.`));
        }
      },
      error(err, final) {
        status.textContent = final ? 'stopped' : 'reconnecting';
        status.className = 'badge bad';
        replace(notices, errorBox(err, 'Live records'));
      },
    }, { lastEventId: resume });
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    state.filter = filter.value.trim();
    state.records = [];
    state.held = [];
    draw();
    connect();
  });
  pause.addEventListener('click', () => {
    state.paused = !state.paused;
    pause.textContent = state.paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(state.paused));
    if (!state.paused && state.held.length) {
      state.records = [...state.held.reverse(), ...state.records].slice(0, keep);
      state.held = [];
      draw();
    }
  });
  clear.addEventListener('click', () => {
    state.records = [];
    state.held = [];
    draw();
  });
  draw();
  connect();
  return () => close?.();
}

// recordItem shows one record as a person reads it: kind, author, when,
// and its payload as key: value lines; the id is small and opens the record.
export function recordItem(rec) {
  return h('li', { class: 'record', 'data-testid': 'live-record', 'data-id': rec.id, 'data-kind': rec.kind },
    h('div', { class: 'record-head' },
      h('span', { class: 'kind' }, rec.kind),
      h('span', { class: 'author' }, rec.author ? 'by ' + rec.author : 'by the node'),
      h('time', { datetime: new Date(Math.floor(Number(rec.created) / 1e6)).toISOString() }, fmtNanos(rec.created)),
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted height' }, '#' + fmtNum(rec.height)),
      recordLink(rec.id, 10)),
    payloadLines(rec.payload),
    rec.source && rec.source !== 'local' ? h('div', { class: 'muted small' }, 'from ' + rec.source) : null);
}
