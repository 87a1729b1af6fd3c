// The state of an agent at any version: a lazy tree over covia:list / covia:slice / covia:read with `at`.
// A node is read when it is opened; a map's keys come 100 at a time; a list shows one page of 50 items
// (first, previous, next, last, or any index), so a history of 100,000 messages is never loaded whole.

import {useEffect, useState} from 'preact/hooks';
import {call} from './api.js';
import {gpath} from './model.js';
import {ErrorBox, Expandable, href, html, parseVersion, useAsync} from './util.js';

const KEYS = 100;
const ITEMS = 50;

function ListItems({path, at, count}) {
  const [offset, setOffset] = useState(0);
  const [jump, setJump] = useState('');
  const q = useAsync((signal) => call('covia:slice', {path, at, offset, limit: ITEMS}, {signal}), [path, at, offset]);
  const last = Math.max(0, Math.floor((count - 1) / ITEMS) * ITEMS);
  const go = (o) => setOffset(Math.min(Math.max(0, o), last));
  const submit = (e) => {
    e.preventDefault();
    const n = Number(jump);
    if (Number.isInteger(n) && n >= 0) go(Math.floor(n / ITEMS) * ITEMS);
  };
  const values = q.value?.values || [];
  return html`<div class="list-items">
    ${count > ITEMS && html`<form class="pager" onSubmit=${submit} aria-label=${'pages of ' + path}>
      <button type="button" onClick=${() => go(0)} disabled=${offset === 0}>« first</button>
      <button type="button" onClick=${() => go(offset - ITEMS)} disabled=${offset === 0}>‹ prev</button>
      <span>${offset.toLocaleString()}–${Math.min(offset + ITEMS, count) - 1} of ${count.toLocaleString()}</span>
      <button type="button" onClick=${() => go(offset + ITEMS)} disabled=${offset >= last}>next ›</button>
      <button type="button" onClick=${() => go(last)} disabled=${offset >= last}>last »</button>
      <label class="sr" for=${'jump-' + path}>go to index</label>
      <input id=${'jump-' + path} class="num" inputmode="numeric" placeholder="index" value=${jump}
        onInput=${(e) => setJump(e.target.value)} /><button type="submit">go</button>
    </form>`}
    <${ErrorBox} error=${q.error} />
    <ol class="items" start=${offset}>${values.map((v, i) => html`<li key=${offset + i} value=${offset + i}>
      <span class="key">${offset + i}</span> <${Expandable} value=${v} label=${`${path}/${offset + i}`} /></li>`)}</ol>
  </div>`;
}

function MapKeys({path, at, first}) {
  const [pages, setPages] = useState([first]);
  const [error, setError] = useState(null);
  const keys = pages.flatMap((p) => p.keys || []);
  const more = async () => {
    try {
      const p = await call('covia:list', {path, at, offset: keys.length, limit: KEYS});
      setPages((ps) => [...ps, p]);
    } catch (e) { setError(e); }
  };
  return html`<ul class="tree">
    ${keys.map((k) => html`<li key=${k}><${Node} path=${path + '/' + k} name=${k} at=${at} /></li>`)}
    ${first.count > keys.length && html`<li><button type="button" class="link" onClick=${more}>
      ${(first.count - keys.length).toLocaleString()} more keys…</button></li>`}
    <${ErrorBox} error=${error} />
  </ul>`;
}

function Leaf({path, at}) {
  const [max, setMax] = useState(65536);
  const q = useAsync((signal) => call('covia:read', {path, at, maxSize: max}, {signal}), [path, at, max]);
  if (q.error) return html`<${ErrorBox} error=${q.error} />`;
  if (!q.value) return html`<span class="muted">…</span>`;
  if (q.value.truncated) {
    return html`<span class="muted">${q.value.size?.toLocaleString()} bytes of JSON</span>
      <button type="button" class="link" onClick=${() => setMax(Math.max(q.value.size + 1, max * 4))}>read it</button>`;
  }
  return html`<${Expandable} value=${q.value.value} label=${path} />`;
}

