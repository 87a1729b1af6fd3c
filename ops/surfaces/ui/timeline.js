// The timeline of an agent: each successful run (newest first, paged from g/<id>/timeline) with its tasks,
// messages, result, task results and duration; the model exchanges each run recorded (on demand: the run's
// version is found, then agent:version gives its requests, rebuilt and checked against the recorded digests,
// and the replies); and the failed runs among the latest versions.

import {useState} from 'preact/hooks';
import {call} from './api.js';
import {gpath, headVersion, recentFailedRuns, runVersionOf} from './model.js';
import {Badge, ErrorBox, Expandable, JsonView, fmtDur, fmtTime, href, html, preview, useAsync} from './util.js';

const PAGE = 20;

function Message({m}) {
  return html`<li class=${'msg role-' + (m.role || 'other')}>
    <span class="role">${m.role || '?'}${m.name ? ` · ${m.name}` : ''}</span>
    ${m.content != null && html`<div class="content">${typeof m.content === 'string' ? m.content : html`<${JsonView} value=${m.content} />`}</div>`}
    ${(m.toolCalls || []).map((c) => html`<div class="tool-call">→ <code>${c.name}</code> <${Expandable} value=${c.arguments} label="arguments" /></div>`)}
  </li>`;
}

/** The messages of a request the model had already seen in the previous one (or, for the first, its context). */
function contextLength(request, prev) {
  const msgs = request.messages || [];
  if (prev?.messages) return Math.min(prev.messages.length, msgs.length);
  let n = msgs.length;
  while (n > 0 && msgs[n - 1].role === 'user') n--;  // the first call: what the run added is its user messages
  return n;
}

const MAX_SIZE = 1 << 20;

/** One model call: the exact request (its new messages shown, the rest folded), the reply, the digest check. */
function Exchange({ex, k, prev, n, truncated}) {
  const req = ex.request;
  const msgs = req?.messages || [];
  const ctx = req ? contextLength(req, prev) : 0;
  const reply = ex.reply || {};
  const model = req?.model ? [req.model.provider, req.model.model].filter(Boolean).join(' · ') : '';
  return html`<li class="exchange" data-exchange=${k}>
    <div class="row wrap between"><strong>Call ${k + 1} of ${n}</strong>
      <span class="muted">${model}${' '}
        ${ex.verified ? html`<span class="ok" title=${`the rebuilt request hashes to the recorded digest ${ex.digest}`}>✓ request verified</span>`
          : html`<span class="warn" title=${`recorded digest ${ex.digest}`}>${req ? '✗ request differs from the recorded digest' : 'request not shown'}</span>`}</span></div>
    ${req ? html`
      <h5>Request <span class="muted">${msgs.length} message${msgs.length === 1 ? '' : 's'}${req.tools?.length ? `, ${req.tools.length} tools offered` : ''}</span></h5>
      ${ctx > 0 && html`<details class="context"><summary class="muted">${k === 0
        ? `${ctx} message${ctx === 1 ? '' : 's'} of context (system prompt and history window)`
        : `the ${ctx} message${ctx === 1 ? '' : 's'} of call ${k}`}</summary>
        <ol class="messages">${msgs.slice(0, ctx).map((m) => html`<${Message} m=${m} />`)}</ol></details>`}
      <ol class="messages new">${msgs.slice(ctx).map((m) => html`<${Message} m=${m} />`)}</ol>
      ${req.tools?.length > 0 && html`<p class="muted tools-offered">tools: ${req.tools.map((t) => t.name).join(', ')}</p>`}`
    : html`<p class="muted">The request is not shown: ${truncated ? 'it is over the size bound, or it'
        : 'it'} could not be rebuilt from the run's base version (gone, or pruned).</p>`}
    <h5>Reply</h5>
    <ol class="messages reply"><${Message} m=${{role: 'assistant', content: reply.content, toolCalls: reply.toolCalls}} /></ol>
    ${req && html`<${Expandable} value=${req} label="the exact request" n=${60} />`}
  </li>`;
}

function Exchanges({id, index, headSeq}) {
  const [open, setOpen] = useState(false);
  const q = useAsync(async (signal) => {
    if (!open) return null;
    const top = headSeq ?? (await headVersion(id, {signal})).seq;
    const seq = await runVersionOf(id, index, top, {signal});
    if (seq === 0) return {seq, inherited: true};
    return call('agent:version', {agentId: id, at: seq, maxSize: MAX_SIZE}, {signal});
  }, [open, id, index]);
  if (!open) {
    return html`<button type="button" class="small" onClick=${() => setOpen(true)}>Show the model exchanges</button>`;
  }
  if (q.error) return html`<${ErrorBox} error=${q.error} />`;
  if (!q.value) return html`<p class="muted">Finding the run's version…</p>`;
  const v = q.value;
  if (v.inherited) return html`<p class="muted">This entry came with the fork (version 0): its run is in the source agent.</p>`;
  const list = v.exchanges || [];
  return html`<div class="exchanges" data-ready="exchanges">
    <p class="muted">Recorded by version <a href=${href('agent', id, 'state', {at: v.seq, path: 'state/history'})}>v${v.seq}</a>${' '}
      (<code>${v.op}</code>, ${fmtTime(v.ts)}; <a href=${href('agent', id, 'diff', {from: v.seq - 1, to: v.seq})}>diff v${v.seq - 1} → v${v.seq}</a>):${' '}
      ${v.exchanges == null ? 'no model exchange is recorded for it.' : `${list.length} model call${list.length === 1 ? '' : 's'}, as the model got them.`}</p>
    ${list.length > 0 && html`<ol class="exchange-list">${list.map((ex, k) => html`<${Exchange} ex=${ex} k=${k} n=${list.length} truncated=${v.truncated} prev=${k ? list[k - 1].request : null} />`)}</ol>`}
    ${v.truncated && html`<p class="muted">Some of it is over ${MAX_SIZE.toLocaleString()} bytes and is left out.</p>`}
  </div>`;
}

