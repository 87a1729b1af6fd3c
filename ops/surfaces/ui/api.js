// The public API, as the inspector uses it: invoke an operation, read a job, follow an event stream.
//
// With tokens on (<html data-auth="token">, set by the server), every request carries
// `Authorization: Bearer <token>`; the token lives in sessionStorage (this tab only). EventSource
// cannot send that header, so event streams are read with fetch() and a small text/event-stream parser.

export const AUTH = document.documentElement.dataset.auth === 'token' ? 'token' : 'none';
const TOKEN_KEY = 'lattice.token';
const TERMINAL = new Set(['COMPLETE', 'FAILED', 'CANCELLED', 'TIMEOUT']);
// Browsers open at most 6 connections per origin over HTTP/1.1. At most 3 event streams are open at once (the
// caller's, an agent's, a job's): 4 calls at a time leave them room (a call waits for a connection, never for
// a stream to end, as calls end on their own).
const MAX_CALLS = 4;

export const token = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (t) => t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY);
export const needsToken = () => AUTH === 'token' && !token();

/** A request the server refused (HTTP 4xx/5xx), or a job that ended FAILED: `code`, `message`, `hint`, `path`. */
export class ApiError extends Error {
  constructor(error, status = 0) {
    super(error?.message || String(error));
    Object.assign(this, {code: error?.code || 'error', hint: error?.hint, path: error?.path, status});
  }
}

/**
 * The error of a reply, a job or an agent as {code, message, hint, path}, else `fallback`: tolerant of both
 * shapes the server has sent, the venue's `error: "message"` with `errorCode`, `path` and `hint` beside it, and
 * the earlier `error: {code, message, path?, hint?}`.
 */
export function errorOf(x, fallback = null) {
  const e = x?.error;
  if (typeof e === 'string' && e) return {code: x.errorCode ?? 'error', message: e, path: x.path, hint: x.hint};
  if (e && typeof e === 'object') return {...e, code: e.code ?? x.errorCode ?? 'error'};
  return fallback;
}

/** How many tasks an agent has queued, from agent:list or agent:info (`taskCount`, or the venue's `tasks`). */
export function taskCountOf(a) {
  if (typeof a?.taskCount === 'number') return a.taskCount;
  if (typeof a?.tasks === 'number') return a.tasks;
  if (Array.isArray(a?.tasks)) return a.tasks.length;
  return 0;
}

