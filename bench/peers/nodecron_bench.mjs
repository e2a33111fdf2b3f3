// node-cron 4.x on the workloads of sandcron's benchmarks (bench/README.md).
// Each run prints one line of JSON. The job is a JS no-op that records when
// it ran against the instant it was due (node-cron hands it `ctx.date`);
// node-cron keeps everything in memory, nothing is durable.
//
//   node nodecron_bench.mjs per-run N
//   node nodecron_bench.mjs burst N ROUNDS
//   node nodecron_bench.mjs cron N SECONDS

import cron from 'node-cron';
import { readFileSync } from 'node:fs';

cron.setLogger({ info() {}, warn() {}, error() {}, debug() {} });

const percentile = (values, fraction) => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.round((sorted.length - 1) * fraction)];
};
const spreadUs = (ms) => ({
  p50_us: Math.round(percentile(ms, 0.5) * 1000),
  p99_us: Math.round(percentile(ms, 0.99) * 1000),
  max_us: Math.round((ms.length ? Math.max(...ms) : 0) * 1000),
});
const rssMib = () => {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : 0;
};
// Seconds the burst workload's tick runs alone before the first burst (its
// idle lateness).
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS || 10);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nextSecond = (ms) => (Math.floor(ms / 1000) + 1) * 1000;
// The cron line of one UTC instant, to the second.
const lineOf = (ms) => {
  const d = new Date(ms);
  return `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} ${d.getUTCDate()} ${d.getUTCMonth() + 1} *`;
};

async function perRun(count) {
  // node-cron's own path for one run, called directly: execute() runs the
  // task now with its bookkeeping (execution record, events).
  const task = cron.createTask('0 0 1 1 *', () => {}, { timezone: 'UTC' });
  for (let i = 0; i < 1000; i++) await task.execute();
  const began = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await task.execute();
  const took = Number(process.hrtime.bigint() - began) / 1e3;
  await task.destroy();
  return { workload: 'per-run', runs: count, per_run_us: took / count };
}

async function burst(count, rounds) {
  const ticks = [];
  const tick = cron.schedule('* * * * * *', (ctx) => ticks.push([ctx.date.getTime(), Date.now()]), { timezone: 'UTC' });
  // Idle seconds first: the tick alone.
  const idleUntil = nextSecond(Date.now()) + IDLE_SECONDS * 1000;
  await sleep(idleUntil - Date.now());
  const results = [];
  for (let round = 0; round < rounds; round++) {
    const instant = nextSecond(Date.now() + 2000 + count / 4);
    const starts = [];
    let done;
    const all = new Promise((resolve) => { done = resolve; });
    const tasks = [];
    for (let i = 0; i < count; i++) {
      tasks.push(cron.schedule(lineOf(instant), (ctx) => {
        starts.push(Date.now() - ctx.date.getTime());
        if (starts.length === count) done();
      }, { timezone: 'UTC', maxExecutions: 1 }));
    }
    if (Date.now() >= instant) throw new Error('jobs were added too late');
    // node-cron drops fires it reaches late (missed executions): stop
    // waiting 10 s after the instant and count what ran.
    await Promise.race([all, sleep(instant + 10000 - Date.now())]);
    results.push({ round, instant, runs: starts.length, missed: count - starts.length, all_ran_ms: Math.max(...starts), lateness: spreadUs(starts) });
    for (const task of tasks) await task.destroy();
  }
  await sleep(1200);
  await tick.destroy();
  const instants = new Set(results.map((r) => r.instant));
  const during = ticks.filter(([due]) => instants.has(due)).map(([due, ran]) => ran - due);
  const idle = ticks.filter(([due]) => due < idleUntil).map(([due, ran]) => ran - due);
  return {
    workload: 'burst', store: 'memory', rounds: results,
    all_ran_ms_median: percentile(results.map((r) => r.all_ran_ms), 0.5),
    tick_lateness_idle: spreadUs(idle), tick_lateness_during_burst: spreadUs(during),
    tick_fires_at_burst_instants: `${during.length} of ${rounds}`,
  };
}

async function cronWorkload(count, seconds) {
  const lateness = [];
  let counting = false;
  for (let i = 0; i < count; i++) {
    // `M/10` as a list: node-cron refuses a start/step range.
    const minutes = [0, 10, 20, 30, 40, 50].map((m) => m + (Math.floor(i / 60) % 10)).join(',');
    cron.schedule(`${i % 60} ${minutes} * * * *`, (ctx) => {
      if (counting) lateness.push(Date.now() - ctx.date.getTime());
    }, { timezone: 'UTC' });
  }
  await sleep(2000);
  counting = true;
  const cpuBefore = process.cpuUsage();
  await sleep(seconds * 1000);
  const cpu = process.cpuUsage(cpuBefore);
  counting = false;
  const rss = rssMib();
  await cron.shutdown(1000);
  return {
    workload: 'cron', store: 'memory', jobs: count, seconds, fires: lateness.length,
    lateness: spreadUs(lateness), rss_mib: rss, cpu_percent: (cpu.user + cpu.system) / 1e6 / seconds * 100,
  };
}

const [workload, ...rest] = process.argv.slice(2);
let result;
if (workload === 'per-run') result = await perRun(Number(rest[0]));
else if (workload === 'burst') result = await burst(Number(rest[0]), Number(rest[1]));
else if (workload === 'cron') result = await cronWorkload(Number(rest[0]), Number(rest[1]));
else throw new Error(`unknown workload ${workload}`);
result.peer = 'node-cron';
console.log(JSON.stringify(result));
process.exit(0);