function Entry({id, e, index, headSeq}) {
  const tasks = e.tasks || [];
  const messages = e.messages || [];
  const results = Object.entries(e.taskResults || {});
  return html`<li class="run"><details>
    <summary>
      <span class="idx">#${index + 1}</span>
      <span class="when">${fmtTime(e.start)}</span>
      <span class="dur" title="duration">${fmtDur(e.end - e.start)}</span>
      <span class="counts">${tasks.length} task${tasks.length === 1 ? '' : 's'}, ${messages.length} message${messages.length === 1 ? '' : 's'}</span>
      <span class="result">${preview(e.result, 100)}</span>
    </summary>
    <div class="run-body">
      <dl class="facts-grid">
        <dt>op</dt><dd><code>${e.op}</code></dd>
        <dt>start</dt><dd>${fmtTime(e.start)}</dd>
        <dt>end</dt><dd>${fmtTime(e.end)} (${fmtDur(e.end - e.start)})</dd>
      </dl>
      ${tasks.length > 0 && html`<h4>Tasks</h4><ol>${tasks.map((t) => html`<li><${Expandable} value=${t} label="task" /></li>`)}</ol>`}
      ${messages.length > 0 && html`<h4>Messages</h4><ol>${messages.map((m) => html`<li>
        <span class="muted">${m.caller || ''} ${m.ts ? fmtTime(m.ts) : ''}</span> <${Expandable} value=${m.message ?? m} label="message" /></li>`)}</ol>`}
      <h4>Result</h4><${JsonView} value=${e.result} label="result" />
      ${results.length > 0 && html`<h4>Task results</h4><ul class="task-results">${results.map(([tid, r]) => html`<li>
        <a href=${href('job', tid)}><code>${tid}</code></a> <${Badge} status=${r.status} />
        ${r.output !== undefined && html` <${Expandable} value=${r.output} label="output" />`}
        ${r.error && html`<${ErrorBox} error=${r.error} />`}</li>`)}</ul>`}
      <h4>Model exchanges</h4>
      <${Exchanges} id=${id} index=${index} headSeq=${headSeq} />
    </div>
  </details></li>`;
}

function FailedRuns({id, rev}) {
  const q = useAsync((signal) => recentFailedRuns(id, 50, {signal}), [id, rev]);
  if (!q.value?.length) return null;
  return html`<section class="failed" aria-label="failed runs">
    <h3>Failed runs <span class="muted">(in the latest 50 versions)</span></h3>
    <ul>${q.value.map(({version: v, error}) => html`<li>
      <a href=${href('agent', id, 'state', {at: v.seq})}>v${v.seq}</a> <span class="muted">${fmtTime(v.ts)}</span>
      <${ErrorBox} error=${error} /></li>`)}</ul>
  </section>`;
}

export function TimelineTab({id, info, headSeq, rev}) {
  const [shown, setShown] = useState(PAGE);
  const count = info.timelineLength;
  const q = useAsync(async (signal) => {
    if (!count) return [];
    const offset = Math.max(0, count - shown);
    const out = await call('covia:slice', {path: gpath(id, 'timeline'), offset, limit: Math.min(count - offset, 10000)}, {signal});
    return (out.values || []).map((e, i) => ({e, index: offset + i})).reverse();
  }, [id, count, shown]);
  const entries = q.value || [];
  return html`<div class="timeline" data-ready=${q.value ? 'timeline' : undefined}>
    <${FailedRuns} id=${id} rev=${rev} />
    <h3>Runs <span class="muted">${count.toLocaleString()} in all, newest first</span></h3>
    <${ErrorBox} error=${q.error} />
    ${q.value && !count && html`<p class="muted">No successful run yet.</p>`}
    <ol class="runs" reversed>${entries.map(({e, index}) => html`<${Entry} key=${index} id=${id} e=${e} index=${index} headSeq=${headSeq} />`)}</ol>
    ${count > entries.length && q.value && html`<button type="button" onClick=${() => setShown((n) => n + PAGE)}>
      Older runs (${(count - entries.length).toLocaleString()} more)</button>`}
  </div>`;
}