function headers(extra = {}) {
  const h = {...extra};
  if (AUTH === 'token' && token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

let active = 0;
const queue = [];
async function slot(fn) {
  if (active >= MAX_CALLS) await new Promise((r) => queue.push(r));
  active++;
  try { return await fn(); } finally { active--; queue.shift()?.(); }
}

async function request(method, path, body, signal) {
  if (needsToken()) throw new ApiError({code: 'unauthorized', message: 'no token'}, 401);
  const init = {method, headers: headers(body === undefined ? {} : {'Content-Type': 'application/json'}), signal};
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await slot(() => fetch(path, init));
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) {
    setToken(null);
    window.dispatchEvent(new CustomEvent('lattice-unauthorized'));
  }
  if (r.status >= 400) throw new ApiError(errorOf(data, {message: r.statusText}), r.status);
  return data;
}

/** POST /api/v1/invoke: the job (followed to its end when the server answers 202). */
export async function invoke(operation, input = {}, {signal} = {}) {
  let job = await request('POST', '/api/v1/invoke', {operation, input}, signal);
  if (!TERMINAL.has(job.status)) job = await followJob(job.jobId ?? job.id, {signal});
  return job;
}

/** The output of an operation; throws ApiError with the job's error when it did not complete. */
export async function call(operation, input = {}, opts = {}) {
  const job = await invoke(operation, input, opts);
  if (job.status !== 'COMPLETE') throw new ApiError(errorOf(job, {code: job.status, message: `job ${job.status}`}));
  return job.output;
}

export const getJob = (id, {signal} = {}) => request('GET', `/api/v1/jobs/${encodeURIComponent(id)}`, undefined, signal);
export const cancelJob = (id) => request('PUT', `/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
export const status = () => request('GET', '/api/v1/status');

/** Follow a job's event stream until it is terminal; `onUpdate(job)` for each update. Returns the last job. */
export async function followJob(id, {signal, onUpdate} = {}) {
  let last = null;
  for await (const ev of events(`/api/v1/jobs/${encodeURIComponent(id)}/sse`, {signal})) {
    if (ev.event !== 'job-update') continue;
    last = ev.data;
    onUpdate?.(last);
    if (TERMINAL.has(last.status)) break;
  }
  return last || getJob(id, {signal});
}

/**
 * The events of a text/event-stream response, read with fetch (so that the token can be sent).
 * Yields {event, data (JSON-decoded), id}. Ends when the server ends the stream or `signal` aborts.
 */
export async function* events(path, {signal, lastEventId} = {}) {
  const h = headers({Accept: 'text/event-stream'});
  if (lastEventId != null) h['Last-Event-ID'] = String(lastEventId);
  const r = await fetch(path, {headers: h, signal});
  if (r.status === 401) { setToken(null); window.dispatchEvent(new CustomEvent('lattice-unauthorized')); }
  if (!r.ok) throw new ApiError(errorOf(await r.json().catch(() => ({})), {message: r.statusText}), r.status);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = {event: 'message', data: [], id: null};
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += value;
      const lines = buf.split(/\r\n|\r|\n/);
      buf = lines.pop();  // an incomplete last line waits for more
      for (const line of lines) {
        if (line === '') {
          if (ev.data.length) {
            const text = ev.data.join('\n');
            let data;
            try { data = JSON.parse(text); } catch { data = text; }
            yield {event: ev.event, data, id: ev.id};
          }
          ev = {event: 'message', data: [], id: ev.id};
          continue;
        }
        if (line.startsWith(':')) continue;  // a heartbeat
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'data') ev.data.push(val);
        else if (field === 'event') ev.event = val;
        else if (field === 'id') ev.id = val;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Follow an agent's versions (GET /api/v1/agents/{id}/events), reconnecting with Last-Event-ID so that no
 * version is missed. Calls onVersion({agentId, seq, id, op, status, ts}) and onState('live'|'retrying'|'removed').
 * Returns a function that stops following.
 */
export function followAgent(agentId, {onVersion, onState}) {
  const ctl = new AbortController();
  (async () => {
    let last = null;
    let delay = 500;
    while (!ctl.signal.aborted) {
      try {
        onState?.('live');
        for await (const ev of events(`/api/v1/agents/${encodeURIComponent(agentId)}/events`,
          {signal: ctl.signal, lastEventId: last})) {
          delay = 500;
          if (ev.event === 'agent-version') { last = ev.id; onVersion(ev.data); }
          if (ev.event === 'agent-removed') { onState?.('removed'); return; }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e.status === 401 || e.status === 404) { onState?.('closed'); return; }
      }
      if (ctl.signal.aborted) return;
      onState?.('retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => ctl.abort();
}

/**
 * Follow the caller's agents (GET /api/v1/events), reconnecting after a drop (each connection starts with the
 * whole list). Calls onList(agents) with the `agents` event, onEvent(event, data) with each `agent-created`,
 * `agent-updated` and `agent-removed`, and onState('live'|'retrying'|'closed'). Returns a function that stops.
 */
export function followCaller({onList, onEvent, onState}) {
  const ctl = new AbortController();
  (async () => {
    let delay = 1000;
    while (!ctl.signal.aborted) {
      try {
        for await (const ev of events('/api/v1/events', {signal: ctl.signal})) {
          if (ev.event === 'agents') { delay = 1000; onState?.('live'); onList(ev.data.agents || []); }
          else if (ev.event.startsWith('agent-')) onEvent(ev.event, ev.data);
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e.status === 401) { onState?.('closed'); return; }
      }
      if (ctl.signal.aborted) return;
      onState?.('retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
    }
  })();
  return () => ctl.abort();
}

/** Run `fn` over `items`, at most `n` at a time; the results in order. */
export async function mapLimit(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); } };
  await Promise.all(Array.from({length: Math.min(n, items.length)}, worker));
  return out;
}
