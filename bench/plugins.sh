#!/usr/bin/env bash
# Plugins in Python, JavaScript and Rust: for each language (LANGS, default
# "python js rust") and round (ROUNDS, default 3), `sandcron new` then
#   - the first `sandcron build`: an empty toolchain cache (a fresh
#     SANDCRON_CACHE_DIR, npm cache and no pip cache, so the toolchain is
#     downloaded and installed; for Rust a fresh target dir, crates already
#     in ~/.cargo/registry),
#   - a warm `sandcron build` after an edit of the job's source,
#   - the component's size and the toolchain's size on disk,
#   - `sandcron plugin push` to a fresh daemon (the upload with its compile),
#   - RUNS (default 5) runs of a job of it, input {"name": "Ada"}: the first
#     run's duration_ms, the median of the others, and peak_memory.
# Prints one line per round, then the medians per language.
#
#   bench/plugins.sh [path/to/sandcron]   # default: target/debug/sandcron
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/sandcron}")
LANGS=${LANGS:-python js rust}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-5}

seconds_since() { awk -v start="$1" -v now="$(date +%s%N)" 'BEGIN {printf "%.1f", (now - start) / 1e9}'; }

. bench/lib.sh

# An edit of the job's source before a warm build: a comment at its end.
edit_source() {
    case $1 in
        python) echo "# edited" >>"$2/app.py" ;;
        js) echo "// edited" >>"$2/index.js" ;;
        rust) echo "// edited" >>"$2/src/lib.rs" ;;
    esac
}

echo "uptime: $(uptime)"
printf '%-7s %5s %9s %9s %11s %10s %9s %10s %9s %12s\n' lang round first_s warm_s size_bytes toolchain upload_s first_ms runs_ms peak_memory
for lang in $LANGS; do
    for round in $(seq "$ROUNDS"); do
        dir="$work/$lang-$round"
        cache="$work/cache-$lang-$round"
        mkdir -p "$cache"
        "$BIN" new "hello-$lang" --lang "$lang" --dir "$dir/hello" >/dev/null
        env=(SANDCRON_CACHE_DIR="$cache" npm_config_cache="$cache/npm" PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS=
            CARGO_TARGET_DIR="$cache/target" CARGO_BUILD_BUILD_DIR="$cache/target")
        started=$(date +%s%N)
        component=$(env "${env[@]}" "$BIN" build "$dir/hello" 2>"$dir/first.log" | tail -n 1)
        first=$(seconds_since "$started")
        edit_source "$lang" "$dir/hello"
        started=$(date +%s%N)
        component=$(env "${env[@]}" "$BIN" build "$dir/hello" 2>"$dir/warm.log" | tail -n 1)
        warm=$(seconds_since "$started")
        size=$(stat -c %s "$component")
        # The installed toolchain (not npm's download cache, not cargo's target).
        toolchain=$(du -sm --exclude=npm --exclude=target "$cache" | cut -f1)

        start_daemon "$work/data-$lang-$round" "$work/data-$lang-$round.log"
        started=$(date +%s%N)
        "$BIN" plugin push "$component" --name "hello-$lang" --url "$url" --data-dir "$work/data-$lang-$round" >/dev/null
        upload=$(seconds_since "$started")
        "$BIN" job create --name "hello-$lang" --plugin "hello-$lang" --url "$url" \
            --data-dir "$work/data-$lang-$round" >/dev/null
        token=$(cat "$work/data-$lang-$round/admin-token")
        durations=() peak=""
        for _ in $(seq "$RUNS"); do
            run=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
                -d '{"input": {"name": "Ada"}}' "$url/v1/jobs/hello-$lang/run?wait=60s")
            [ "$(jq -r .status <<<"$run")" = succeeded ] || { echo "run failed: $run" >&2; exit 1; }
            durations+=("$(jq -r .duration_ms <<<"$run")")
            peak=$(jq -r .peak_memory <<<"$run")
        done
        stop_daemon
        rest=$(printf '%s\n' "${durations[@]:1}" | median)
        printf '%-7s %5s %9s %9s %11s %9sM %9s %10s %9s %12s\n' "$lang" "$round" "$first" "$warm" "$size" \
            "$toolchain" "$upload" "${durations[0]}" "$rest" "$peak" | tee -a "$work/results"
        rm -rf "$cache" "$dir"
    done
done
echo "medians:"
for lang in $LANGS; do
    awk -v lang="$lang" '$1 == lang' "$work/results" >"$work/lang"
    line="$lang"
    for column in 3 4 5 6 7 8 9 10; do
        line="$line $(awk -v c="$column" '{print $c}' "$work/lang" | sed 's/M$//' | median)"
    done
    echo "$line"
done
echo "uptime: $(uptime)"
