// @ts-check
// {{name}}: a sandcron job. It greets, counts its runs in the job's kv store,
// and shows the rest of the SDK when its input asks (every key is optional):
//
//   {"name": "Ada"}                     who to greet
//   {"fetch": "https://example.com/"}   GET this URL (list its host in the job's http_allow)
//   {"secret": "api-token"}             read this secret (list it in the job's secrets)
//   {"fail": "why"}                     throw, to see a failed run
import { PluginError, http, job, kv, log, secrets } from './sandcron.js';

export const run = job((ctx, input) => {
  const args = input.json() ?? {};
  if (typeof args !== 'object' || Array.isArray(args)) {
    throw new PluginError('the input is not a JSON object such as {"name": "Ada"}');
  }
  const name = args.name ?? 'world';
  const count = Number(kv.getText('count') ?? '0') + 1;
  kv.set('count', String(count));
  log.info(`hello ${name}: run ${count} of job ${ctx.jobName}`);
  /** @type {Record<string, unknown>} */
  const reply = { greeting: `Hello, ${name}!`, count };
  if (args.fetch !== undefined) {
    const response = http.get(String(args.fetch));
    reply.fetched = { status: response.status, body: response.text().slice(0, 200) };
  }
  if (args.secret !== undefined) {
    // The run's output and log show a granted secret as [secret:NAME].
    reply.secret = secrets.get(String(args.secret)) ?? null;
  }
  if (args.fail !== undefined) {
    throw new Error(String(args.fail));
  }
  return reply;
});
