// Versions: the agent's chain of versions with its forks, across agents, as a graph laid out by dagre, and
// the list of versions (paged with agent:history `before`). A node opens the state tree at that version.
//
// The graph shows, for each agent of the fork family (the agent, the agents it came from, the agents forked
// from them), its version 0, its head, every version a fork was taken from, the latest versions of the
// selected agent, and the versions a what-if run marked as diverged; runs of versions in between are one
// "… n versions" node.

import {useEffect, useMemo, useRef, useState} from 'preact/hooks';
import dagre from 'dagre';
import {call} from './api.js';
import {forkForest, runError} from './model.js';
import {whatIfs} from './replay.js';
import {ErrorBox, fmtTime, href, html, useAsync} from './util.js';

const PAGE = 50;
const RECENT = 6;  // latest versions of the selected agent drawn one by one
const MAX_AGENTS = 40;

/** The fork family of `id`: its ancestors and every agent forked (transitively) from any of them. */
function family(forest, id) {
  const children = new Map();
  for (const [a, r] of forest) {
    if (r.origin?.sourceId && forest.has(r.origin.sourceId)) {
      if (!children.has(r.origin.sourceId)) children.set(r.origin.sourceId, []);
      children.get(r.origin.sourceId).push(a);
    }
  }
  let root = id;
  const seen = new Set([id]);
  while (forest.get(root)?.origin?.sourceId && forest.has(forest.get(root).origin.sourceId) && !seen.has(forest.get(root).origin.sourceId)) {
    root = forest.get(root).origin.sourceId;
    seen.add(root);
  }
  const out = [];
  const todo = [root];
  const done = new Set();
  while (todo.length && out.length < MAX_AGENTS) {
    const a = todo.shift();
    if (done.has(a)) continue;
    done.add(a);
    out.push(a);
    todo.push(...(children.get(a) || []));
  }
  return out;
}

/** Nodes and edges of the graph (before layout). */
function buildGraph(forest, id, headSeqLive, marks) {
  const agents = family(forest, id);
  const keep = new Map(agents.map((a) => [a, new Set()]));
  for (const a of agents) {
    const r = forest.get(a);
    const head = a === id && headSeqLive != null ? Math.max(headSeqLive, r.head.seq) : r.head.seq;
    keep.get(a).add(0).add(head);
    if (a === id) for (let s = Math.max(0, head - RECENT + 1); s <= head; s++) keep.get(a).add(s);
    const o = r.origin;
    if (o && keep.has(o.sourceId) && o.seq != null) keep.get(o.sourceId).add(o.seq);
    r.top = head;
  }
  for (const w of marks) if (keep.has(w.source)) for (const s of w.diverged) keep.get(w.source).add(s);
  const nodes = [];
  const edges = [];
  const diverged = new Set(marks.flatMap((w) => w.diverged.map((s) => `${w.source}@${s}`)));
  for (const a of agents) {
    const seqs = [];
    for (const s of [...keep.get(a)].filter((x) => x <= forest.get(a).top).sort((x, y) => x - y)) {
      if (seqs.length && s - seqs[seqs.length - 1] === 2) seqs.push(s - 1);  // never a gap of one version
      seqs.push(s);
    }
    let prev = null;
    for (const s of seqs) {
      if (prev != null && s - prev > 1) {
        const gap = `${a}#gap${prev}`;
        nodes.push({key: gap, agent: a, gap: s - prev - 1, from: prev + 1});
        edges.push({from: `${a}@${prev}`, to: gap}, {from: gap, to: `${a}@${s}`});
      } else if (prev != null) edges.push({from: `${a}@${prev}`, to: `${a}@${s}`});
      const key = `${a}@${s}`;
      nodes.push({key, agent: a, seq: s, head: s === forest.get(a).top, diverged: diverged.has(key),
        op: s === 0 ? forest.get(a).v0.op : s === forest.get(a).top ? forest.get(a).head.op : null});
      prev = s;
    }
    const o = forest.get(a).origin;
    if (o && keep.has(o.sourceId) && o.seq != null) edges.push({from: `${o.sourceId}@${o.seq}`, to: `${a}@0`, fork: true, approx: o.approx});
  }
  return {agents, nodes, edges};
}

function layout({agents, nodes, edges}) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({rankdir: 'LR', nodesep: 12, ranksep: 26, marginx: 8, marginy: 8});
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.key, {width: n.gap ? 92 : 108, height: n.gap ? 26 : 40});
  for (const e of edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const info = g.graph();
  return {
    agents, width: info.width || 0, height: info.height || 0,
    nodes: nodes.map((n) => ({...n, ...g.node(n.key)})),
    edges: edges.filter((e) => g.hasEdge(e.from, e.to)).map((e) => ({...e, points: g.edge(e.from, e.to).points})),
  };
}

