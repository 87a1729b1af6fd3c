// The inspector's shell: the token prompt, the agents list, an agent's page with its tabs, and the routes.
//
// Routes (location.hash): #/agents, #/agent/<id>/<tab>?..., #/jobs, #/job/<jobId>.

import {render} from 'preact';
import {useEffect, useRef, useState} from 'preact/hooks';
import {AUTH, call, followAgent, mapLimit, needsToken, setToken, status} from './api.js';
import {gpath, forkOrigin, versionAt} from './model.js';
import {Badge, ErrorBox, emit, fmtAgo, href, html, useAsync, useBus, useHash} from './util.js';
import {TimelineTab} from './timeline.js';
import {StateTab} from './state.js';
import {DiffTab} from './diff.js';
import {ReplayTab} from './replay.js';
import {JobView, JobsList} from './jobs.js';

const TABS = [['timeline', 'Timeline'], ['versions', 'Versions'], ['state', 'State'], ['diff', 'Diff'], ['replay', 'Replay']];

function TokenPrompt({reason, onDone}) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(reason ? {code: 'unauthorized', message: reason} : null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setToken(value.trim());
    try {
      await status();
      onDone();
    } catch (err) {
      setError(err.status === 401 ? {code: 'unauthorized', message: 'the server refused this token'} : err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="prompt" id="main">
    <h1>lattice inspector</h1>
    <form onSubmit=${submit} class="card">
      <p>This server needs a bearer token (one of its <code>--tokens</code> file). It is kept in this tab only
        (sessionStorage) and sent as <code>Authorization: Bearer</code> on every API call.</p>
      <label for="token">Token</label>
      <input id="token" type="password" autocomplete="off" autofocus required minlength="16"
        value=${value} onInput=${(e) => setValue(e.target.value)} />
      <button type="submit" disabled=${busy}>Open</button>
      <${ErrorBox} error=${error} />
    </form>
  </main>`;
}

// -- the agents list -------------------------------------------------------------------

const updatedCache = new Map();  // agentId -> {key, updated}

function AgentList({selected}) {
  const [filter, setFilter] = useState('');
  const [tick, setTick] = useState(0);
  const [activity, setActivity] = useState({});
  const list = useAsync(() => call('agent:list', {includeTerminated: true}), [tick]);
  useEffect(() => {  // the list itself is polled; the selected agent's versions arrive over SSE
    const t = setInterval(() => document.visibilityState === 'visible' && setTick((x) => x + 1), 10000);
    return () => clearInterval(t);
  }, []);
  useBus('agents-changed', () => setTick((x) => x + 1));
  const pending = useRef(null);
  useBus('version', (v) => {
    setActivity((a) => ({...a, [v.agentId]: v.ts}));
    clearTimeout(pending.current);
    pending.current = setTimeout(() => setTick((x) => x + 1), 400);
  });
  const agents = list.value?.agents || [];
  const f = filter.trim().toLowerCase();
  const shown = agents.filter((a) => !f || a.agentId.toLowerCase().includes(f) || a.status.toLowerCase() === f ||
    (f === 'error' && a.error));
  const visible = shown.slice(0, 500);
  // last activity: each agent's `updated`, read again only when its summary changed
  useEffect(() => {
    let stop = false;
    const todo = visible.slice(0, 200).filter((a) => updatedCache.get(a.agentId)?.key !== JSON.stringify(a));
    if (!todo.length) return;
    const t = setTimeout(() => mapLimit(todo, 2, async (a) => {
      if (stop) return;
      const out = await call('covia:read', {path: gpath(a.agentId, 'updated')}).catch(() => null);
      updatedCache.set(a.agentId, {key: JSON.stringify(a), updated: out?.value ?? null});
    }).then(() => !stop && setActivity((x) => ({...x}))), 300);
    return () => { stop = true; clearTimeout(t); };
  }, [list.value, filter]);
  const onKey = (e) => {  // arrow keys move between agents
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const links = [...e.currentTarget.querySelectorAll('a.agent')];
    const i = links.indexOf(document.activeElement);
    const next = links[e.key === 'ArrowDown' ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0)];
    if (next) { e.preventDefault(); next.focus(); }
  };
  const now = Date.now();
  return html`<section class="agents" aria-labelledby="agents-h">
    <div class="row between"><h2 id="agents-h">Agents</h2>
      <span class="muted" aria-live="polite">${list.value ? `${shown.length} of ${agents.length}` : ''}</span></div>
    <label class="sr" for="agent-filter">Filter agents</label>
    <input id="agent-filter" type="search" placeholder="filter: name, status (SLEEPING…), error"
      value=${filter} onInput=${(e) => setFilter(e.target.value)} />
    <${ErrorBox} error=${list.error} />
    ${list.value && !agents.length && html`<p class="muted">No agents yet. Create one with
      <code>lattice invoke agent:create '{"agentId": "Alice", "config": "vendor-assistant"}'</code>.</p>`}
    <ul class="agent-list" onKeyDown=${onKey}>
      ${visible.map((a) => {
        const ts = activity[a.agentId] ?? updatedCache.get(a.agentId)?.updated;
        return html`<li key=${a.agentId}>
          <a class=${'agent' + (a.agentId === selected ? ' selected' : '')} href=${href('agent', a.agentId, 'timeline')}
            aria-current=${a.agentId === selected ? 'page' : undefined} data-agent=${a.agentId}>
            <span class="name">${a.agentId}</span> <${Badge} status=${a.status} />
            <span class="meta">${a.taskCount} task${a.taskCount === 1 ? '' : 's'}${' '}
              · <span title="last activity">${ts ? fmtAgo(ts, now) : '…'}</span>
              ${a.error && html` · <span class="err-code" title=${a.error}>${a.errorCode || 'error'}</span>`}</span>
          </a></li>`;
      })}
    </ul>
    ${shown.length > visible.length && html`<p class="muted">${shown.length - visible.length} more: refine the filter.</p>`}
  </section>`;
}

// -- an agent's page ----------------------------------------------------------------------

function ForkOrigin({id}) {
  const o = useAsync(async (signal) => forkOrigin(id, await versionAt(id, 0, {signal}), {signal}), [id]);
  if (!o.value) return null;
  const {sourceId, seq, approx} = o.value;
  return html`<span class="fork-origin">forked from <a href=${href('agent', sourceId, 'versions')}>${sourceId}</a>${' '}at <a href=${href('agent', sourceId, 'state', {at: seq})}>v${seq}</a>${approx ? ' (≈)' : ''}</span>`;
}

function Tabs({id, tab}) {
  const onKey = (e) => {  // arrow keys move between tabs (and follow them)
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = TABS.findIndex(([k]) => k === tab);
    const j = (i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length;
    location.hash = href('agent', id, TABS[j][0]);
    e.preventDefault();
    const list = e.currentTarget;
    requestAnimationFrame(() => list.querySelector(`[data-tab=${TABS[j][0]}]`)?.focus());
  };
  return html`<nav class="tabs" role="tablist" aria-label="views of the agent" onKeyDown=${onKey}>
    ${TABS.map(([k, label]) => html`<a role="tab" href=${href('agent', id, k)} data-tab=${k}
      aria-selected=${k === tab ? 'true' : 'false'} tabindex=${k === tab ? 0 : -1}>${label}</a>`)}
  </nav>`;
}

function AgentPage({id, tab, query}) {
  const [head, setHead] = useState(null);  // the latest agent-version event
  const [live, setLive] = useState('connecting');
  const [rev, setRev] = useState(0);  // bumped (debounced) on new versions: views reload what they show
  const timer = useRef(null);
  useEffect(() => {
    setHead(null);
    const stop = followAgent(id, {
      onVersion: (v) => {
        setHead(v);
        emit('version', v);
        clearTimeout(timer.current);
        timer.current = setTimeout(() => setRev((r) => r + 1), 300);
      },
      onState: setLive,
    });
    return () => { stop(); clearTimeout(timer.current); };
  }, [id]);
  const info = useAsync((signal) => call('agent:info', {agentId: id}, {signal}), [id, rev]);
  const i = info.value;
  const headSeq = head?.seq;
  let body = null;
  if (i) {
    const props = {id, info: i, headSeq, rev, query};
    if (tab === 'timeline') body = html`<${TimelineTab} ...${props} />`;
    else if (tab === 'versions') body = html`<${LazyVersions} ...${props} />`;
    else if (tab === 'state') body = html`<${StateTab} ...${props} />`;
    else if (tab === 'diff') body = html`<${DiffTab} ...${props} />`;
    else if (tab === 'replay') body = html`<${ReplayTab} ...${props} />`;
  }
  return html`<article class="agent-page" aria-labelledby="agent-h">
    <header class="agent-head">
      <h2 id="agent-h">${id}</h2>
      ${i && html`<${Badge} status=${head?.status || i.status} />`}
      <span class="facts">
        ${headSeq != null && html`<span>version <a href=${href('agent', id, 'state', {at: headSeq})}>v${headSeq}</a></span>`}
        ${i && html`<span>${i.taskCount} queued task${i.taskCount === 1 ? '' : 's'}</span>
          <span>${i.timelineLength} run${i.timelineLength === 1 ? '' : 's'}</span>`}
        <span class=${'live ' + live} title="versions arrive over the agent's event stream">${
          live === 'live' ? '● live' : live === 'retrying' ? '○ reconnecting' : live === 'removed' ? 'removed' : '○'}</span>
        <${ForkOrigin} id=${id} />
      </span>
    </header>
    ${i?.error && html`<${ErrorBox} title="Last run failed:" error=${{code: i.errorCode, message: i.error}} />`}
    <${ErrorBox} error=${info.error} />
    <${Tabs} id=${id} tab=${tab} />
    <section class="tab-body" role="tabpanel" aria-label=${tab}>${body}</section>
  </article>`;
}

/** The versions tab (and dagre with it) is loaded on first use, so that first paint does not wait for it. */
function LazyVersions(props) {
  const mod = useAsync(() => import('./versions.js'), []);
  if (mod.error) return html`<${ErrorBox} error=${mod.error} />`;
  return mod.value ? html`<${mod.value.VersionsTab} ...${props} />` : html`<p class="muted">Loading…</p>`;
}

function Home() {
  return html`<section class="home card">
    <h2>Inspect an agent</h2>
    <p>Pick an agent to see its <strong>timeline</strong> of runs, its <strong>versions</strong> and forks as a
      graph, its <strong>state</strong> at any version, a <strong>diff</strong> between two versions or two
      agents, and <strong>replay</strong> (verify, what-if, fork from a version). <a href="#/jobs">Jobs</a>
      lists recent jobs with their live streams.</p>
    <p class="muted">Keys: Tab moves between controls; ↑/↓ move in the agents list, ←/→ between an agent's tabs;
      <kbd>/</kbd> focuses the agent filter.</p>
  </section>`;
}

function App() {
  const [authed, setAuthed] = useState(!needsToken());
  const [reason, setReason] = useState(null);
  const route = useHash();
  useEffect(() => {
    const on = () => { setAuthed(false); setReason('the server refused the token (it may have changed)'); };
    window.addEventListener('lattice-unauthorized', on);
    const key = (e) => {
      if (e.key === '/' && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement?.tagName)) {
        e.preventDefault();
        document.getElementById('agent-filter')?.focus();
      }
    };
    window.addEventListener('keydown', key);
    return () => { window.removeEventListener('lattice-unauthorized', on); window.removeEventListener('keydown', key); };
  }, []);
  if (!authed) return html`<${TokenPrompt} reason=${reason} onDone=${() => { setReason(null); setAuthed(true); }} />`;
  const [kind, id, tab] = route.parts;
  let content;
  if (kind === 'agent' && id) {
    content = html`<${AgentPage} key=${id} id=${id} tab=${TABS.some(([k]) => k === tab) ? tab : 'timeline'} query=${route.query} />`;
  } else if (kind === 'jobs') content = html`<${JobsList} query=${route.query} />`;
  else if (kind === 'job' && id) content = html`<${JobView} key=${id} id=${id} />`;
  else content = html`<${Home} />`;
  const signOut = () => { setToken(null); setReason(null); setAuthed(false); };
  return html`<div class="shell">
    <button type="button" class="skip" onClick=${() => document.getElementById('main')?.focus()}>Skip to content</button>
    <header class="top">
      <a class="brand" href="#/agents">lattice <span>inspector</span></a>
      <nav aria-label="sections"><a href="#/agents" aria-current=${kind === 'agent' || !kind || kind === 'agents' ? 'page' : undefined}>Agents</a>
        <a href="#/jobs" aria-current=${kind === 'jobs' || kind === 'job' ? 'page' : undefined}>Jobs</a></nav>
      ${AUTH === 'token' && html`<button type="button" class="link" onClick=${signOut}>Forget token</button>`}
    </header>
    <div class="layout">
      <aside class="side"><${AgentList} selected=${kind === 'agent' ? id : null} /></aside>
      <main id="main" tabindex="-1">${content}</main>
    </div>
  </div>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
