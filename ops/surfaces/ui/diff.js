// A diff between two versions of an agent, or two agents' heads (agent:diff): path-level changes, each
// value expandable; a value over 1 KiB (sent as its size only) is read on demand with covia:read.

import {useEffect, useState} from 'preact/hooks';
import {call} from './api.js';
import {gpath} from './model.js';
import {ErrorBox, Expandable, href, html, parseVersion, useAsync} from './util.js';

/** A value over 1 KiB, sent as its size: read on demand (covia:read `path` at version `at`). */
export function Big({size, path, at}) {
  const [q, setQ] = useState(null);
  const load = async () => {
    try { setQ({value: (await call('covia:read', {path, at, maxSize: Math.max(size * 2, 1 << 20)})).value}); }
    catch (error) { setQ({error}); }
  };
  if (!q) return html`<button type="button" class="link" onClick=${load}>${size.toLocaleString()} bytes: read it</button>`;
  return q.error ? html`<${ErrorBox} error=${q.error} />` : html`<${Expandable} value=${q.value} />`;
}

function Side({c, which, agent, at}) {
  const value = which === 'before' ? c.before : c.after;
  const size = which === 'before' ? c.beforeSize : c.afterSize;
  if (size != null) return html`<${Big} size=${size} path=${gpath(agent, c.path)} at=${at} />`;
  if (value === undefined) return html`<span class="muted">—</span>`;
  return html`<${Expandable} value=${value} label=${`${which} ${c.path}`} />`;
}

export function DiffTab({id, headSeq, query}) {
  const other = query.get('other') || '';
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const limit = Number(query.get('limit') || 1000);
  const [mode, setMode] = useState(other ? 'agent' : 'versions');
  const [draft, setDraft] = useState({from, to, other});
  useEffect(() => setDraft({from, to, other}), [from, to, other]);
  const agents = useAsync((signal) => mode === 'agent' ? call('agent:list', {includeTerminated: true}, {signal}) : null, [mode]);
  const [formError, setFormError] = useState(null);
  const ready = other || from !== '';
  const q = useAsync(async (signal) => {
    if (!ready) return null;
    const input = other ? {agentId: id, otherAgentId: other, limit}
      : {agentId: id, from: parseVersion(from), to: parseVersion(to) ?? undefined, limit};
    return call('agent:diff', input, {signal});
  }, [id, other, from, to, limit]);
  const submit = (e) => {
    e.preventDefault();
    try {
      if (mode === 'agent') {
        if (!draft.other) throw new Error('choose the agent to compare with');
        location.hash = href('agent', id, 'diff', {other: draft.other});
      } else {
        if (parseVersion(draft.from) == null) throw new Error('give the version to compare from (a seq, 0 is the creation)');
        parseVersion(draft.to);
        location.hash = href('agent', id, 'diff', {from: draft.from.trim(), to: draft.to.trim()});
      }
      setFormError(null);
    } catch (err) { setFormError({code: 'invalid_input', message: err.message}); }
  };
  const suggest = headSeq != null && headSeq > 0 ? headSeq - 1 : 0;
  const changes = q.value?.changes || [];
  const counts = changes.reduce((a, c) => ({...a, [c.change]: (a[c.change] || 0) + 1}), {});
  const left = other ? {agent: id, at: undefined} : {agent: id, at: parseSafe(from)};
  const right = other ? {agent: other, at: undefined} : {agent: id, at: parseSafe(to) ?? undefined};
  return html`<div class="diff-view">
    <form class="row wrap" onSubmit=${submit}>
      <fieldset class="row"><legend class="sr">compare</legend>
        <label><input type="radio" name="mode" checked=${mode === 'versions'} onChange=${() => setMode('versions')} /> two versions</label>
        <label><input type="radio" name="mode" checked=${mode === 'agent'} onChange=${() => setMode('agent')} /> another agent</label>
      </fieldset>
      ${mode === 'versions' ? html`
        <label for="diff-from">from</label>
        <input id="diff-from" class="num" placeholder=${String(suggest)} value=${draft.from}
          onInput=${(e) => setDraft({...draft, from: e.target.value})} />
        <label for="diff-to">to</label>
        <input id="diff-to" class="num" placeholder=${headSeq != null ? `head (v${headSeq})` : 'head'} value=${draft.to}
          onInput=${(e) => setDraft({...draft, to: e.target.value})} />`
      : html`<label for="diff-other">with</label>
        <select id="diff-other" value=${draft.other} onChange=${(e) => setDraft({...draft, other: e.target.value})}>
          <option value="">choose an agent…</option>
          ${(agents.value?.agents || []).filter((a) => a.agentId !== id).map((a) => html`<option value=${a.agentId}>${a.agentId}</option>`)}
        </select>`}
      <button type="submit">Compare</button>
    </form>
    <${ErrorBox} error=${formError} />
    ${!ready && html`<p class="muted">Compare two versions (e.g. from <a href=${href('agent', id, 'diff', {from: suggest})}>v${suggest}</a>
      to the head), or this agent's head with another agent's.</p>`}
    <${ErrorBox} error=${q.error} />
    ${q.value && html`<div data-ready="diff">
      <p class="summary">${other ? html`<strong>${id}</strong> → <strong>${other}</strong> (heads)` :
        html`v${from} → ${to === '' ? 'head' : 'v' + to}`}:${' '}${changes.length ? Object.entries(counts).map(([k, n]) => html`<span class=${'chg ' + k}>${n} ${k}</span> `) : 'no change'}${' '}
        ${q.value.truncated && html`<span class="warn">truncated at ${limit}: <a href=${href('agent', id, 'diff', {from, to, other, limit: Math.min(limit * 10, 10000)})}>show more</a></span>`}</p>
      <table class="changes">
        <thead><tr><th scope="col">change</th><th scope="col">path</th><th scope="col">before</th><th scope="col">after</th></tr></thead>
        <tbody>${changes.map((c) => html`<tr class=${'chg-' + c.change}>
          <td><span class=${'chg ' + c.change}>${c.change}</span></td>
          <td class="path"><a href=${href('agent', right.agent, 'state', {at: right.at, path: parentOf(c.path)})}>${c.path}</a></td>
          <td><${Side} c=${c} which="before" agent=${left.agent} at=${left.at} /></td>
          <td><${Side} c=${c} which="after" agent=${right.agent} at=${right.at} /></td></tr>`)}</tbody>
      </table></div>`}
  </div>`;
}

function parseSafe(t) { try { return parseVersion(t); } catch { return null; } }
const parentOf = (p) => p.split('/').slice(0, -1).join('/');
