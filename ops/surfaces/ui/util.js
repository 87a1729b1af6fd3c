// Small pieces every view uses: the html template tag, formatting, JSON display, async loading.

import {h} from 'preact';
import {useCallback, useEffect, useRef, useState} from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** `2026-11-29 14:50:01.123` (local time) of Unix milliseconds. */
export function fmtTime(ms) {
  if (ms == null) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `3 ms`, `1.2 s`, `4 min 2 s` */
export function fmtDur(ms) {
  if (ms == null || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** How long ago, coarsely: `12 s ago`. */
export function fmtAgo(ms, now = Date.now()) {
  if (ms == null) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** One line of JSON, cut at `n` characters. */
export function preview(value, n = 140) {
  let s;
  try { s = typeof value === 'string' ? value : JSON.stringify(value); } catch { s = String(value); }
  if (s === undefined) s = 'undefined';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

const BIG = 20000;

/** Pretty JSON in a <pre>, cut at 20,000 characters unless the reader asks for all of it. */
export function JsonView({value, label}) {
  const [all, setAll] = useState(false);
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  const cut = !all && text && text.length > BIG;
  return html`<div class="json">
    <pre tabindex="0" aria-label=${label || 'value'}>${cut ? text.slice(0, BIG) + '\n…' : text}</pre>
    ${cut && html`<button type="button" class="link" onClick=${() => setAll(true)}>show all ${text.length.toLocaleString()} characters</button>`}
  </div>`;
}

/** A value, as one line, that opens into pretty JSON. */
export function Expandable({value, label, n = 140}) {
  const simple = value === null || typeof value !== 'object';
  const line = preview(value, n);
  if (simple && line.length < n) return html`<code class="val">${line}</code>`;
  return html`<details class="expand"><summary><code class="val">${line}</code></summary>
    <${JsonView} value=${value} label=${label} /></details>`;
}

export function Badge({status}) {
  const s = String(status || '—');
  return html`<span class=${'badge s-' + s.toLowerCase()}>${s}</span>`;
}

/** An error as the API reports it: code, message, hint, path. */
export function ErrorBox({error, title}) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    ${title && html`<strong>${title} </strong>`}<code>${error.code || 'error'}</code> ${error.message || String(error)}
    ${error.path && html` <span class="muted">at ${error.path}</span>`}
    ${error.hint && html`<div class="muted">hint: ${error.hint}</div>`}
  </div>`;
}

/**
 * Load a value with `fn(signal)` whenever `deps` change: {value, error, loading, reload}. A result that
 * arrives after the deps changed is dropped.
 */
export function useAsync(fn, deps) {
  const [st, setSt] = useState({value: undefined, error: null, loading: true});
  const gen = useRef(0);
  const run = useCallback(() => {
    const g = ++gen.current;
    const ctl = new AbortController();
    setSt((s) => ({...s, loading: true, error: null}));
    Promise.resolve().then(() => fn(ctl.signal)).then(
      (value) => { if (g === gen.current) setSt({value, error: null, loading: false}); },
      (error) => { if (g === gen.current && error?.name !== 'AbortError') setSt({value: undefined, error, loading: false}); });
    return ctl;
  }, deps);
  useEffect(() => { const ctl = run(); return () => { gen.current++; ctl.abort(); }; }, [run]);
  return {...st, reload: run};
}

/** The location hash as {parts: ['agent', 'Alice', 'state'], query: URLSearchParams}. */
export function parseHash(hash = location.hash) {
  const [path, q] = hash.replace(/^#\/?/, '').split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q || '')};
}

/** A hash link: `href('agent', id, 'state', {at: 3})`. */
export function href(...parts) {
  const q = typeof parts[parts.length - 1] === 'object' ? parts.pop() : null;
  const qs = q ? new URLSearchParams(Object.entries(q).filter(([, v]) => v != null && v !== '')).toString() : '';
  return '#/' + parts.map((p) => encodeURIComponent(p)).join('/') + (qs ? '?' + qs : '');
}

export function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return parseHash(hash);
}

/** Parse a version the reader typed: a seq (digits) or a commit id (64 hex digits); null when empty. */
export function parseVersion(text) {
  const t = String(text ?? '').trim();
  if (t === '') return null;
  if (/^\d{1,15}$/.test(t)) return Number(t);
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(t)) return t;
  throw new Error(`expected a version number (seq) or a 64-digit commit id, got ${JSON.stringify(t.slice(0, 70))}`);
}

/** Events between views: `agents-changed` (a view made or changed agents). */
export const bus = new EventTarget();
export const emit = (type, detail) => bus.dispatchEvent(new CustomEvent(type, {detail}));
export function useBus(type, fn, deps = []) {
  useEffect(() => {
    const on = (e) => fn(e.detail);
    bus.addEventListener(type, on);
    return () => bus.removeEventListener(type, on);
  }, deps);
}