/** One node of the tree: opened, it lists its keys (map), a page of items (list), or its value. */
function Node({path, name, at, open: initial = false}) {
  const [open, setOpen] = useState(initial);
  const q = useAsync((signal) => open ? call('covia:list', {path, at, limit: KEYS}, {signal}) : null, [open, path, at]);
  const m = q.value;
  const kind = m ? (m.exists ? m.type : 'absent') : '';
  const scalar = m && m.exists && m.type !== 'map' && m.type !== 'list';
  return html`<div class="node">
    <button type="button" class="toggle" aria-expanded=${open ? 'true' : 'false'} onClick=${() => setOpen(!open)}
      data-path=${path}>
      <span class="caret" aria-hidden="true">${open ? '▾' : '▸'}</span><span class="key">${name}</span>
      ${m && html`<span class="type">${kind}${m.count != null ? ` · ${m.count.toLocaleString()}` : ''}</span>`}
    </button>
    ${open && html`<div class="children">
      <${ErrorBox} error=${q.error} />
      ${m && !m.exists && html`<span class="muted">absent at this version</span>`}
      ${scalar && html`<${Leaf} path=${path} at=${at} />`}
      ${m?.type === 'map' && html`<${MapKeys} path=${path} at=${at} first=${m} />`}
      ${m?.type === 'list' && (m.count ? html`<${ListItems} path=${path} at=${at} count=${m.count} />`
        : html`<span class="muted">empty list</span>`)}
    </div>`}
  </div>`;
}

export function StateTab({id, headSeq, query}) {
  const atText = query.get('at') ?? '';
  const sub = (query.get('path') || '').replace(/^\/+|\/+$/g, '');
  const [draft, setDraft] = useState(atText);
  const [error, setError] = useState(null);
  useEffect(() => setDraft(atText), [atText]);
  let at = null;
  try { at = parseVersion(atText); } catch (e) { /* shown below */ }
  const submit = (e) => {
    e.preventDefault();
    try {
      const v = parseVersion(draft);
      setError(null);
      location.hash = href('agent', id, 'state', {at: v ?? '', path: sub});
    } catch (err) { setError({code: 'invalid_input', message: err.message}); }
  };
  const segs = sub ? sub.split('/') : [];
  const crumbs = [html`<a href=${href('agent', id, 'state', {at: atText, path: ''})}>g/${id}</a>`,
    ...segs.map((s, i) => html` / <a href=${href('agent', id, 'state', {at: atText, path: segs.slice(0, i + 1).join('/')})}>${s}</a>`)];
  return html`<div class="state-view">
    <form class="row" onSubmit=${submit}>
      <label for="at-input">Version</label>
      <input id="at-input" class="num" placeholder=${headSeq != null ? `head (v${headSeq})` : 'head'} value=${draft}
        onInput=${(e) => setDraft(e.target.value)} />
      <button type="submit">Show</button>
      ${at != null && html`<a href=${href('agent', id, 'state', {path: sub})}>head</a>`}
      ${typeof at === 'number' && at > 0 && html`<a href=${href('agent', id, 'state', {at: at - 1, path: sub})}>‹ v${at - 1}</a>`}
      ${typeof at === 'number' && (headSeq == null || at < headSeq) && html`<a href=${href('agent', id, 'state', {at: at + 1, path: sub})}>v${at + 1} ›</a>`}
      ${typeof at === 'number' && at > 0 && html`<a href=${href('agent', id, 'diff', {from: at - 1, to: at})}>diff with v${at - 1}</a>`}
    </form>
    <${ErrorBox} error=${error} />
    <p class="crumbs">${crumbs} <span class="muted">at ${at == null ? 'the head' : typeof at === 'number' ? `v${at}` : at.slice(0, 12) + '…'}</span></p>
    <div class="tree-root" aria-label="state">
      <${Node} key=${sub + '@' + atText} path=${gpath(id, sub)} name=${segs[segs.length - 1] || `g/${id}`} at=${at ?? undefined} open=${true} />
    </div>
  </div>`;
}

