// Replay an agent: verify (re-derive every version and compare root digests; the first divergence is shown
// with its path), what-if (a new agent forked at a version, with a changed config, re-running the later
// inputs; the source versions whose inputs led to a live model call are marked), and fork from a version.

import {useState} from 'preact/hooks';
import {call} from './api.js';
import {ErrorBox, Expandable, emit, href, html, parseVersion} from './util.js';

/** What-if results, kept for the version graph (which marks the diverged versions): sessionStorage. */
export const WHATIF_KEY = 'lattice.whatif';
export function whatIfs() {
  try { return JSON.parse(sessionStorage.getItem(WHATIF_KEY) || '[]'); } catch { return []; }
}

function useRun() {
  const [st, setSt] = useState({busy: false, error: null, value: null});
  const run = async (fn) => {
    setSt({busy: true, error: null, value: null});
    try { setSt({busy: false, error: null, value: await fn()}); }
    catch (error) { setSt({busy: false, error, value: null}); }
  };
  return [st, run];
}

function parseConfig(text) {
  const t = text.trim();
  if (!t) return undefined;
  let v;
  try { v = JSON.parse(t); } catch (e) { throw new Error(`config is not JSON: ${e.message}`); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('config must be a JSON object, e.g. {"systemPrompt": "…"}');
  return v;
}

function Verify({id, query}) {
  const [from, setFrom] = useState(query.get('from') ?? '');
  const [to, setTo] = useState('');
  const [st, run] = useRun();
  const submit = (e) => {
    e.preventDefault();
    run(() => call('agent:replay', {agentId: id, from: parseVersion(from) ?? undefined, to: parseVersion(to) ?? undefined}));
  };
  const r = st.value;
  const d = r?.divergence;
  return html`<section class="card" aria-labelledby="verify-h">
    <h3 id="verify-h">Verify</h3>
    <p class="muted">Re-derives each version from its parent through the recorded events (no model call) and
      checks every root digest.</p>
    <form class="row wrap" onSubmit=${submit}>
      <label for="verify-from">from</label><input id="verify-from" class="num" placeholder="0" value=${from} onInput=${(e) => setFrom(e.target.value)} />
      <label for="verify-to">to</label><input id="verify-to" class="num" placeholder="head" value=${to} onInput=${(e) => setTo(e.target.value)} />
      <button type="submit" disabled=${st.busy}>${st.busy ? 'Replaying…' : 'Verify'}</button>
    </form>
    <${ErrorBox} error=${st.error} />
    ${r && (r.identical ? html`<p class="ok" role="status" data-result="identical">✓ Identical: ${r.replayed.toLocaleString()} version${r.replayed === 1 ? '' : 's'} re-derived, every root digest matches.</p>`
      : html`<div class="divergence" role="status" data-result="diverged">
        <p><strong>✗ Diverged at version <a href=${href('agent', id, 'state', {at: d.seq})}>v${d.seq}</a></strong>
          after ${r.replayed.toLocaleString()} identical version${r.replayed === 1 ? '' : 's'}.</p>
        <p>First differing path: <a class="div-path" href=${href('agent', id, 'state', {at: d.seq, path: d.path.split('/').slice(0, -1).join('/')})}><code>${d.path || '(the root)'}</code></a>
          ${d.seq > 0 && html` · <a href=${href('agent', id, 'diff', {from: d.seq - 1, to: d.seq})}>diff v${d.seq - 1} → v${d.seq}</a>`}</p>
        <dl class="facts-grid"><dt>recorded</dt><dd><${Expandable} value=${d.expected} /></dd>
          <dt>re-derived</dt><dd><${Expandable} value=${d.got} /></dd></dl>
      </div>`)}
  </section>`;
}

function WhatIf({id, query}) {
  const [from, setFrom] = useState(query.get('from') ?? '0');
  const [into, setInto] = useState(`${id}-whatif`);
  const [config, setConfig] = useState('');
  const [st, run] = useRun();
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const at = parseVersion(from);
      if (at == null) throw new Error('give the version to start from');
      const out = await call('agent:replay', {agentId: id, from: at, into: into.trim(), config: parseConfig(config)});
      const list = whatIfs().filter((w) => w.into !== out.agentId);
      list.push({source: id, from: at, into: out.agentId, diverged: out.diverged || []});
      sessionStorage.setItem(WHATIF_KEY, JSON.stringify(list.slice(-50)));
      emit('agents-changed');
      return out;
    });
  };
  const r = st.value;
  return html`<section class="card" aria-labelledby="whatif-h">
    <h3 id="whatif-h">What-if</h3>
    <p class="muted">Forks this agent at a version into a new agent (with the config changes you give) and
      re-applies the later tasks, messages and triggers; the model is called live wherever a request differs
      from the recorded one. This agent is untouched.</p>
    <form class="stack" onSubmit=${submit}>
      <div class="row wrap">
        <label for="whatif-from">from version</label><input id="whatif-from" class="num" value=${from} onInput=${(e) => setFrom(e.target.value)} />
        <label for="whatif-into">new agent</label><input id="whatif-into" value=${into} onInput=${(e) => setInto(e.target.value)} required />
      </div>
      <label for="whatif-config">config changes (JSON, merged key by key)</label>
      <textarea id="whatif-config" rows="3" placeholder='{"systemPrompt": "Answer in one line."}' value=${config}
        onInput=${(e) => setConfig(e.target.value)}></textarea>
      <div><button type="submit" disabled=${st.busy}>${st.busy ? 'Replaying…' : 'Run what-if'}</button></div>
    </form>
    <${ErrorBox} error=${st.error} />
    ${r && html`<div role="status" data-result="whatif">
      <p>New agent <a href=${href('agent', r.agentId, 'timeline')}><strong>${r.agentId}</strong></a>:${' '}
        ${r.replayed} input${r.replayed === 1 ? '' : 's'} re-applied;${' '}
        ${r.diverged?.length ? html`diverged at source version${r.diverged.length === 1 ? '' : 's'} ${r.diverged.map((s, i) => html`${i ? ', ' : ''}<a class="diverged" href=${href('agent', id, 'state', {at: s})}>v${s}</a>`)}`
          : 'no divergence: every model request matched a recorded one'}.</p>
      <p><a href=${href('agent', id, 'diff', {other: r.agentId})}>Diff ${id} with ${r.agentId}</a> ·${' '}
        <a href=${href('agent', id, 'versions')}>see it in the version graph</a></p>
    </div>`}
  </section>`;
}

