#!/usr/bin/env bash
# sandcron on PostgreSQL beside APScheduler 3.x on the same PostgreSQL
# server (its SQLAlchemy job store, psycopg2), in one invocation so the
# ratios compare runs on the same machine minutes apart. The workloads of
# bench/peers.sh that a database changes, each on a database of its own:
#
# - burst: COUNT one-shot noop jobs due at one instant beside an
#   every-second job (sandcron: one node, then three);
# - cron: 10,000 cron jobs at second resolution (each fires once every 10
#   minutes, ~17 fires a second) for WINDOW seconds: lateness, CPU of the
#   scheduler and of PostgreSQL, the scheduler's RSS;
# - restart: 10,000 stored daily jobs and a one-shot that comes due while
#   the scheduler is down (stopped gracefully, started again 5 s later).
#
# node-cron keeps no jobs anywhere, so it has no place here; its figures
# are in bench/peers.sh. sandcron runs as release daemons (bench/pg.sh),
# APScheduler in its own Python process with its default pool of 10
# threads; each peer's job is a no-op.
#
#   bench/peers-postgres.sh            # COUNT=10000 WINDOW=60
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-10000}
WINDOW=${WINDOW:-60}
BURST=$COUNT
PROFILE=${PROFILE:-}
. bench/lib.sh
bench/setup-peers.sh
python=bench/peers/.venv/bin/python
echo "uptime: $(uptime)"
. bench/pg.sh

# apscheduler DB ARGS...: APScheduler's bench on a new database DB.
apscheduler() {
    psql_do postgres "CREATE DATABASE $1"
    PEER_DATABASE_URL="postgresql+psycopg2://sandcron@127.0.0.1:$pg_port/$1" "$python" bench/peers/apscheduler_bench.py "${@:2}"
    echo "(uptime: $(uptime | sed 's/.*load/load/'))"
}

echo "== burst: $COUNT one-shots due at one instant, beside an every-second job"
for count in 1 3; do
    burst "$count"
    stop_nodes
done
apscheduler apsburst burst "$COUNT" 1 postgres

echo "== cron: 10,000 cron jobs at second resolution for ${WINDOW}s"
start_cluster cron 1
for index in $(seq 0 9999); do
    echo "{\"name\": \"cron-$index\", \"plugin\": \"noop\", \"schedule\": {\"cron\": \"$((index % 60)) $(((index / 60) % 10))/10 * * * *\"}}"
done | create_jobs "${node_url[a]}"
sleep 2
since=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
cpu_before=$(cpu_seconds)
sleep "$WINDOW"
cpu_after=$(cpu_seconds)
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/${node_pid[a]}/status")
until_iso=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
all_runs "${node_url[a]}" >"$work/cron.json"
python3 - "$work/cron.json" "$since" "$until_iso" "$cpu_before" "$cpu_after" "$WINDOW" "$rss_kib" <<'PY'
import json, sys
runs, since, until = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
before, after = [float(x) for x in sys.argv[4].split()], [float(x) for x in sys.argv[5].split()]
window, rss = float(sys.argv[6]), int(sys.argv[7]) / 1024
late = sorted(run["lateness_ms"] for run in runs
              if since <= run["scheduled_at"] < until and run.get("lateness_ms") is not None)
pct = lambda p: late[min(len(late) - 1, int(len(late) * p))] if late else None
print(f"sandcron (1 node): {len(late)} fires; lateness ms p50 {pct(.5)} p99 {pct(.99)} max {late[-1] if late else None}; "
      f"CPU node {(after[0] - before[0]) / window * 100:.1f} % postgres {(after[1] - before[1]) / window * 100:.1f} %; "
      f"node RSS {rss:.0f} MiB")
PY
echo "(uptime: $(uptime | sed 's/.*load/load/'))"
stop_nodes
pg_before=$(cpu_seconds | awk '{print $2}')
apscheduler apscron cron 10000 "$WINDOW" postgres
echo "  (PostgreSQL's CPU seconds during APScheduler's cron: $(echo "$(cpu_seconds | awk '{print $2}') - $pg_before" | bc -l))"

echo "== restart with 10,000 stored jobs and a one-shot due while down"
start_cluster restart 1
hour=$(( ($(date -u +%H | sed 's/^0//') + 12) % 24 ))
for index in $(seq 0 9999); do
    echo "{\"name\": \"idle-$index\", \"plugin\": \"noop\", \"schedule\": {\"cron\": \"$((index % 60)) 0 $hour * * *\"}}"
done | create_jobs "${node_url[a]}"
stopped_epoch=$(date +%s.%N)
due=$(date -u -d "@$(echo "$stopped_epoch + 3" | bc -l)" +%Y-%m-%dT%H:%M:%S.%3NZ)
call -H 'content-type: application/json' -d "{\"name\": \"overdue\", \"plugin\": \"noop\", \"schedule\": {\"at\": \"$due\"}}" \
    "${node_url[a]}/v1/jobs" >/dev/null
kill -TERM "${node_pid[a]}"; wait "${node_pid[a]}" 2>/dev/null || true
nodes=()
sleep "$(echo "$stopped_epoch + 5 - $(date +%s.%N)" | bc -l | awk '{print ($1 > 0) ? $1 : 0}')"
began=$(date +%s.%N)
start_node restart a
serving=$(date +%s.%N)
for _ in $(seq 200); do
    started_at=$(call "${node_url[a]}/v1/runs?job=overdue&limit=1" | jq -r '.runs[0].started_at // empty')
    [ -n "$started_at" ] && break
    sleep 0.05
done
python3 - "$began" "$serving" "$started_at" <<'PY'
import sys
from datetime import datetime
import re
began, serving, started = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ran = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started).replace("Z", "+00:00")).timestamp() if started else None
print(f"sandcron (1 node, 10,000 jobs): serving {(serving - began) * 1000:.0f} ms after its start (the bench polls its log "
      f"every 100 ms); the one-shot due while it was down ran {'%.0f ms after the start' % ((ran - began) * 1000) if ran else 'not at all'}")
PY
stop_nodes
apscheduler apsrestart restart 10000 postgres
echo "uptime: $(uptime)"