function Graph({id, headSeq, selected}) {
  const q = useAsync(async (signal) => {
    const {agents} = await call('agent:list', {includeTerminated: true}, {signal});
    const ids = agents.map((a) => a.agentId);
    // the selected agent first, so that it is always inside the limit
    return forkForest([id, ...ids.filter((a) => a !== id)], 300, {signal});
  }, [id]);
  const marks = whatIfs();
  const laid = useMemo(() => {
    if (!q.value || !q.value.has(id)) return null;
    return layout(buildGraph(q.value, id, headSeq, marks));
  }, [q.value, id, headSeq]);
  const box = useRef(null);
  useEffect(() => {  // show the selected version, else this agent's head, on first layout
    const want = laid?.nodes.find((n) => n.agent === id && (selected != null ? n.seq === selected : n.head));
    const el = box.current;
    if (want && el && want.x + want.width / 2 > el.clientWidth) el.scrollLeft = want.x + want.width / 2 + 24 - el.clientWidth;
  }, [laid == null]);
  if (q.error) return html`<${ErrorBox} error=${q.error} />`;
  if (!laid) return html`<p class="muted">Laying out the versions…</p>`;
  const go = (n) => { location.hash = href('agent', n.agent, 'state', {at: n.seq}); };
  const key = (n) => (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(n); } };
  const path = (pts) => 'M' + pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('L');
  return html`<figure class="graph" data-ready="graph">
    <div class="graph-scroll" tabindex="0" aria-label="version graph (scrolls)" ref=${box}>
      <svg width=${laid.width} height=${laid.height} viewBox=${`0 0 ${laid.width} ${laid.height}`} role="group" aria-label="versions and forks">
        <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0L8,4L0,8z" class="arrowhead" /></marker></defs>
        ${laid.edges.map((e) => html`<path class=${'edge' + (e.fork ? ' fork' : '')} d=${path(e.points)} marker-end="url(#arrow)" />`)}
        ${laid.nodes.map((n) => n.gap ? html`<g class="gap" transform=${`translate(${n.x - n.width / 2},${n.y - n.height / 2})`}>
            <rect width=${n.width} height=${n.height} rx="12" /><text x=${n.width / 2} y="17" text-anchor="middle">… ${n.gap.toLocaleString()} version${n.gap === 1 ? '' : 's'}</text></g>`
          : html`<g class=${'vnode' + (n.agent === id ? ' mine' : '') + (n.head ? ' head' : '') + (n.diverged ? ' diverged' : '') +
              (n.agent === id && n.seq === selected ? ' selected' : '')}
            transform=${`translate(${n.x - n.width / 2},${n.y - n.height / 2})`} tabindex="0" role="link"
            aria-label=${`${n.agent} version ${n.seq}${n.head ? ' (head)' : ''}${n.diverged ? ' (diverged in a what-if)' : ''}: open its state`}
            data-node=${n.key} onClick=${() => go(n)} onKeyDown=${key(n)}>
            <title>${n.agent} v${n.seq}${n.op ? ' · ' + n.op : ''}</title>
            <rect width=${n.width} height=${n.height} rx="6" />
            <text x="8" y="16" class="agent-name">${n.agent.length > 13 ? n.agent.slice(0, 12) + '…' : n.agent}</text>
            <text x="8" y="32" class="seq">v${n.seq}${n.head ? ' · head' : ''}${n.diverged ? ' · ≠' : ''}</text></g>`)}
      </svg>
    </div>
    <figcaption class="muted">${laid.agents.length} agent${laid.agents.length === 1 ? '' : 's'} in this fork family.${' '}
      Solid arrows: one agent's versions; dashed: a fork (from the version it was taken at${
        laid.edges.some((e) => e.approx) ? '; ≈ where the fork named no version and two versions share its millisecond' : ''}).
      ${marks.length > 0 && ' Marked ≠: source versions whose inputs led to a live model call in a what-if.'}
      ${' '}Select a version (Enter) to open its state.</figcaption>
  </figure>`;
}

function VersionRow({id, v}) {
  const failed = useAsync((signal) => v.op === 'agent:run' ? runError(id, v, {signal}) : null, [v.id]);
  return html`<tr class=${failed.value ? 'failed-run' : ''}>
    <td><a href=${href('agent', id, 'state', {at: v.seq})}>v${v.seq}</a></td>
    <td><code>${v.op}</code>${failed.value && html` <span class="err-code" title=${failed.value.message}>failed: ${failed.value.code}</span>`}</td>
    <td>${fmtTime(v.ts)}</td>
    <td>${v.caller}</td>
    <td><code title=${v.id}>${v.id.slice(0, 12)}</code></td>
    <td class="actions">
      ${v.seq > 0 && html`<a href=${href('agent', id, 'diff', {from: v.seq - 1, to: v.seq})}>diff</a>`}
      <a href=${href('agent', id, 'replay', {from: v.seq})}>replay/fork</a></td>
  </tr>`;
}

export function VersionsTab({id, headSeq, rev, query}) {
  const [pages, setPages] = useState(1);
  const selected = query.get('at') != null ? Number(query.get('at')) : null;
  const q = useAsync((signal) => call('agent:history', {agentId: id, limit: PAGE * pages}, {signal}), [id, pages, rev]);
  const versions = q.value?.versions || [];
  const oldest = versions[versions.length - 1];
  return html`<div class="versions-view">
    <${Graph} id=${id} headSeq=${headSeq} selected=${selected} />
    <h3>Versions <span class="muted">newest first</span></h3>
    <${ErrorBox} error=${q.error} />
    <div class="table-scroll"><table class="versions" data-ready=${q.value ? 'versions' : undefined}>
      <thead><tr><th scope="col">version</th><th scope="col">operation</th><th scope="col">time</th><th scope="col">caller</th><th scope="col">id</th><th scope="col"><span class="sr">actions</span></th></tr></thead>
      <tbody>${versions.map((v) => html`<${VersionRow} key=${v.id} id=${id} v=${v} />`)}</tbody>
    </table></div>
    ${oldest && oldest.seq > 0 && html`<button type="button" onClick=${() => setPages((p) => p + 1)}>Older versions (${oldest.seq.toLocaleString()} more)</button>`}
  </div>`;
}