function Fork({id, headSeq, query}) {
  const [at, setAt] = useState(query.get('from') ?? '');
  const [into, setInto] = useState(`${id}-fork`);
  const [config, setConfig] = useState('');
  const [timeline, setTimeline] = useState(false);
  const [st, run] = useRun();
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const out = await call('agent:fork', {sourceId: id, agentId: into.trim(), at: parseVersion(at) ?? undefined,
        config: parseConfig(config), includeTimeline: timeline});
      emit('agents-changed');
      return out;
    });
  };
  return html`<section class="card" aria-labelledby="fork-h">
    <h3 id="fork-h">Fork from here</h3>
    <form class="stack" onSubmit=${submit}>
      <div class="row wrap">
        <label for="fork-at">at version</label><input id="fork-at" class="num" placeholder=${headSeq != null ? `head (v${headSeq})` : 'head'} value=${at} onInput=${(e) => setAt(e.target.value)} />
        <label for="fork-into">new agent</label><input id="fork-into" value=${into} onInput=${(e) => setInto(e.target.value)} required />
        <label><input type="checkbox" checked=${timeline} onChange=${(e) => setTimeline(e.target.checked)} /> include timeline</label>
      </div>
      <label for="fork-config">config changes (JSON, optional)</label>
      <textarea id="fork-config" rows="2" value=${config} onInput=${(e) => setConfig(e.target.value)}></textarea>
      <div><button type="submit" disabled=${st.busy}>Fork</button></div>
    </form>
    <${ErrorBox} error=${st.error} />
    ${st.value && html`<p role="status" data-result="fork">Forked: <a href=${href('agent', st.value.agentId, 'timeline')}><strong>${st.value.agentId}</strong></a>${' '}
      (from ${st.value.forkedFrom}).</p>`}
  </section>`;
}

export function ReplayTab(props) {
  return html`<div class="replay-view">
    <${Verify} ...${props} /><${WhatIf} ...${props} /><${Fork} ...${props} />
  </div>`;
}

