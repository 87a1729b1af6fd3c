// Questions about agents, answered through the public operations only, each in a few small reads
// (never a whole history): the head version, a count at a version, the run that wrote a timeline entry,
// the failed runs among the latest versions. (Where a fork was taken from is exact in agent:info and
// agent:list with `includeForks`.)

import {call, mapLimit} from './api.js';

/** `g/<agentId>/<segments...>` */
export const gpath = (id, ...segs) => ['g', id, ...segs].filter((s) => s != null && s !== '').join('/');

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
