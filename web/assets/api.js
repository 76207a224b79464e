// The panel's side of docs/HTTP.md: JSON calls with the API's error shape,
// the login session and its CSRF token, and server-sent event streams.

// ApiError is an error answer ({"error", "message"}) or a network failure
// (status 0).
export class ApiError extends Error {
  constructor(status, code, message, check) {
    super(message);
    this.status = status;
    this.code = code;
    this.check = check;
  }
}

// session is the panel's login: user, role and the CSRF token every POST
// carries. Listeners hear each change.
export const session = { user: null, role: null, csrf: null, mustChange: false, known: false };
const listeners = new Set();

export function onSession(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

function setSession(s) {
  session.user = s ? s.user : null;
  session.role = s ? s.role : null;
  session.csrf = s ? s.csrf : null;
  session.mustChange = Boolean(s && s.must_change);
  session.known = true;
  for (const f of listeners) f(session);
}

// An account that must still change its one-time password may do nothing
// else, so it counts as neither.
export const isAdmin = () => session.role === 'admin' && !session.mustChange;
export const canWrite = () => ['writer', 'authority', 'admin'].includes(session.role) && !session.mustChange;

async function errorFrom(resp) {
  let data = null;
  try {
    data = await resp.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  if (data && data.error) return new ApiError(resp.status, data.error, data.message ?? data.error, data.check);
  return new ApiError(resp.status, 'http_' + resp.status, `${resp.status} ${resp.statusText || 'error'}`.trim());
}

// api calls an endpoint and answers its JSON, or throws an ApiError.
// parseJSON reads an answer, keeping integers beyond 2^53 (amounts and
// totals may reach 2^62) exact as BigInt rather than rounding them.
export function parseJSON(text) {
  return JSON.parse(text, (_, v, ctx) =>
    typeof v === 'number' && !Number.isSafeInteger(v) && ctx && /^-?\d+$/.test(ctx.source) ? BigInt(ctx.source) : v);
}

// rawBody is JSON text sent as it is (a payload a person typed: parsing
// and encoding it again would round integers beyond 2^53). A GET that
// gets no answer within timeoutMs fails, so a stalled connection shows.
export async function api(path, { method = 'GET', body, rawBody, signal, timeoutMs = 15000 } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, signal, credentials: 'same-origin' };
  if (method === 'GET' && timeoutMs > 0) {
    init.signal = signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
  }
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
    init.body = rawBody ?? JSON.stringify(body ?? {});
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    if (e.name === 'TimeoutError') throw new ApiError(0, 'timeout', 'The node did not answer within ' + Math.round(timeoutMs / 1000) + ' s');
    throw new ApiError(0, 'network', 'Cannot reach the node: ' + e.message);
  }
  if (!resp.ok) {
    const err = await errorFrom(resp);
    // A session that ended on the server (expired, or the node restarted)
    // shows as logged out at once.
    // (A wrong old password in a password change is a 401 too, but the
    // session stands.)
    if (err.status === 401 && session.user && path !== '/api/login' && path !== '/api/password') setSession(null);
    throw err;
  }
  if (resp.status === 204) return {};
  return parseJSON(await resp.text());
}

export async function refreshSession() {
  try {
    setSession(await api('/api/session'));
  } catch (e) {
    if (e.status === 401 || e.status === 404) setSession(null);
    else throw e;
  }
  return session;
}

export async function login(user, password, code) {
  const s = await api('/api/login', { method: 'POST', body: { user, password, code } });
  setSession(s);
  return s;
}

// changePassword replaces the logged-in account's password; the node ends
// the old session and answers a new one.
export async function changePassword(old, neu) {
  const s = await api('/api/password', { method: 'POST', body: { old, new: neu } });
  setSession(s);
  return s;
}

export async function logout() {
  try {
    await api('/api/logout', { method: 'POST' });
  } finally {
    setSession(null);
  }
}

// stream reads a server-sent event stream with fetch rather than
// EventSource, so that an error answer (401 without a login, 429 with too
// many streams) reaches the page with its message. It reconnects after a
// dropped connection, not after an error answer.
//
//	handlers.event(name, data)  each event, data parsed as JSON
//	handlers.open()             the stream is live
//	handlers.error(err, final)  an ApiError; final when it will not retry
//
// Like EventSource, it sends the last event id when it reconnects
// (Last-Event-ID), and the node sends what was missed; opts.lastEventId
// resumes a stream seen before. It returns a function that closes the
// stream.
export function stream(path, handlers, opts = {}) {
  const ctl = new AbortController();
  let closed = false;
  let delay = 1000;
  const st = { lastId: opts.lastEventId ?? '', retry: 1000 };
  const run = async () => {
    while (!closed) {
      let resp;
      try {
        const headers = { Accept: 'text/event-stream' };
        if (st.lastId) headers['Last-Event-ID'] = st.lastId;
        resp = await fetch(path, { headers, signal: ctl.signal, credentials: 'same-origin', cache: 'no-store' });
      } catch (e) {
        if (closed) return;
        handlers.error?.(new ApiError(0, 'network', 'Lost the connection to the node: ' + e.message), false);
        await sleep(delay, ctl.signal);
        delay = Math.min(delay * 2, 15000);
        continue;
      }
      if (!resp.ok) {
        const err = await errorFrom(resp);
        const retry = err.status === 429 || err.status === 503 || err.status >= 500;
        handlers.error?.(err, !retry);
        if (!retry) return;
        await sleep(Math.max(delay, 3000), ctl.signal);
        delay = Math.min(delay * 2, 15000);
        continue;
      }
      delay = st.retry;
      handlers.open?.();
      try {
        await readEvents(resp.body, handlers, st);
      } catch (e) {
        if (closed) return;
        handlers.error?.(new ApiError(0, 'network', 'The live stream broke off: ' + e.message + '; reconnecting'), false);
      }
      if (!closed) await sleep(delay, ctl.signal);
    }
  };
  run();
  return () => {
    closed = true;
    ctl.abort();
  };
}

async function readEvents(body, handlers, st) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = 'message';
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (id !== null) st.lastId = id;
        id = null;
        if (data.length) {
          let parsed;
          try {
            parsed = parseJSON(data.join('\n'));
          } catch {
            parsed = data.join('\n');
          }
          // A record stream's first head says where new records start:
          // resume from there even if no record came through the kind
          // filter before the connection broke.
          if (name === 'head' && !st.lastId && parsed && parsed.size !== undefined && BigInt(parsed.size) > 0n) {
            st.lastId = String(BigInt(parsed.size) - 1n);
          }
          handlers.event?.(name, parsed);
        }
        name = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // a comment: the server's keep-alive
      } else {
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') id = val;
        else if (field === 'retry' && /^\d+$/.test(val)) st.retry = Math.max(500, Number(val));
      }
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// poll calls f now and every ms until the returned function is called; a
// slow answer delays the next call rather than piling calls up.
export function poll(f, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await f();
    } catch (e) {
      console.error(e); // f shows its own errors; this is a bug in the view
    } finally {
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
