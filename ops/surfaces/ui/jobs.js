// Jobs: the latest ones (from j/, newest first, paged) and one job with its input, output, error and live
// stream (GET /api/v1/jobs/<id>/sse until it is terminal).

import {useEffect, useState} from 'preact/hooks';
import {call, cancelJob, errorOf, followJob, getJob} from './api.js';
import {Badge, ErrorBox, JsonView, fmtDur, fmtTime, href, html, useAsync} from './util.js';

const PAGE = 50;
const TERMINAL = new Set(['COMPLETE', 'FAILED', 'CANCELLED', 'TIMEOUT']);
// operations that only read: hidden by default (the inspector itself makes many of them)
const READS = new Set(['covia:read', 'covia:list', 'covia:slice', 'agent:info', 'agent:list', 'agent:history',
  'agent:diff', 'agent:context', 'agent:version']);

export function JobsList({query}) {
  const [want, setWant] = useState(PAGE);
  const [reads, setReads] = useState(query.get('reads') === '1');
  const [tick, setTick] = useState(0);
  // j/ lists every job of the caller, oldest first, the inspector's own reads among them: walk back from the
  // newest, 100 at a time, until `want` jobs are found (at most 2,000 looked at per view)
  const q = useAsync(async (signal) => {
    const meta = await call('covia:list', {path: 'j', limit: 1}, {signal});
    const count = meta.exists ? meta.count : 0;
    const jobs = [];
    let end = count;
    while (end > 0 && jobs.length < want && count - end < 2000) {
      const offset = Math.max(0, end - 100);
      const out = await call('covia:slice', {path: 'j', offset, limit: end - offset}, {signal});
      for (const {key, value} of (out.values || []).reverse()) {
        if (jobs.length < want && (reads || !READS.has(value?.operation ?? value?.op))) jobs.push({key, ...value});
      }
      end = offset;
    }
    return {count, jobs, end};
  }, [want, reads, tick]);
  const jobs = q.value?.jobs || [];
  return html`<section class="jobs" aria-labelledby="jobs-h">
    <div class="row between wrap"><h2 id="jobs-h">Jobs</h2>
      <span class="row">
        <label><input type="checkbox" checked=${reads} onChange=${(e) => setReads(e.target.checked)} /> show reads</label>
        <button type="button" onClick=${() => setTick((t) => t + 1)}>Refresh</button></span></div>
    <${ErrorBox} error=${q.error} />
    <div class="table-scroll"><table class="job-table" data-ready=${q.value ? 'jobs' : undefined}>
      <thead><tr><th scope="col">created</th><th scope="col">operation</th><th scope="col">agent</th><th scope="col">status</th><th scope="col">duration</th></tr></thead>
      <tbody>${jobs.map((j) => html`<tr key=${j.key}>
        <td><a href=${href('job', j.jobId || j.id || j.key)}>${fmtTime(j.created)}</a></td>
        <td><code>${j.operation ?? j.op}</code></td>
        <td>${j.input?.agentId && html`<a href=${href('agent', j.input.agentId, 'timeline')}>${j.input.agentId}</a>`}</td>
        <td><${Badge} status=${j.status} /></td>
        <td>${TERMINAL.has(j.status) ? fmtDur(j.updated - j.created) : '…'}</td></tr>`)}</tbody>
    </table></div>
    ${q.value && !jobs.length && html`<p class="muted">No ${reads ? '' : 'non-read '}job among the latest ${(q.value.count - q.value.end).toLocaleString()}.</p>`}
    ${q.value && q.value.end > 0 && jobs.length >= want && html`<button type="button" onClick=${() => setWant((n) => n + PAGE)}>Older jobs</button>`}
  </section>`;
}

export function JobView({id}) {
  const [job, setJob] = useState(null);
  const [live, setLive] = useState(false);
  const [error, setError] = useState(null);
  const [cancelError, setCancelError] = useState(null);
  const rec = useAsync((signal) => call('covia:read', {path: `j/${id}`, maxSize: 1 << 20}, {signal}), [id, job?.status]);
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      try {
        const first = await getJob(id, {signal: ctl.signal});
        setJob(first);
        if (TERMINAL.has(first.status)) return;
        setLive(true);
        await followJob(id, {signal: ctl.signal, onUpdate: setJob});
      } catch (e) {
        if (e.name !== 'AbortError') setError(e);
      } finally {
        if (!ctl.signal.aborted) setLive(false);
      }
    })();
    return () => ctl.abort();
  }, [id]);
  const cancel = async () => {
    try { setJob(await cancelJob(id)); } catch (e) { setCancelError(e); }
  };
  const input = rec.value?.value?.input;
  return html`<article class="job" aria-labelledby="job-h">
    <h2 id="job-h">Job <code>${id}</code></h2>
    <${ErrorBox} error=${error} />
    ${job && html`<div data-ready="job">
      <p class="row wrap"><${Badge} status=${job.status} /> <code>${job.operation ?? job.op}</code>
        ${live && html`<span class="live live" role="status">● following its event stream</span>`}
        ${!TERMINAL.has(job.status) && html`<button type="button" onClick=${cancel}>Cancel</button>`}</p>
      <${ErrorBox} error=${cancelError} />
      <dl class="facts-grid">
        <dt>created</dt><dd>${fmtTime(job.created)}</dd>
        <dt>updated</dt><dd>${fmtTime(job.updated)} (${fmtDur(job.updated - job.created)})</dd>
        ${input?.agentId && html`<dt>agent</dt><dd><a href=${href('agent', input.agentId, 'timeline')}>${input.agentId}</a></dd>`}
      </dl>
      <h3>Input</h3>
      ${input !== undefined ? html`<${JsonView} value=${input} label="input" />` : html`<p class="muted">${rec.loading ? '…' : 'not recorded'}</p>`}
      <h3>Output</h3><${JsonView} value=${job.output} label="output" />
      ${errorOf(job) && html`<h3>Error</h3><${ErrorBox} error=${errorOf(job)} />`}
    </div>`}
  </article>`;
}
