// Explorer: the chain by height, newest first, and one record with its
// inclusion proof, verified in the page (verify.js).
//
//	#/explorer          the newest page
//	#/explorer/<h>      the page starting at height h, downwards
//	#/record/<id|h>     one record

import { api } from './api.js';
import { h, replace, fmtNanos, fmtNum, payloadLines, recordLink, errorBox, hexCode, jsonText, card, table } from './dom.js';
import { verifyRecord, cryptoAvailable, unavailableReason, decodeRecord, hexToBytes } from './verify.js';

const pageSize = 25;

export function mount(root, arg, ctx) {
  const name = root.dataset.view;
  const search = searchForm(ctx);
  if (name === 'record') return mountRecord(root, arg, search);
  return mountList(root, arg, search, ctx);
}

function searchForm(ctx) {
  const input = h('input', {
    id: 'explorer-q', type: 'search', name: 'q', placeholder: 'record id (64 hex digits) or height',
    'data-testid': 'explorer-search', autocomplete: 'off', spellcheck: 'false',
  });
  const msg = h('span', { class: 'form-msg', role: 'status' });
  const form = h('form', { class: 'toolbar', role: 'search' },
    h('label', { for: 'explorer-q' }, 'Find'), input, h('button', { type: 'submit' }, 'Open'),
    h('a', { class: 'button ghost', href: '#/explorer' }, 'Newest'), msg);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = input.value.trim().toLowerCase();
    if (/^[0-9a-f]{64}$/.test(q) || /^\d+$/.test(q)) {
      msg.textContent = '';
      ctx.navigate('#/record/' + q);
    } else {
      msg.textContent = 'Type a record id (64 hex digits) or a height.';
    }
  });
  return form;
}

function mountList(root, arg, search) {
  const out = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', null, 'Explorer'), search, out);
  const ctl = new AbortController();
  const from = /^\d+$/.test(arg) ? '&from=' + arg : '';
  api(`/api/records?order=desc&count=${pageSize}${from}`, { signal: ctl.signal })
    .then((page) => replace(out, listPage(page, arg)))
    .catch((e) => e.name !== 'AbortError' && replace(out, errorBox(e, 'Cannot list the records')));
  return () => ctl.abort();
}

function listPage(page, arg) {
  const recs = page.records ?? [];
  const top = recs.length ? recs[0].height : null;
  const newer = top !== null && top + 1 < page.size ? Math.min(top + pageSize, page.size - 1) : null;
  const older = page.next !== undefined && page.next >= 0 && recs.length ? page.next : null;
  const nav = h('div', { class: 'pager' },
    newer !== null ? h('a', { class: 'button', href: '#/explorer/' + newer, 'data-testid': 'explorer-newer' }, '← Newer') : h('span', { class: 'button disabled', 'aria-disabled': 'true' }, '← Newer'),
    h('span', { class: 'muted' }, recs.length
      ? `Heights ${fmtNum(recs[0].height)} to ${fmtNum(recs.at(-1).height)} of ${fmtNum(page.size)}`
      : (arg ? 'No records here.' : 'The chain is empty.')),
    older !== null ? h('a', { class: 'button', href: '#/explorer/' + older, 'data-testid': 'explorer-older' }, 'Older →') : h('span', { class: 'button disabled', 'aria-disabled': 'true' }, 'Older →'));
  const t = table([
    { label: 'Height', cell: (r) => h('a', { href: '#/record/' + r.id }, fmtNum(r.height)), class: 'num' },
    { label: 'Created', cell: (r) => fmtNanos(r.created), class: 'nowrap' },
    { label: 'Kind', cell: (r) => h('span', { class: 'kind' }, r.kind) },
    { label: 'Author', cell: (r) => r.author || h('span', { class: 'muted' }, 'node') },
    { label: 'Says', cell: (r) => summary(r.payload), class: 'summary' },
    { label: 'Id', cell: (r) => recordLink(r.id, 10) },
  ], recs, { testid: 'explorer-table', empty: 'No records.', rowAttrs: (r) => ({ 'data-id': r.id, 'data-height': r.height }) });
  return h('div', null, nav, t, nav.cloneNode(true));
}

// summary is a one-line reading of a payload for tables.
function summary(p) {
  const parts = Object.entries(p ?? {}).slice(0, 4).map(([k, v]) => `${k}: ${typeof v === 'object' ? (v && v.$bytes ? '‹bytes›' : JSON.stringify(v)) : v}`);
  const s = parts.join(' · ');
  return s.length > 120 ? s.slice(0, 119) + '…' : s;
}

function mountRecord(root, arg, search) {
  const out = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', null, 'Record'), search, out);
  const ctl = new AbortController();
  const path = /^\d+$/.test(arg) ? '/api/records/height/' + arg : '/api/records/' + encodeURIComponent(arg);
  (async () => {
    try {
      const rec = await api(path, { signal: ctl.signal });
      replace(out, recordView(rec, ctl.signal));
    } catch (e) {
      if (e.name !== 'AbortError') replace(out, errorBox(e, 'Cannot open the record'));
    }
  })();
  return () => ctl.abort();
}

