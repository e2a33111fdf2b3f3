# Sourced by the bench scripts on PostgreSQL (after lib.sh): builds the
# release binary and the noop plugin, starts a PostgreSQL 15 server in the
# work dir (fsync and synchronous_commit as PostgreSQL ships them: what a
# commit means in production; as the `postgres` user when run as root)
# with PROFILE set, pg_stat_statements loaded, and defines how to start
# nodes on it, call them, create jobs and read runs.
BIN=$(cargo build -q --release -p sandcron --bin sandcron --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -n 1)
(cd plugins && env -u CARGO_BUILD_BUILD_DIR CARGO_TARGET_DIR=target cargo build -q --release --target wasm32-wasip2 -p noop)
ADMIN=sc_admin_bench_cluster_0123456789abcdef
KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff

pg_bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
pg_dir="$work/pg"
mkdir -p "$pg_dir"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_dir" && chmod 755 "$work"
pg_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U sandcron -A trust -E UTF8 --no-locale --no-instructions >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=200${PROFILE:+ -c shared_preload_libraries=pg_stat_statements}" start >/dev/null
stop_pg() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -w -m immediate stop >/dev/null 2>&1 || true; }
nodes=()
stop_nodes() {
    for pid in "${nodes[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    nodes=()
}
trap 'stop_nodes; stop_pg; cleanup' EXIT
psql_do() { psql -h 127.0.0.1 -p "$pg_port" -U sandcron -d "$1" -Atqc "$2"; }

declare -A node_url
# start_node DB ID: a release node named ID on database DB.
start_node() {
    local log="$work/$1-$2.log"
    mkdir -p "$work/$1-$2"
    SANDCRON_LOG=info SANDCRON_ADMIN_TOKEN=$ADMIN SANDCRON_SECRETS_KEY=$KEY "$BIN" serve --listen 127.0.0.1:0 \
        --data-dir "$work/$1-$2" --database-url "postgres://sandcron@127.0.0.1:$pg_port/$1" --node-id "$2" 2>"$log" &
    nodes+=($!)
    node_pid[$2]=$!
    for _ in $(seq 600); do
        local found
        found=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //' || true)
        if [ -n "$found" ]; then node_url[$2]=$found; return 0; fi
        sleep 0.1
    done
    echo "node $2 did not start" >&2; cat "$log" >&2; exit 1
}
declare -A node_pid
# cpu_seconds: the user+system CPU seconds so far of the nodes and of
# PostgreSQL's processes, as "NODES POSTGRES".
cpu_seconds() {
    local ticks
    ticks=$(getconf CLK_TCK)
    local pg_pids
    pg_pids=$(pgrep -u postgres -d ' ' postgres || true)
    for set in "${nodes[*]}" "$pg_pids"; do
        local sum=0
        for pid in $set; do
            [ -r "/proc/$pid/stat" ] || continue
            sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        done
        printf '%s ' "$(echo "$sum / $ticks" | bc -l | xargs printf %.1f)"
    done
}
call() { curl -sf -H "Authorization: Bearer $ADMIN" "$@"; }

runs_total() {
    local sum=0
    for id in "$@"; do
        local count
        count=$(call "${node_url[$id]}/metrics" | awk '/^sandcron_runs_total\{/ {s += $NF} END {printf "%d", s}')
        sum=$((sum + count))
    done
    echo "$sum"
}

# start_cluster DB COUNT: COUNT nodes a, b, c... on a new database DB, noop uploaded.
start_cluster() {
    psql_do postgres "CREATE DATABASE $1"
    ids=()
    for index in $(seq "$2"); do
        local id
        id=$(printf "\\x$(printf %x $((96 + index)))")
        start_node "$1" "$id"
        ids+=("$id")
    done
    call -X POST --data-binary @plugins/target/wasm32-wasip2/release/noop.wasm \
        "${node_url[${ids[0]}]}/v1/plugins?name=noop" >/dev/null
}

