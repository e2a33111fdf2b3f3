#!/usr/bin/env bash
# sandcron on PostgreSQL: durable runs/s of JOBS every-second noop jobs with
# 1, 2 and 3 nodes on one database (finished runs counted by the nodes'
# sandcron_runs_total over DURATION seconds); a burst of BURST one-shot jobs
# due at one instant on 1 and 3 nodes (until all ran, their lateness, and
# an every-second job's lateness idle and at the burst's instant); then
# failover: KILLS times the leader is killed (SIGKILL) and restarted; for
# each kill, how long until another node leads and how late the first fire
# after the kill started.
#
# The database is a PostgreSQL 15 server started in the work dir
# (bench/pg.sh).
#
#   bench/cluster.sh                  # JOBS=1000 DURATION=20 BURST=10000 KILLS=10
#   ONLY=burst bench/cluster.sh       # one part: throughput, burst or failover
#   PROFILE=1 ONLY=throughput bench/cluster.sh
#                                     # and where the time went: CPU seconds of
#                                     # the nodes and of PostgreSQL, and the
#                                     # statements taking most of the database
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-1000}
SECONDS_MEASURED=${DURATION:-20}
KILLS=${KILLS:-10}
BURST=${BURST:-10000}
ONLY=${ONLY:-}
PROFILE=${PROFILE:-}
part() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
. bench/lib.sh
echo "uptime: $(uptime)"
. bench/pg.sh

if part burst; then
echo "== burst: $BURST one-shot noop jobs due at one instant, 1 and 3 nodes, beside an every-second job"
for count in 1 3; do
    burst "$count"
    stop_nodes
done
fi

if part throughput; then
echo "== durable runs/s: $JOBS every-second noop jobs, ${SECONDS_MEASURED}s, 1-3 nodes on one database"
for count in 1 2 3; do
    start_cluster "throughput$count" "$count"
    for index in $(seq "$JOBS"); do
        echo "{\"name\": \"tick-$index\", \"plugin\": \"noop\", \"schedule\": {\"every\": \"1s\"}}"
    done | create_jobs "${node_url[a]}"
    sleep 3
    [ -z "$PROFILE" ] || { psql_do "throughput$count" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null; cpu_before=$(cpu_seconds); }
    before=$(runs_total "${ids[@]}")
    began=$(date +%s.%N)
    sleep "$SECONDS_MEASURED"
    after=$(runs_total "${ids[@]}")
    ended=$(date +%s.%N)
    echo "nodes=$count runs/s=$(echo "($after - $before) / ($ended - $began)" | bc -l | xargs printf %.0f) (uptime: $(uptime | sed 's/.*load/load/'))"
    if [ -n "$PROFILE" ]; then
        echo "  CPU seconds (nodes, postgres) before: $cpu_before; after: $(cpu_seconds)"
        psql_do "throughput$count" "SELECT round(total_exec_time)::text || ' ms ' || calls || ' calls ' || round(mean_exec_time::numeric, 3) || ' ms/call: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 110)
            FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12" | sed 's/^/  /'
    fi
    stop_nodes
done
fi

if part failover; then
echo "== failover: $KILLS leader kills, 3 nodes, an every-second job (misfire run_all)"
psql_do postgres "CREATE DATABASE failover"
for id in a b c; do start_node failover "$id"; done
call -X POST --data-binary @plugins/target/wasm32-wasip2/release/noop.wasm "${node_url[a]}/v1/plugins?name=noop" >/dev/null
call -H 'content-type: application/json' -d '{"name": "tick", "plugin": "noop", "schedule": {"every": "1s"}, "policy": {"misfire": "run_all"}}' \
    "${node_url[a]}/v1/jobs" >/dev/null
leader_of() { call "${node_url[$1]}/v1/cluster" | jq -r '.nodes[] | select(.leader) | .id'; }
handovers=() latenesses=()
sleep 3
for round in $(seq "$KILLS"); do
    asker=a
    leader=$(leader_of a)
    [ "$leader" = a ] && asker=b
    killed_at=$(date +%s.%N)
    kill -9 "${node_pid[$leader]}"; wait "${node_pid[$leader]}" 2>/dev/null || true
    while :; do
        now_leader=$(leader_of "$asker" || true)
        if [ -n "$now_leader" ] && [ "$now_leader" != "$leader" ]; then break; fi
        sleep 0.02
    done
    handover=$(echo "$(date +%s.%N) - $killed_at" | bc -l)
    sleep 4
    killed_iso=$(date -u -d "@$killed_at" +%Y-%m-%dT%H:%M:%S.%3NZ)
    lateness=$(call "${node_url[$asker]}/v1/runs?job=tick&limit=20" | jq -r --arg since "$killed_iso" \
        '[.runs[] | select(.scheduled_at > $since and .lateness_ms != null)] | sort_by(.scheduled_at) | first | .lateness_ms')
    printf 'round %2d: killed %s; a new leader in %.0f ms; the first fire after the kill started %s ms late\n' \
        "$round" "$leader" "$(echo "$handover * 1000" | bc -l)" "$lateness"
    handovers+=("$(echo "$handover * 1000" | bc -l | xargs printf %.0f)")
    latenesses+=("$lateness")
    start_node failover "$leader"
    sleep 2
done
printf 'handover ms: median %s, max %s\n' "$(printf '%s\n' "${handovers[@]}" | median)" "$(printf '%s\n' "${handovers[@]}" | sort -n | tail -1)"
printf 'first fire after the kill, lateness ms: median %s, max %s\n' "$(printf '%s\n' "${latenesses[@]}" | median)" "$(printf '%s\n' "${latenesses[@]}" | sort -n | tail -1)"
fi
echo "uptime: $(uptime)"
