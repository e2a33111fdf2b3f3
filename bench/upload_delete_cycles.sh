#!/usr/bin/env bash
# Hostile tenants: a tenant with a 3 MiB `plugin_bytes` quota uploads and
# deletes a plugin CYCLES times (default 20), each time distinct bytes: the
# `hello` plugin with a custom section of 1 MiB (id 0, name "n", a six-digit
# counter, zeros). Prints the data dir's size after the cycles and after a
# restart, per round (ROUNDS, default 3) and their medians.
#
#   bench/upload_delete_cycles.sh [path/to/sandcron]   # default: target/debug/sandcron
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/sandcron}")
CYCLES=${CYCLES:-20}
ROUNDS=${ROUNDS:-3}

HELLO=plugins/target/wasm32-wasip2/release/hello.wasm
if [ ! -f "$HELLO" ]; then
    (cd plugins && cargo build --release --quiet --target-dir target)
fi

disk_kib() { du -sk "$1" | cut -f1; }

. bench/lib.sh

after_cycles=() after_restart=()
for round in $(seq "$ROUNDS"); do
    data="$work/data-$round"
    start_daemon "$data" "$work/log"
    admin=$(cat "$data/admin-token")
    token=$(curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d '{"name":"cycler","quotas":{"plugin_bytes":"3MiB"}}' "$url/v1/tenants" | jq -r .token)
    cycled=0
    for index in $(seq "$CYCLES"); do
        component="$work/component.wasm"
        cp "$HELLO" "$component"
        # Section size 1048584 (1 + 1 + 6 + 1 MiB) in LEB128: 0x88 0x80 0x40.
        printf '\x00\x88\x80\x40\x01n%06d' "$index" >>"$component"
        head -c 1048576 /dev/zero >>"$component"
        uploaded=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
            --data-binary "@$component" "$url/v1/plugins?name=tool")
        deleted=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $token" \
            "$url/v1/plugins/tool")
        [ "$uploaded/$deleted" = 201/204 ] && cycled=$((cycled + 1))
    done
    cycles_kib=$(disk_kib "$data")
    stop_daemon
    start_daemon "$data" "$work/log"
    sleep 1
    restart_kib=$(disk_kib "$data")
    stop_daemon
    after_cycles+=("$cycles_kib") after_restart+=("$restart_kib")
    echo "round $round: $cycled/$CYCLES upload/delete cycles; data dir $cycles_kib KiB, after a restart $restart_kib KiB"
done
echo "median over $ROUNDS rounds: data dir $(printf '%s\n' "${after_cycles[@]}" | median) KiB after the cycles, $(printf '%s\n' "${after_restart[@]}" | median) KiB after a restart"
echo "binary: $BIN; $(uptime)"
