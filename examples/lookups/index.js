// @ts-check
// lookup: asks an HTTP API about one key (a customer, a parcel, an order)
// and keeps the answer in the job's kv store. Lookups are runs asked for
// on demand, with the key as their input: {"key": "ada"}. The jobs that
// run this plugin say how urgent their lookups are (their priority), and
// the tenant's concurrent_runs quota how many the API gets at once; the
// rest wait in the daemon's priority queue.
import { PluginError, http, job, kv, log } from './sandcron.js';

/** Where the API is (list its host in the jobs' http_allow). */
const API = 'http://127.0.0.1:8098';

export const run = job((ctx, input) => {
  const args = input.json() ?? {};
  const key = args.key;
  if (typeof key !== 'string' || key === '') {
    throw new PluginError('key: give what to look up, such as {"key": "ada"}');
  }
  const response = http.get(`${API}/lookup/${encodeURIComponent(key)}`, { timeoutMs: 20000 });
  if (response.status === 404) {
    // An answer too: nothing to retry.
    log.info(`${key}: the API knows no such key`);
    return { key, found: false };
  }
  if (response.status >= 300) {
    // Fails the run (its "failed" notice goes out); the job's retry policy
    // asks again later.
    throw new PluginError(`${key}: the API answered ${response.status}`);
  }
  const answer = response.json();
  kv.setJson(`answer:${key}`, { answer, at: ctx.scheduledAtMs });
  log.info(`${key}: looked up for ${ctx.jobName} (attempt ${ctx.attempt})`);
  return { key, found: true, answer };
});
