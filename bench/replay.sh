#!/usr/bin/env bash
# What recording and replaying cost: the `replay` criterion bench (a noop
# and a call-heavy plugin, each ordinary, on the deterministic engine,
# recorded, replayed; compiling on each engine) REPEAT times (default 3),
# with the median of the repeats' medians per case; then over HTTP through
# a daemon: HTTP_RUNS (default 50) runs of the call-heavy job, ordinary and
# recorded, interleaved, and as many replays of one recorded run: the
# medians of the request's wall time (curl) and of the runs' duration_ms.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
HTTP_RUNS=${HTTP_RUNS:-50}
. bench/lib.sh
echo "uptime: $(uptime)"

target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
for round in $(seq "$REPEAT"); do
    cargo bench -q -p sandcron --bench replay -- --noplot >"$work/criterion-$round.log" 2>&1 ||
        { cat "$work/criterion-$round.log" >&2; exit 1; }
    # Criterion keeps each case as replay/<plugin>_<case>/new/estimates.json.
    for estimates in "$target"/criterion/replay/*/new/estimates.json; do
        case=${estimates#"$target"/criterion/replay/}
        case=${case%/new/estimates.json}
        jq .median.point_estimate "$estimates" >>"$work/case-$case"
    done
done
grep -h 'a tape of' "$work/criterion-1.log" || true
printf '%-26s %14s\n' case median_us
for file in "$work"/case-*; do
    case=${file#"$work"/case-}
    printf '%-26s %14s\n' "$case" "$(awk '{printf "%.1f\n", $1 / 1000}' "$file" | median)"
done

echo "== over HTTP: $HTTP_RUNS runs each (uptime: $(uptime))"
BIN=$(cargo build -q --release -p sandcron --bin sandcron --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -n 1)
start_daemon "$work/data" "$work/daemon.log"
token=$(cat "$work/data/admin-token")
call() { curl -sf -H "Authorization: Bearer $token" -w '\n%{time_total}' "$@"; }
"$BIN" plugin push plugins/target/wasm32-wasip2/release/replay.wasm --name replay --url "$url" \
    --data-dir "$work/data" >/dev/null
for job in plain recorded; do
    record=$([ "$job" = recorded ] && echo true || echo false)
    curl -sf -H "Authorization: Bearer $token" -X POST "$url/v1/jobs" \
        -d "{\"name\": \"$job\", \"plugin\": \"replay\", \"record\": $record, \"input\": {\"calls\": 1000}}" >/dev/null
    # The first run loads (or compiles, for the deterministic engine) the plugin; not counted.
    curl -sf -H "Authorization: Bearer $token" -X POST "$url/v1/jobs/$job/run?wait=30s" >/dev/null
done
for _ in $(seq "$HTTP_RUNS"); do
    for job in plain recorded; do
        answer=$(call -X POST "$url/v1/jobs/$job/run?wait=30s")
        [ "$(head -n 1 <<<"$answer" | jq -r .status)" = succeeded ] || { echo "run failed: $answer" >&2; exit 1; }
        echo "$(tail -n 1 <<<"$answer") $(head -n 1 <<<"$answer" | jq -r .duration_ms)" >>"$work/http-$job"
        [ "$job" = recorded ] && run=$(head -n 1 <<<"$answer" | jq -r .id)
    done
done
for _ in $(seq "$HTTP_RUNS"); do
    answer=$(call -X POST "$url/v1/runs/$run/replay")
    [ "$(head -n 1 <<<"$answer" | jq -r .identical)" = true ] || { echo "not identical: $answer" >&2; exit 1; }
    echo "$(tail -n 1 <<<"$answer") -" >>"$work/http-replay"
done
stop_daemon
printf '%-9s %14s %16s\n' what request_ms duration_ms
for what in plain recorded replay; do
    request=$(awk '{printf "%.2f\n", $1 * 1000}' "$work/http-$what" | median)
    duration=$(awk '{print $2}' "$work/http-$what" | median)
    printf '%-9s %14s %16s\n' "$what" "$request" "$duration"
done
