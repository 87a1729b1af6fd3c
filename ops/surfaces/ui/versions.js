// Versions: the agent's chain of versions with its forks, across agents, as a graph laid out by dagre, and
// the list of versions (paged with agent:history `before`). A node opens the state tree at that version.
//
// The fork family comes from one agent:list call (`includeForks`: each agent's head seq and the version it was
// forked from). The graph draws the agent's lineage (the agents it came from) and, for each agent drawn that is
// expanded, its forks a page at a time; an agent not expanded shows one "▸ n forks" node, which expands it on
// click (or Enter), and an expanded agent with more forks than shown a "+ n more" node. So a family of any size
// is navigable while the page lays out only what is shown. For each agent drawn: its version 0, its head, every
// version a drawn fork was taken from, the latest versions of the selected agent, and the versions a what-if run
// marked as diverged; runs of versions in between are one "… n versions" node.

import {useEffect, useMemo, useRef, useState} from 'preact/hooks';
import dagre from 'dagre';
import {call} from './api.js';
import {runError} from './model.js';
import {whatIfs} from './replay.js';
import {ErrorBox, fmtTime, href, html, useAsync} from './util.js';

const PAGE = 50;
const RECENT = 6;  // latest versions of the selected agent drawn one by one
const FIRST_FORKS = 8;  // forks of an expanded agent drawn at first
const MORE_FORKS = 24;  // and at each "+ n more"

/** Every agent of the caller: Map agentId -> {head (seq), origin: {sourceId, seq} | null}. */
async function loadForest(signal) {
  const {agents} = await call('agent:list', {includeTerminated: true, includeForks: true}, {signal});
  return new Map(agents.map((a) => [a.agentId, {head: a.headSeq ?? 0,
    origin: a.forkedFrom?.agentId ? {sourceId: a.forkedFrom.agentId, seq: a.forkedFrom.seq} : null}]));
}

/** Map agentId -> its forks (among `forest`), in the order of the versions they were taken at. */
function forksOf(forest) {
  const kids = new Map();
  for (const [a, r] of forest) {
    const src = r.origin?.sourceId;
    if (src && forest.has(src) && src !== a) {
      if (!kids.has(src)) kids.set(src, []);
      kids.get(src).push(a);
    }
  }
  for (const list of kids.values()) {
    list.sort((x, y) => (forest.get(x).origin.seq - forest.get(y).origin.seq) || (x < y ? -1 : x > y ? 1 : 0));
  }
  return kids;
}

/** The agents `id` came from, oldest first, then `id`. */
function lineageOf(forest, id) {
  const out = [id];
  const seen = new Set(out);
  for (let src = forest.get(id)?.origin?.sourceId; src && forest.has(src) && !seen.has(src);
    src = forest.get(src).origin?.sourceId) {
    out.unshift(src);
    seen.add(src);
  }
  return out;
}

/** How many agents descend from `root`, itself included. */
function familySize(kids, root) {
  let n = 0;
  const todo = [root];
  const seen = new Set();
  while (todo.length) {
    const a = todo.pop();
    if (seen.has(a)) continue;
    seen.add(a);
    n++;
    todo.push(...(kids.get(a) || []));
  }
  return n;
}

/**
 * The agents to draw, from the family's root: the forks of each expanded agent (the first `shown(a)`, and those
 * on the lineage); and the controls: ["forks", a, n] for an agent not expanded, ["more", a, n] for the rest.
 */
function drawn(kids, lineage, expanded, shown) {
  const path = new Set(lineage);
  const agents = [];
  const controls = [];
  const todo = [lineage[0]];
  const seen = new Set();
  while (todo.length) {
    const a = todo.shift();
    if (seen.has(a)) continue;
    seen.add(a);
    agents.push(a);
    const ks = kids.get(a) || [];
    if (!ks.length) continue;
    if (!expanded.has(a)) { controls.push(['forks', a, ks.length]); continue; }
    const limit = shown.get(a) ?? FIRST_FORKS;
    const next = ks.filter((k, i) => i < limit || path.has(k));
    todo.push(...next);
    if (next.length < ks.length) controls.push(['more', a, ks.length - next.length]);
  }
  return {agents, controls};
}