function recordView(rec, signal) {
  // The exact values from the record's bytes where JSON numbers would be
  // rounded (created, nonce, big payload integers).
  let exact = null;
  try {
    exact = decodeRecord(hexToBytes(rec.record));
  } catch {
    exact = null;
  }
  const fields = h('dl', { class: 'fields', 'data-testid': 'record-fields' },
    kv('Height', fmtNum(rec.height), 'record-height'),
    kv('Id', hexCode(rec.id), 'record-id'),
    kv('Kind', h('span', { class: 'kind' }, rec.kind), 'record-kind'),
    kv('Author', rec.author || h('span', { class: 'muted' }, '(the node itself)'), 'record-author'),
    kv('Created', [fmtNanos(exact ? exact.created : rec.created), ' ', h('span', { class: 'muted' }, `(${exact ? exact.created : rec.created} ns)`)]),
    kv('Origin', hexCode(rec.origin)),
    kv('Received', [fmtNanos(rec.received), ' ', h('span', { class: 'muted' }, 'from ' + (rec.source || '?'))]),
    kv('Replication', String(rec.replication ?? 0)),
    kv('Link', hexCode(rec.link)),
    kv('Nonce', String(exact ? exact.nonce : rec.nonce)),
    kv('Version', String(rec.version)),
    kv('Signature', hexCode(rec.signature)));
  const payload = exact ? exact.payload : rec.payload;
  const raw = h('details', null, h('summary', null, 'Payload as JSON and the record bytes'),
    h('pre', { class: 'json', 'data-testid': 'record-json' }, jsonText(payload)),
    h('p', { class: 'muted' }, `Record bytes (CBOR, ${rec.record.length / 2} bytes):`),
    h('pre', { class: 'hex-block' }, rec.record));
  const proofBox = h('div', { 'data-testid': 'proof' }, h('p', { class: 'muted' }, 'Loading the proof…'));
  const verifyOut = h('div', { class: 'verify-out', 'data-testid': 'verify-result', 'aria-live': 'polite' });
  const verifyBtn = h('button', { type: 'button', class: 'primary', id: 'verify-btn', 'data-testid': 'verify', disabled: true }, 'Verify');
  const proofCard = card('Inclusion proof',
    h('p', { class: 'lead' }, 'Verify checks, here in your browser, that this record is what its id says, that its origin signed it, ',
      'and that the node\'s signed checkpoint includes it.'),
    h('p', { class: 'muted' }, 'The node\'s key comes from this same node: compare its fingerprint (shown on the Overview) with the one its operator published. ',
      'Checked against that, a passing result does not depend on trusting this page\'s server.'),
    cryptoAvailable() ? null : h('p', { class: 'error', 'data-testid': 'no-crypto' }, unavailableReason()),
    proofBox, h('div', { class: 'toolbar' }, verifyBtn), verifyOut);

  let material = null;
  (async () => {
    try {
      const [proof, cp] = await Promise.all([
        api('/api/proof/inclusion?id=' + rec.id, { signal }),
        api('/api/checkpoint', { signal }),
      ]);
      let p = proof;
      let note = proof.checkpoint;
      if (!note) {
        // A server that sends no checkpoint with the proof: ask for the
        // proof at the size of the signed checkpoint instead.
        note = cp.checkpoint;
        p = await api(`/api/proof/inclusion?id=${rec.id}&size=${cp.size}`, { signal });
      }
      material = { record: rec, proof: p, checkpoint: note, publicKey: cp.public_key };
      replace(proofBox, proofView(p, note, cp));
      verifyBtn.disabled = !cryptoAvailable();
    } catch (e) {
      if (e.name !== 'AbortError') replace(proofBox, errorBox(e, 'Cannot fetch the proof'));
    }
  })();
  verifyBtn.addEventListener('click', async () => {
    if (!material) return;
    verifyBtn.disabled = true;
    replace(verifyOut, h('p', { class: 'muted' }, 'Verifying…'));
    const res = await verifyRecord(material);
    replace(verifyOut, verifyView(res));
    verifyBtn.disabled = false;
  });

  return h('div', { class: 'record-page', 'data-testid': 'record', 'data-id': rec.id },
    h('div', { class: 'columns' },
      card('What it says', h('div', { 'data-testid': 'record-payload' }, payloadLines(payload)), raw),
      card('Fields', fields)),
    proofCard);
}

function proofView(p, note, cp) {
  return h('div', null,
    h('dl', { class: 'fields' },
      kv('Leaf index', fmtNum(p.index)),
      kv('Tree size', fmtNum(p.size), 'proof-size'),
      kv('Root', hexCode(p.root)),
      kv('Leaf hash', hexCode(p.leaf_hash)),
      kv('Node key', [hexCode(cp.public_key), h('div', { class: 'muted small' }, 'compare with the node id the operator gave you')])),
    h('p', { class: 'muted' }, `Audit path (${p.proof.length} hashes, leaf level first):`),
    h('ol', { class: 'path' }, p.proof.map((x) => h('li', null, hexCode(x)))),
    h('details', null, h('summary', null, 'Signed checkpoint'), h('pre', { class: 'note-text', 'data-testid': 'checkpoint' }, note)));
}

function verifyView(res) {
  return h('div', { class: 'verify ' + (res.ok ? 'pass' : 'fail'), 'data-status': res.ok ? 'pass' : 'fail' },
    h('p', { class: 'verdict', 'data-testid': 'verify-verdict' },
      h('span', { class: 'mark', 'aria-hidden': 'true' }, res.ok ? '✓' : '✗'),
      res.ok ? 'Verified: every check passed.' : 'Not verified: a check failed.'),
    h('ul', { class: 'checks' }, res.checks.map((c) => h('li', { class: c.ok ? 'pass' : 'fail', 'data-check': c.key, 'data-ok': String(c.ok) },
      h('span', { class: 'mark', 'aria-label': c.ok ? 'passed' : 'failed' }, c.ok ? '✓' : '✗'),
      h('div', null, h('strong', null, c.name), h('div', { class: 'detail' }, c.detail))))));
}

function kv(label, value, testid) {
  return h('div', { class: 'kv' }, h('dt', null, label), h('dd', { 'data-testid': testid ?? null }, value));
}
