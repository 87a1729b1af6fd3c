// LangGraph threads (stored by ops.langgraph's LatticeSaver): the list, a thread's checkpoints, and a diff
// between two of them.
//
// The list is covia:list t: one key per ref of the caller's threads, `<thread>[#<ns>]` for the head of a
// checkpoint namespace (`@<id>` a fork tip, `!<id>` parked writes, `?` its version: not listed), each
// part %-escaped. A thread's checkpoints are agent:history {threadId, ns}; a diff, agent:diff {threadId,
// ns, from, to}: the same operations as an agent's versions, with `threadId` instead of `agentId`.

import {useEffect, useState} from 'preact/hooks';
import {call} from './api.js';
import {Big} from './diff.js';
import {ErrorBox, Expandable, fmtTime, href, html, parseVersion, useAsync} from './util.js';

const PAGE = 50;
const SAFE = /[A-Za-z0-9\-._~:|+=,;()$*'[\]^`{}&]/u;  // what ops.langgraph.naming.escape leaves as is

/** A thread id or namespace as its ref names it (ops.langgraph.naming.escape). */
export function escapeName(text) {
  let out = '';
  for (const ch of text) {
    out += SAFE.test(ch) ? ch : [...new TextEncoder().encode(ch)].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join('');
  }
  return out;
}

/** `t/<thread>[#<ns>]/<path>`: a path into a checkpoint of the thread's namespace, for covia:read. */
export const tpath = (thread, ns, path) => `t/${escapeName(thread)}${ns ? '#' + escapeName(ns) : ''}${path ? '/' + path : ''}`;

/** The threads of a covia:list t listing: [{thread, namespaces: [ns...]}], sorted. */
export function threadsOf(keys) {
  const out = new Map();
  for (const k of keys) {
    if (/[@!?]/.test(k)) continue;  // a fork tip, parked writes or a version, not a head
    const i = k.indexOf('#');
    const thread = decodeURIComponent(i < 0 ? k : k.slice(0, i));
    const ns = i < 0 ? '' : decodeURIComponent(k.slice(i + 1));
    if (!out.has(thread)) out.set(thread, []);
    out.get(thread).push(ns);
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([thread, namespaces]) => ({thread, namespaces: namespaces.sort()}));
}

export function ThreadsList() {
  const q = useAsync((signal) => call('covia:list', {path: 't', limit: 10000}, {signal}), []);
  const threads = threadsOf(q.value?.keys || []);
  return html`<section class="threads card" aria-labelledby="threads-h">
    <h2 id="threads-h">LangGraph threads</h2>
    <p class="muted">Threads a <code>LatticeSaver</code> keeps for you (refs <code>t/&lt;thread&gt;</code>); a subgraph's
      checkpoints are a namespace of their own.</p>
    <${ErrorBox} error=${q.error} />
    ${q.value && !threads.length && html`<p class="muted">No threads yet.</p>`}
    <ul class="thread-list" data-ready=${q.value ? 'threads' : undefined}>
      ${threads.map(({thread, namespaces}) => html`<li key=${thread}>
        <a class="thread" data-thread=${thread} href=${href('thread', thread)}>${thread}</a>
        ${namespaces.filter((ns) => ns).map((ns) => html` <a class="ns" href=${href('thread', thread, {ns})}><code>${ns}</code></a>`)}
      </li>`)}
    </ul>
  </section>`;
}

function Side({c, which, thread, ns, at}) {
  const value = which === 'before' ? c.before : c.after;
  const size = which === 'before' ? c.beforeSize : c.afterSize;
  if (size != null) return html`<${Big} size=${size} path=${tpath(thread, ns, c.path)} at=${at} />`;
  if (value === undefined) return html`<span class="muted">—</span>`;
  return html`<${Expandable} value=${value} label=${`${which} ${c.path}`} />`;
}

function ThreadDiff({id, ns, from, to, head}) {
  const q = useAsync((signal) => call('agent:diff', {threadId: id, ...(ns ? {ns} : {}), from: parseVersion(from),
    to: parseVersion(to) ?? undefined}, {signal}), [id, ns, from, to]);
  const changes = q.value?.changes || [];
  const right = parseVersion(to) ?? head;
  return html`<section aria-labelledby="tdiff-h">
    <h3 id="tdiff-h">Diff <span class="muted">checkpoint ${from} → ${to === '' ? 'newest' : to}</span></h3>
    <${ErrorBox} error=${q.error} />
    ${q.value && html`<div data-ready="thread-diff">
      <p class="summary">${changes.length ? `${changes.length} change${changes.length === 1 ? '' : 's'}` : 'no change'}
        ${q.value.truncated && html` <span class="warn">(truncated)</span>`}</p>
      <table class="changes">
        <thead><tr><th scope="col">change</th><th scope="col">path</th><th scope="col">before</th><th scope="col">after</th></tr></thead>
        <tbody>${changes.map((c) => html`<tr class=${'chg-' + c.change}>
          <td><span class=${'chg ' + c.change}>${c.change}</span></td>
          <td class="path">${c.path}</td>
          <td><${Side} c=${c} which="before" thread=${id} ns=${ns} at=${parseVersion(from)} /></td>
          <td><${Side} c=${c} which="after" thread=${id} ns=${ns} at=${right} /></td></tr>`)}</tbody>
      </table></div>`}
  </section>`;
}

export function ThreadPage({id, query}) {
  const ns = query.get('ns') || '';
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const [pages, setPages] = useState(1);
  useEffect(() => setPages(1), [id, ns]);
  const q = useAsync((signal) => call('agent:history', {threadId: id, ...(ns ? {ns} : {}), limit: PAGE * pages},
    {signal}), [id, ns, pages]);
  const versions = q.value?.versions || [];
  const oldest = versions[versions.length - 1];
  const at = (v) => href('thread', id, {ns, from: v.seq - 1, to: v.seq});
  return html`<article class="thread-page" aria-labelledby="thread-h">
    <header class="agent-head"><h2 id="thread-h">${id}</h2>
      <span class="facts">${ns ? html`<span>namespace <code>${ns}</code></span>` : html`<span>root graph</span>`}
        <a href="#/threads">all threads</a></span></header>
    <${ErrorBox} error=${q.error} />
    ${from !== '' && html`<${ThreadDiff} id=${id} ns=${ns} from=${from} to=${to} head=${versions[0]?.seq} />`}
    <h3>Checkpoints <span class="muted">newest first</span></h3>
    <div class="table-scroll"><table class="versions" data-ready=${q.value ? 'checkpoints' : undefined}>
      <thead><tr><th scope="col">version</th><th scope="col">checkpoint</th><th scope="col">time</th><th scope="col">id</th><th scope="col"><span class="sr">actions</span></th></tr></thead>
      <tbody>${versions.map((v) => html`<tr key=${v.id}>
        <td>v${v.seq}</td>
        <td><code>${v.checkpointId}</code></td>
        <td>${fmtTime(v.ts)}</td>
        <td><code title=${v.id}>${v.id.slice(0, 12)}</code></td>
        <td class="actions">${v.seq > 0 && html`<a href=${at(v)} data-diff=${v.seq}>diff with v${v.seq - 1}</a>`}</td>
      </tr>`)}</tbody>
    </table></div>
    ${oldest && oldest.seq > 0 && html`<button type="button" onClick=${() => setPages((p) => p + 1)}>Older checkpoints (${oldest.seq.toLocaleString()} more)</button>`}
  </article>`;
}
