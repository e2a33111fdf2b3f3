#!/usr/bin/env bash
# Hostile tenants: a tenant with a 1 KiB `plugin_bytes` quota uploads COUNT
# (default 60) distinct components, every one refused 403. Prints the
# daemon's RSS (VmRSS) and the data dir's size before the first upload and
# after the last, and how long the uploads took, per round (ROUNDS, default
# 3) and their medians.
#
#   bench/refused_uploads.sh [path/to/sandcron]   # default: target/debug/sandcron
#
# The components are the `noop` test plugin with a custom section (id 0,
# name "n", a six-digit counter) appended, so each has its own digest.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/sandcron}")
COUNT=${COUNT:-60}
ROUNDS=${ROUNDS:-3}
QUOTA=${QUOTA:-1024}

NOOP=plugins/target/wasm32-wasip2/release/noop.wasm
if [ ! -f "$NOOP" ]; then
    (cd plugins && cargo build --release --quiet --target-dir target)
fi

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
disk_kib() { du -sk "$1" | cut -f1; }

. bench/lib.sh

rss_growths=() disk_growths=() durations=()
for round in $(seq "$ROUNDS"); do
    data="$work/data-$round"
    start_daemon "$data" "$work/log-$round"
    admin=$(cat "$data/admin-token")
    token=$(curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d "{\"name\":\"hostile\",\"quotas\":{\"plugin_bytes\":$QUOTA}}" "$url/v1/tenants" | jq -r .token)
    sleep 1
    rss_before=$(rss_kib "$daemon") disk_before=$(disk_kib "$data")
    refused=0
    started=$(date +%s%N)
    for index in $(seq "$COUNT"); do
        component="$work/component.wasm"
        cp "$NOOP" "$component"
        # Custom section: id 0, size 8, name length 1, name "n", six digits.
        printf '\x00\x08\x01n%06d' "$index" >>"$component"
        status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
            --data-binary "@$component" "$url/v1/plugins?name=p$index")
        [ "$status" = 403 ] && refused=$((refused + 1))
    done
    took_ms=$((($(date +%s%N) - started) / 1000000))
    sleep 2
    rss_after=$(rss_kib "$daemon") disk_after=$(disk_kib "$data")
    stop_daemon
    rss_growth=$((rss_after - rss_before)) disk_growth=$((disk_after - disk_before))
    rss_growths+=("$rss_growth") disk_growths+=("$disk_growth") durations+=("$took_ms")
    echo "round $round: $refused/$COUNT refused in $took_ms ms; RSS ${rss_before} -> ${rss_after} KiB (+${rss_growth}); data dir ${disk_before} -> ${disk_after} KiB (+${disk_growth})"
done
echo "median growth over $ROUNDS rounds: RSS +$(printf '%s\n' "${rss_growths[@]}" | median) KiB, data dir +$(printf '%s\n' "${disk_growths[@]}" | median) KiB, uploads $(printf '%s\n' "${durations[@]}" | median) ms"
echo "binary: $BIN; $(uptime)"
