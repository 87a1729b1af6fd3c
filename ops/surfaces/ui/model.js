// Questions about agents, answered through the public operations only, each in a few small reads
// (never a whole history): a version by seq, a count at a version, the run that wrote a timeline entry,
// the version a fork was taken from.

import {call, mapLimit} from './api.js';

/** `g/<agentId>/<segments...>` */
export const gpath = (id, ...segs) => ['g', id, ...segs].filter((s) => s != null && s !== '').join('/');

/** The version `seq` of an agent: {seq, id, op, ts, caller} (agent:history with `before`, O(log n) reads). */
export async function versionAt(agentId, seq, opts) {
  const {versions} = await call('agent:history', {agentId, before: seq + 1, limit: 1}, opts);
  return versions[0] || null;
}

export async function headVersion(agentId, opts) {
  const {versions} = await call('agent:history', {agentId, limit: 1}, opts);
  return versions[0] || null;
}

/** The number of items of the list (or keys of the map) at `path` as of version `at`; 0 where absent. */
export async function countAt(path, at, opts) {
  const out = await call('covia:list', {path, at, limit: 1}, opts);
  return out.exists ? (out.count ?? 0) : 0;
}

/**
 * The version whose run wrote timeline entry `index` (0-based): the first version whose timeline holds
 * more than `index` entries (a binary search over versions 0..headSeq: about log2(n) reads).
 */
export async function runVersionOf(agentId, index, headSeq, opts) {
  let lo = 0;
  let hi = headSeq;
  const path = gpath(agentId, 'timeline');
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (await countAt(path, mid, opts) > index) hi = mid; else lo = mid + 1;
  }
  return lo;
}

/**
 * The conversation messages a run at version `seq` appended to the history: {from, to, messages}
 * (at most `max` of them; `from`/`to` are history indexes).
 */
export async function runMessages(agentId, seq, max = 200, opts) {
  const path = gpath(agentId, 'state', 'history');
  const [from, to] = await Promise.all([seq > 0 ? countAt(path, seq - 1, opts) : 0, countAt(path, seq, opts)]);
  if (to <= from) return {from, to, messages: []};
  const out = await call('covia:slice', {path, at: seq, offset: from, limit: Math.min(max, to - from)}, opts);
  return {from, to, messages: out.values || []};
}

const failedCache = new Map();

/** The error recorded by an `agent:run` version when that run failed (a run that completes leaves none). */
export async function runError(agentId, version, opts) {
  const key = `${agentId}\u0000${version.id}`;
  if (!failedCache.has(key)) {
    const out = await call('covia:read', {path: gpath(agentId, 'error'), at: version.seq, maxSize: 8192}, opts);
    failedCache.set(key, out.value ?? null);
  }
  return failedCache.get(key);
}

/** The failed runs among the `limit` latest versions: [{version, error}], newest first. */
export async function recentFailedRuns(agentId, limit = 50, opts) {
  const {versions} = await call('agent:history', {agentId, limit}, opts);
  const runs = versions.filter((v) => v.op === 'agent:run');
  const errors = await mapLimit(runs, 2, (v) => runError(agentId, v, opts));
  return runs.map((version, i) => ({version, error: errors[i]})).filter((r) => r.error);
}

// -- forks --------------------------------------------------------------------------
//
// agent:history shows that an agent's version 0 is an `agent:fork`, but not which version it was taken
// from. The fork's job records its input ({sourceId, at}) under j/<jobId>, and job ids begin with their
// creation time in milliseconds (48 bits), so j/'s sorted keys are searched for the fork's job around the
// time of version 0 (a binary search, then a page or two). `at` omitted means the source's head then:
// the last source version at or before the fork's time, checked against the fork's history length.

const jobMs = (key) => parseInt(key.replace(/^0x/, '').slice(0, 12), 16);

const KEYS_PAGE = 10000;

/** A page of j/'s keys (10,000 a page), shared by the searches of one view through `opts.jobKeys` (a Map). */
async function jobKeys(page, opts) {
  const pages = opts?.jobKeys || new Map();
  if (!pages.has(page)) {
    pages.set(page, call('covia:list', {path: 'j', offset: page * KEYS_PAGE, limit: KEYS_PAGE}, opts)
      .then((o) => ({count: o.count || 0, keys: o.keys || []})));
  }
  return pages.get(page);
}

