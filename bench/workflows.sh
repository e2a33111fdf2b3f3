#!/usr/bin/env bash
# Workflows: what a step costs over a plain run, and a fan-out drained.
#
# 1. A chain of 10 noop steps (each needs the one before), run with
#    `?wait=60s`, against 10 manual runs of the noop job one after the
#    other (`POST /v1/jobs/noop/run?wait=30s` each): ROUNDS rounds
#    (default 20), interleaved; medians of the wall times (curl), and the
#    overhead per step.
# 2. Fan-out: WIDE (default 100) workflow runs of 10 independent noop steps
#    started at once (8 requests at a time), until every one has ended;
#    against the same number of plain runs (10 x WIDE) queued at once
#    until every one has ended. Three rounds each, interleaved; medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-20}
WIDE=${WIDE:-100}

. bench/lib.sh
echo "uptime: $(uptime)"
BIN=$(cargo build -q --release -p sandcron --bin sandcron --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -n 1)
(cd plugins && cargo build -q --release --target wasm32-wasip2 -p noop)
start_daemon "$work/data" "$work/daemon.log"
token=$(cat "$work/data/admin-token")
api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

"$BIN" plugin push plugins/target/wasm32-wasip2/release/noop.wasm --name noop --url "$url" --data-dir "$work/data" >/dev/null
"$BIN" job create --name noop --plugin noop --url "$url" --data-dir "$work/data" >/dev/null
chain=$(jq -cn '{name: "chain", steps: [range(10) | {id: "s\(.)", job: "noop", needs: (if . == 0 then [] else ["s\(. - 1)"] end)}]}')
wide=$(jq -cn '{name: "wide", steps: [range(10) | {id: "s\(.)", job: "noop"}]}')
api -X POST "$url/v1/workflows" -d "$chain" >/dev/null
api -X POST "$url/v1/workflows" -d "$wide" >/dev/null
# Warm: the first runs load the compiled plugin.
api -X POST "$url/v1/workflows/chain/run?wait=60s" >/dev/null

echo "== a chain of 10 steps vs 10 manual runs, $ROUNDS rounds (uptime: $(uptime))"
for _ in $(seq "$ROUNDS"); do
    answer=$(api -X POST -w '\n%{time_total}' "$url/v1/workflows/chain/run?wait=60s")
    [ "$(head -n 1 <<<"$answer" | jq -r .status)" = succeeded ] || { echo "chain failed: $answer" >&2; exit 1; }
    tail -n 1 <<<"$answer" >>"$work/chain"
    total=0
    for _ in $(seq 10); do
        took=$(api -X POST -o /dev/null -w '%{time_total}' "$url/v1/jobs/noop/run?wait=30s")
        total=$(awk -v a="$total" -v b="$took" 'BEGIN {print a + b}')
    done
    echo "$total" >>"$work/manual"
done
chain_ms=$(awk '{printf "%.2f\n", $1 * 1000}' "$work/chain" | median)
manual_ms=$(awk '{printf "%.2f\n", $1 * 1000}' "$work/manual" | median)
awk -v c="$chain_ms" -v m="$manual_ms" 'BEGIN {
    printf "chain of 10 steps: %s ms; 10 manual runs: %s ms; ratio %.2f; per step %.2f ms over a manual run\n",
        c, m, c / m, (c - m) / 10 }'

# drain KIND: starts WIDE workflow runs (KIND=workflows) or 10 x WIDE plain
# runs (KIND=runs) at once and waits until all have ended; prints seconds.
drain() {
    local began ended
    began=$(date +%s.%N)
    if [ "$1" = workflows ]; then
        seq "$WIDE" | xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" \
            "$url/v1/workflows/wide/run"
        until [ "$(api "$url/v1/workflow-runs?workflow=wide&limit=500" |
            jq '[.workflow_runs[] | select(.status == "running")] | length')" = 0 ]; do sleep 0.05; done
    else
        seq $((WIDE * 10)) | xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" \
            "$url/v1/jobs/noop/run"
        until [ "$(api "$url/v1/status" | jq '.queue_depth + .running_runs')" = 0 ]; do sleep 0.05; done
    fi
    ended=$(date +%s.%N)
    awk -v a="$began" -v b="$ended" 'BEGIN {printf "%.3f\n", b - a}'
}

echo "== fan-out: $WIDE workflow runs x 10 steps vs $((WIDE * 10)) plain runs, 3 rounds (uptime: $(uptime))"
for _ in 1 2 3; do
    drain workflows >>"$work/fan-workflows"
    drain runs >>"$work/fan-runs"
done
workflows_s=$(median <"$work/fan-workflows")
runs_s=$(median <"$work/fan-runs")
awk -v w="$workflows_s" -v r="$runs_s" -v n="$((WIDE * 10))" 'BEGIN {
    printf "%d step runs in %d workflow runs: %s s (%.0f runs/s); %d plain runs: %s s (%.0f runs/s); ratio %.2f\n",
        n, n / 10, w, n / w, n, r, n / r, w / r }'
stop_daemon
echo "uptime: $(uptime)"