/** Nodes and edges of the graph (before layout). */
function buildGraph(forest, id, agents, controls, headSeqLive, marks) {
  const keep = new Map(agents.map((a) => [a, new Set()]));
  const top = new Map();
  for (const a of agents) {
    const r = forest.get(a);
    const head = a === id && headSeqLive != null ? Math.max(headSeqLive, r.head) : r.head;
    top.set(a, head);
    keep.get(a).add(0).add(head);
    if (a === id) for (let s = Math.max(0, head - RECENT + 1); s <= head; s++) keep.get(a).add(s);
    const o = r.origin;
    if (o && keep.has(o.sourceId) && o.seq != null) keep.get(o.sourceId).add(o.seq);
  }
  for (const w of marks) if (keep.has(w.source)) for (const s of w.diverged) keep.get(w.source).add(s);
  const nodes = [];
  const edges = [];
  const diverged = new Set(marks.flatMap((w) => w.diverged.map((s) => `${w.source}@${s}`)));
  for (const a of agents) {
    const seqs = [];
    for (const s of [...keep.get(a)].filter((x) => x <= top.get(a)).sort((x, y) => x - y)) {
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
      const o = forest.get(a).origin;
      nodes.push({key, agent: a, seq: s, head: s === top.get(a), diverged: diverged.has(key),
        op: s === 0 ? (o ? 'agent:fork' : 'agent:create') : null});
      prev = s;
    }
    const o = forest.get(a).origin;
    if (o && keep.has(o.sourceId) && o.seq != null) edges.push({from: `${o.sourceId}@${o.seq}`, to: `${a}@0`, fork: true});
  }
  for (const [kind, a, n] of controls) {
    const key = `${a}#${kind}`;
    nodes.push({key, agent: a, control: kind, count: n});
    edges.push({from: `${a}@${top.get(a)}`, to: key, fork: true});
  }
  return {agents, nodes, edges};
}