/** The index in j/ of the first job created after `ms` (j/ lists keys in order, and each starts with its time). */
async function jobIndexAfter(ms, opts) {
  const {count} = await jobKeys(0, opts);
  if (!count) return 0;
  let page = Math.max(0, Math.ceil(count / KEYS_PAGE) - 1);
  for (; page >= 0; page--) {
    const {keys} = await jobKeys(page, opts);
    if (!keys.length || jobMs(keys[0]) <= ms) {
      const i = keys.findIndex((k) => jobMs(k) > ms);
      return page * KEYS_PAGE + (i < 0 ? keys.length : i);
    }
  }
  return 0;
}

/** The input of the job that created fork `agentId` at time `ts`: {sourceId, at} or null. */
async function forkInput(agentId, ts, opts) {
  let end = await jobIndexAfter(ts, opts);
  for (let page = 0; page < 10 && end > 0; page++) {
    const offset = Math.max(0, end - 25);
    const {values = []} = await call('covia:slice', {path: 'j', offset, limit: end - offset}, opts);
    for (const {key, value: job} of values.reverse()) {
      if (jobMs(key) < ts - 60000) return null;
      const inp = job?.input || {};
      if (job?.status !== 'COMPLETE') continue;
      if (job.operation === 'agent:fork' && inp.agentId === agentId) return {sourceId: inp.sourceId, at: inp.at ?? null};
      if (job.operation === 'agent:replay' && inp.into === agentId) return {sourceId: inp.agentId, at: inp.from ?? null};
    }
    end = offset;
  }
  return null;
}

async function seqOfId(agentId, id, opts) {
  const want = id.replace(/^0x/, '').toLowerCase();
  let before;
  for (let page = 0; page < 100; page++) {
    const {versions} = await call('agent:history', {agentId, limit: 1000, before}, opts);
    const hit = versions.find((v) => v.id === want);
    if (hit) return hit.seq;
    if (!versions.length || versions[versions.length - 1].seq === 0) return null;
    before = versions[versions.length - 1].seq;
  }
  return null;
}

async function seqAtTime(sourceId, forkId, ts, opts) {
  const head = await headVersion(sourceId, opts);
  let lo = 0;
  let hi = head.seq;  // the last version with ts <= fork time
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((await versionAt(sourceId, mid, opts)).ts <= ts) lo = mid; else hi = mid - 1;
  }
  // the fork copied the source's history: step back to the version whose history length matches
  const want = await countAt(gpath(forkId, 'state', 'history'), 0, opts);
  let seq = lo;
  for (let i = 0; i < 8 && seq > 0; i++) {
    if (await countAt(gpath(sourceId, 'state', 'history'), seq, opts) === want) break;
    seq--;
  }
  const next = seq < head.seq ? await versionAt(sourceId, seq + 1, opts) : null;
  return {seq, approx: next != null && next.ts === ts};
}

const forkCache = new Map();

/**
 * Where agent `agentId` was forked from: {sourceId, seq, approx} (approx: `at` was omitted and another source
 * version has the same millisecond), or null when its version 0 is not a fork or its job is not found.
 */
export async function forkOrigin(agentId, v0, opts) {
  if (!v0 || v0.op !== 'agent:fork') return null;
  if (!forkCache.has(v0.id)) {
    forkCache.set(v0.id, (async () => {
      const inp = await forkInput(agentId, v0.ts, opts);
      if (!inp) return null;
      if (typeof inp.at === 'number') return {sourceId: inp.sourceId, seq: inp.at, approx: false};
      if (typeof inp.at === 'string') return {sourceId: inp.sourceId, seq: await seqOfId(inp.sourceId, inp.at, opts), approx: false};
      return {sourceId: inp.sourceId, ...await seqAtTime(inp.sourceId, agentId, v0.ts, opts)};
    })().then((o) => { if (!o) forkCache.delete(v0.id); return o; },
      (e) => { forkCache.delete(v0.id); throw e; }));  // a miss is asked again next time
  }
  return forkCache.get(v0.id);
}

/**
 * The fork forest of the caller's agents (at most `max`): Map agentId -> {v0, head, origin}.
 * Two history reads per agent, plus the fork searches.
 */
export async function forkForest(agentIds, max = 300, opts = {}) {
  const ids = agentIds.slice(0, max);
  opts = {...opts, jobKeys: new Map()};
  const rows = await mapLimit(ids, 3, async (id) => {
    try {
      const [v0, head] = await Promise.all([versionAt(id, 0, opts), headVersion(id, opts)]);
      const origin = await forkOrigin(id, v0, opts).catch(() => null);
      return [id, {v0, head, origin}];
    } catch {
      return [id, null];
    }
  });
  return new Map(rows.filter(([, r]) => r));
}