# create_jobs URL: the JSON job specs on stdin (one a line) created through
# URL by 8 connections kept open.
create_jobs() { python3 -c "$CREATE_JOBS" "$1" "$ADMIN"; }
read -r -d '' CREATE_JOBS <<'PY' || true
import http.client, os, sys, threading, urllib.parse
url, token = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2]
specs = [line.strip() for line in sys.stdin if line.strip()]
def create(part):
    connection = http.client.HTTPConnection(url.hostname, url.port)
    for spec in part:
        connection.request("POST", "/v1/jobs", spec.encode(),
                           {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 201:
            print(f"creating a job: {answer.status} {body[:200]!r}", file=sys.stderr)
            os._exit(1)
threads = [threading.Thread(target=create, args=(specs[index::8],)) for index in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
PY


# all_runs URL: every run (all pages) as one JSON array.
all_runs() {
    local cursor="" page
    while :; do
        page=$(call "$1/v1/runs?limit=500${cursor:+&cursor=$cursor}")
        echo "$page" | jq -c '.runs[]'
        cursor=$(echo "$page" | jq -r '.next_cursor // empty')
        [ -n "$cursor" ] || break
    done | jq -s .
}

# burst COUNT: on a new database, COUNT nodes and an every-second job;
# BURST one-shot noop jobs due at one instant created through node a;
# prints when all ran, their lateness and the every-second job's, idle and
# during the burst. Leaves the nodes running.
burst() {
    local count=$1
    start_cluster "burst$count" "$count"
    url=${node_url[a]}
    call -H 'content-type: application/json' \
        -d '{"name": "tick", "plugin": "noop", "schedule": {"cron": "* * * * * *"}}' "$url/v1/jobs" >/dev/null
    sleep 10
    idle_until=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    instant_epoch=$(( $(date +%s) + 20 + BURST / 500 ))
    instant=$(date -u -d "@$instant_epoch" +%Y-%m-%dT%H:%M:%SZ)
    for index in $(seq "$BURST"); do
        echo "{\"name\": \"once-$index\", \"plugin\": \"noop\", \"schedule\": {\"at\": \"$instant\"}}"
    done | create_jobs "$url"
    left=$(( instant_epoch - $(date +%s) ))
    [ "$left" -gt 1 ] || { echo "the jobs were created too late ($left s left)" >&2; exit 1; }
    sleep $(( left + 5 ))
    for _ in $(seq 120); do
        waiting=$(( $(call "$url/v1/runs?status=queued&limit=1" | jq '.runs | length') \
            + $(call "$url/v1/runs?status=running&limit=1" | jq '.runs | length') ))
        [ "$waiting" = 0 ] && break
        sleep 1
    done
    all_runs "$url" >"$work/burst$count.json"
    python3 - "$work/burst$count.json" "$instant" "$count" "$idle_until" <<'PY'
import json, re, sys
from datetime import datetime
runs, instant, nodes = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
# Nanoseconds cut to microseconds, which datetime keeps.
parse = lambda text: datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))
due, idle_until = parse(instant), parse(sys.argv[4])
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else None
burst = [run for run in runs if run["job_name"].startswith("once-")]
ticks = [run for run in runs if run["job_name"] == "tick" and run.get("lateness_ms") is not None]
late = [run["lateness_ms"] for run in burst if run.get("lateness_ms") is not None]
last = max(parse(run["finished_at"]) for run in burst if run.get("finished_at"))
idle = [run["lateness_ms"] for run in ticks if parse(run["scheduled_at"]) < idle_until]
at = [run["lateness_ms"] for run in ticks if parse(run["scheduled_at"]) == due]
during = [run["lateness_ms"] for run in ticks if due <= parse(run["scheduled_at"]) <= last]
spread = {}
for run in burst:
    spread[run.get("node")] = spread.get(run.get("node"), 0) + 1
print(f"nodes={nodes}: {len(burst)} runs due at once, {sum(r['status'] == 'succeeded' for r in burst)} succeeded; "
      f"all ran {(last - due).total_seconds() * 1000:.0f} ms after the instant; lateness ms p50 {pct(late, .5)} "
      f"p99 {pct(late, .99)} max {max(late)}; runs per node {dict(sorted(spread.items()))}")
print(f"nodes={nodes}: every-second job lateness ms: idle p50 {pct(idle, .5)} p99 {pct(idle, .99)} "
      f"(n={len(idle)}); at the burst's instant {at}; while the burst ran {sorted(during)}")
PY
    echo "(uptime: $(uptime | sed 's/.*load/load/'))"
    grep -h -E ' (WARN|ERROR) ' "$work"/burst"$count"-*.log | sed 's/^[^ ]* //' | sort | uniq -c | sort -rn | head -5 || true
}