function layout({agents, nodes, edges}) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({rankdir: 'LR', nodesep: 12, ranksep: 26, marginx: 8, marginy: 8});
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.key, {width: n.gap ? 92 : n.control ? 104 : 108, height: n.gap || n.control ? 26 : 40});
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
  const q = useAsync((signal) => loadForest(signal), [id]);
  const [expanded, setExpanded] = useState(null);  // agents whose forks are drawn (null: the lineage)
  const [shown, setShown] = useState(() => new Map());  // agent -> how many of its forks are drawn
  const marks = whatIfs();
  const fam = useMemo(() => {
    if (!q.value || !q.value.has(id)) return null;
    const kids = forksOf(q.value);
    const lineage = lineageOf(q.value, id);
    return {kids, lineage, size: familySize(kids, lineage[0])};
  }, [q.value, id]);
  const laid = useMemo(() => {
    if (!fam) return null;
    const {agents, controls} = drawn(fam.kids, fam.lineage, expanded || new Set(fam.lineage), shown);
    return layout(buildGraph(q.value, id, agents, controls, headSeq, marks));
  }, [fam, headSeq, expanded, shown]);
  const box = useRef(null);
  useEffect(() => {  // show the selected version, else this agent's head, on first layout
    const want = laid?.nodes.find((n) => n.agent === id && !n.control && (selected != null ? n.seq === selected : n.head));
    const el = box.current;
    if (want && el && want.x + want.width / 2 > el.clientWidth) el.scrollLeft = want.x + want.width / 2 + 24 - el.clientWidth;
  }, [laid == null]);
  if (q.error) return html`<${ErrorBox} error=${q.error} />`;
  if (!laid) return html`<p class="muted">Laying out the versions…</p>`;
  const go = (n) => { location.hash = href('agent', n.agent, 'state', {at: n.seq}); };
  const expand = (n) => {
    if (n.control === 'forks') setExpanded((x) => new Set([...(x || fam.lineage), n.agent]));
    else setShown((m) => new Map(m).set(n.agent, (m.get(n.agent) ?? FIRST_FORKS) + MORE_FORKS));
    requestAnimationFrame(() => box.current?.focus());  // the control is gone: keep the focus in the graph
  };
  const key = (fn, n) => (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); fn(n); } };
  const path = (pts) => 'M' + pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('L');
  const count = laid.agents.length;
  return html`<figure class="graph" data-ready="graph">
    <div class="graph-scroll" tabindex="0" aria-label="version graph (scrolls)" ref=${box}>
      <svg width=${laid.width} height=${laid.height} viewBox=${`0 0 ${laid.width} ${laid.height}`} role="group" aria-label="versions and forks">
        <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">
          <path d="M0,0L8,4L0,8z" class="arrowhead" /></marker></defs>
        ${laid.edges.map((e) => html`<path class=${'edge' + (e.fork ? ' fork' : '')} d=${path(e.points)} marker-end="url(#arrow)" />`)}
        ${laid.nodes.map((n) => n.gap ? html`<g class="gap" transform=${`translate(${n.x - n.width / 2},${n.y - n.height / 2})`}>
            <rect width=${n.width} height=${n.height} rx="12" /><text x=${n.width / 2} y="17" text-anchor="middle">… ${n.gap.toLocaleString()} version${n.gap === 1 ? '' : 's'}</text></g>`
          : n.control ? html`<g class="more" transform=${`translate(${n.x - n.width / 2},${n.y - n.height / 2})`} tabindex="0"
              role="button" data-node=${n.key} onClick=${() => expand(n)} onKeyDown=${key(expand, n)}
              aria-label=${n.control === 'forks' ? `show the ${n.count} fork${n.count === 1 ? '' : 's'} of ${n.agent}` : `show more forks of ${n.agent} (${n.count} not shown)`}>
              <title>${n.control === 'forks' ? `${n.agent}: ${n.count} fork${n.count === 1 ? '' : 's'}, not shown` : `${n.count} more forks of ${n.agent}`}</title>
              <rect width=${n.width} height=${n.height} rx="12" />
              <text x=${n.width / 2} y="17" text-anchor="middle">${n.control === 'forks' ? `▸ ${n.count.toLocaleString()} fork${n.count === 1 ? '' : 's'}` : `+ ${n.count.toLocaleString()} more`}</text></g>`
          : html`<g class=${'vnode' + (n.agent === id ? ' mine' : '') + (n.head ? ' head' : '') + (n.diverged ? ' diverged' : '') +
              (n.agent === id && n.seq === selected ? ' selected' : '')}
            transform=${`translate(${n.x - n.width / 2},${n.y - n.height / 2})`} tabindex="0" role="link"
            aria-label=${`${n.agent} version ${n.seq}${n.head ? ' (head)' : ''}${n.diverged ? ' (diverged in a what-if)' : ''}: open its state`}
            data-node=${n.key} onClick=${() => go(n)} onKeyDown=${key(go, n)}>
            <title>${n.agent} v${n.seq}${n.op ? ' · ' + n.op : ''}</title>
            <rect width=${n.width} height=${n.height} rx="6" />
            <text x="8" y="16" class="agent-name">${n.agent.length > 13 ? n.agent.slice(0, 12) + '…' : n.agent}</text>
            <text x="8" y="32" class="seq">v${n.seq}${n.head ? ' · head' : ''}${n.diverged ? ' · ≠' : ''}</text></g>`)}
      </svg>
    </div>
    <figcaption class="muted">${fam.size.toLocaleString()} agent${fam.size === 1 ? '' : 's'} in this fork family${
      count < fam.size ? `, ${count.toLocaleString()} shown: select ▸ or + (Enter) to show more forks` : ''}.${' '}
      Solid arrows: one agent's versions; dashed: a fork (from the version it was taken at).
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
