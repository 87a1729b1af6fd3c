// The inspector's shell: the token prompt, the agents list, an agent's page with its tabs, and the routes.
//
// Routes (location.hash): #/agents, #/agent/<id>/<tab>?..., #/jobs, #/job/<jobId>, #/threads,
// #/thread/<threadId>?ns=&from=&to= (a LangGraph thread: threads.js).

import {render} from 'preact';
import {useEffect, useRef, useState} from 'preact/hooks';
import {AUTH, call, errorOf, followAgent, followCaller, needsToken, setToken, status, taskCountOf} from './api.js';
import {Badge, ErrorBox, fmtAgo, href, html, useAsync, useHash} from './util.js';
import {TimelineTab} from './timeline.js';
import {StateTab} from './state.js';
import {DiffTab} from './diff.js';
import {ReplayTab} from './replay.js';
import {JobView, JobsList} from './jobs.js';
import {ThreadPage, ThreadsList} from './threads.js';

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
//
// The list comes from the caller's event stream (GET /api/v1/events): the whole list when it connects, then
// each agent created, changed or removed. While the stream is down (it reconnects by itself), agent:list is
// polled slowly instead.

const POLL_MS = 30000;

function AgentList({selected}) {
  const [filter, setFilter] = useState('');
  const [agents, setAgents] = useState(null);  // Map agentId -> agent:list entry
  const [live, setLive] = useState('connecting');
  const [error, setError] = useState(null);
  useEffect(() => {
    const stop = followCaller({
      onList: (list) => { setError(null); setAgents(new Map(list.map((a) => [a.agentId, a]))); },
      onEvent: (event, a) => setAgents((m) => {
        const next = new Map(m || []);
        if (event === 'agent-removed') next.delete(a.agentId); else next.set(a.agentId, a);
        return next;
      }),
      onState: setLive,
    });
    return stop;
  }, []);
  useEffect(() => {  // the fallback: poll while the stream is down
    if (live === 'live') return;
    let stop = false;
    const poll = () => document.visibilityState === 'visible' && call('agent:list', {includeTerminated: true}).then(
      (out) => { if (!stop) { setError(null); setAgents(new Map(out.agents.map((a) => [a.agentId, a]))); } },
      (e) => { if (!stop) setError(e); });
    const first = setTimeout(poll, live === 'connecting' ? 3000 : 0);  // a stream that connects needs no poll
    const t = setInterval(poll, POLL_MS);
    return () => { stop = true; clearTimeout(first); clearInterval(t); };
  }, [live]);
  const [, setNow] = useState(0);
  useEffect(() => {  // "n s ago" moves on
    const t = setInterval(() => document.visibilityState === 'visible' && setNow(Date.now()), 10000);
    return () => clearInterval(t);
  }, []);
  const all = agents ? [...agents.values()].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0)) : [];
  const f = filter.trim().toLowerCase();
  const shown = all.filter((a) => !f || a.agentId.toLowerCase().includes(f) || a.status.toLowerCase() === f ||
    (f === 'error' && errorOf(a)));
  const visible = shown.slice(0, 500);
  const onKey = (e) => {  // arrow keys move between agents
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const links = [...e.currentTarget.querySelectorAll('a.agent')];
    const i = links.indexOf(document.activeElement);
    const next = links[e.key === 'ArrowDown' ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0)];
    if (next) { e.preventDefault(); next.focus(); }
  };
  const now = Date.now();
  return html`<section class="agents" aria-labelledby="agents-h" data-live=${live}>
    <div class="row between"><h2 id="agents-h">Agents</h2>
      <span class="muted" aria-live="polite">${agents ? `${shown.length} of ${all.length}` : ''}
        <span class=${'stream is-' + live} title=${live === 'live' ? 'live: the list follows your event stream'
          : 'the event stream is down: reconnecting (the list is read every 30 s meanwhile)'}>${
          live === 'live' ? ' ●' : live === 'connecting' ? '' : ' ○'}</span></span></div>
    <label class="sr" for="agent-filter">Filter agents</label>
    <input id="agent-filter" type="search" placeholder="filter: name, status (SLEEPING…), error"
      value=${filter} onInput=${(e) => setFilter(e.target.value)} />
    <${ErrorBox} error=${error} />
    ${agents && !all.length && html`<p class="muted">No agents yet. Create one with
      <code>lattice invoke agent:create '{"agentId": "Alice", "config": "vendor-assistant"}'</code>.</p>`}
    <ul class="agent-list" onKeyDown=${onKey}>
      ${visible.map((a) => {
        const n = taskCountOf(a);
        const err = errorOf(a);
        return html`<li key=${a.agentId}>
          <a class=${'agent' + (a.agentId === selected ? ' selected' : '')} href=${href('agent', a.agentId, 'timeline')}
            aria-current=${a.agentId === selected ? 'page' : undefined} data-agent=${a.agentId}>
            <span class="name">${a.agentId}</span> <${Badge} status=${a.status} />
            <span class="meta">${n} task${n === 1 ? '' : 's'}${' '}
              · <span title="last activity">${a.updated ? fmtAgo(a.updated, now) : '—'}</span>
              ${err && html` · <span class="err-code" title=${err.message}>${err.code}</span>`}</span>
          </a></li>`;
      })}
    </ul>
    ${shown.length > visible.length && html`<p class="muted">${shown.length - visible.length} more: refine the filter.</p>`}
  </section>`;
}

// -- an agent's page ----------------------------------------------------------------------

function ForkOrigin({origin}) {
  if (!origin?.agentId) return null;
  return html`<span class="fork-origin">forked from <a href=${href('agent', origin.agentId, 'versions')}>${origin.agentId}</a>${' '}at <a href=${href('agent', origin.agentId, 'state', {at: origin.seq})}>v${origin.seq}</a></span>`;
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
        ${i && html`<span>${taskCountOf(i)} queued task${taskCountOf(i) === 1 ? '' : 's'}</span>
          <span>${i.timelineLength} run${i.timelineLength === 1 ? '' : 's'}</span>`}
        <span class=${'live ' + live} title="versions arrive over the agent's event stream">${
          live === 'live' ? '● live' : live === 'retrying' ? '○ reconnecting' : live === 'removed' ? 'removed' : '○'}</span>
        <${ForkOrigin} origin=${i?.forkedFrom} />
      </span>
    </header>
    ${errorOf(i) && html`<${ErrorBox} title="Last run failed:" error=${errorOf(i)} />`}
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
      lists recent jobs with their live streams; <a href="#/threads">Threads</a> your LangGraph threads, their
      checkpoints and a diff between two.</p>
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
  else if (kind === 'threads') content = html`<${ThreadsList} />`;
  else if (kind === 'thread' && id) content = html`<${ThreadPage} key=${id} id=${id} query=${route.query} />`;
  else content = html`<${Home} />`;
  const signOut = () => { setToken(null); setReason(null); setAuthed(false); };
  return html`<div class="shell">
    <button type="button" class="skip" onClick=${() => document.getElementById('main')?.focus()}>Skip to content</button>
    <header class="top">
      <a class="brand" href="#/agents">lattice <span>inspector</span></a>
      <nav aria-label="sections"><a href="#/agents" aria-current=${kind === 'agent' || !kind || kind === 'agents' ? 'page' : undefined}>Agents</a>
        <a href="#/jobs" aria-current=${kind === 'jobs' || kind === 'job' ? 'page' : undefined}>Jobs</a>
        <a href="#/threads" aria-current=${kind === 'threads' || kind === 'thread' ? 'page' : undefined}>Threads</a></nav>
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
