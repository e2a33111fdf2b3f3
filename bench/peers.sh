#!/usr/bin/env bash
# Benchmark 7: sandcron and its peers side by side, in one invocation so the
# ratios compare runs on the same machine minutes apart: APScheduler 3.x
# (in-memory and SQLite job stores, its default pool of 10 threads) and
# node-cron 4.x, installed by setup-peers.sh into bench/peers. Workloads
# (bench/README.md): 1 per-run cost, 3 burst, 4 precision during the burst,
# 5 10,000 cron jobs at second resolution and a restart with 10,000 jobs.
# Prints each result as JSON, then the table (kept in $OUT, default a temp dir).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bench/setup-peers.sh
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
peers="$root/bench/peers"
python="$peers/.venv/bin/python"
count="${COUNT:-10000}" rounds="${ROUNDS:-3}" window="${WINDOW:-70}"

sandcron() { cargo bench -q -p sandcron --bench "$1" -- "${@:2}" | tee /dev/stderr | sed -n 's/^RESULT //p' >> "$results"; }
peer() { "$@" | tee -a "$results"; }

echo "== 1. per-run cost" >&2
cargo bench -q -p sandcron --bench run_path -- 'noop_run/(floor|sandcron/run_without_record)$' >&2
target="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
"$python" - "$target" >> "$results" <<'PY'
import json, sys
estimates = f"{sys.argv[1]}/criterion/noop_run/sandcron_run_without_record/new/estimates.json"
median_ns = json.load(open(estimates))["median"]["point_estimate"]
print(json.dumps({"peer": "sandcron", "workload": "per-run", "per_run_us": median_ns / 1000}))
PY
peer "$python" "$peers/apscheduler_bench.py" per-run 50000
(cd "$peers" && peer node nodecron_bench.mjs per-run 50000)

echo "== 3, 4. burst of $count one-shots, every-second job" >&2
sandcron throughput burst "$count" "$rounds"
peer "$python" "$peers/apscheduler_bench.py" burst "$count" "$rounds" memory
# One round: adding 10,000 jobs to the SQLite store takes over a minute.
peer "$python" "$peers/apscheduler_bench.py" burst "$count" 1 sqlite
(cd "$peers" && peer node nodecron_bench.mjs burst "$count" "$rounds")

echo "== 5. 10,000 cron jobs at second resolution for ${window}s" >&2
sandcron scheduler_lateness cron 10000 "$window"
peer "$python" "$peers/apscheduler_bench.py" cron 10000 "$window" memory
(cd "$peers" && peer node nodecron_bench.mjs cron 10000 "$window")

echo "== 5. restart with 10,000 stored jobs" >&2
sandcron scheduler_lateness scale 10000 5
peer "$python" "$peers/apscheduler_bench.py" restart 10000

echo "== table (results in $results)" >&2
"$python" "$peers/table.py" "$results"
