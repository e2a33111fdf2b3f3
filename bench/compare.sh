#!/usr/bin/env bash
# Benchmark 2 at two revisions, alternately in one invocation: the
# throughput bench (`api RUNS CLIENTS`, `schedule JOBS DURATION`) built at
# BASE (default HEAD~1) and at HEAD into the bench target dir, each daemon
# binary swapped in for its rounds (ROUNDS api rounds, ROUNDS-1 schedule
# rounds each), so the load of the box weighs on both alike.
#   bench/compare.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-HEAD~1}" rounds="${ROUNDS:-3}"
runs="${RUNS:-20000}" clients="${CLIENTS:-64}" jobs="${JOBS:-20000}" seconds="${DURATION:-20}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/sandcron-bench/target}"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" 2>/dev/null || true; rm -rf "$work"' EXIT
build() { # revision into $work/$2
    git worktree add -q --detach "$work/tree" "$1"
    (cd "$work/tree" && CARGO_TARGET_DIR="$target" cargo bench -j2 -p sandcron --bench throughput --no-run 2>&1 | tail -1)
    mkdir -p "$work/$2"
    cp "$target/release/sandcron" "$work/$2/sandcron"
    cp "$(ls -t "$target"/release/deps/throughput-* | grep -v '\.d$' | head -1)" "$work/$2/throughput"
    git worktree remove --force "$work/tree"
}
build "$base" base
build HEAD head
run() { # base|head scenario args...
    cp "$work/$1/sandcron" "$target/release/sandcron"
    echo "== $1 $2 (load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$work/$1/throughput" "$2" "${@:3}" 2>&1 | grep -E "^(api|schedule):"
}
for _ in $(seq "$rounds"); do run base api "$runs" "$clients"; run head api "$runs" "$clients"; done
for _ in $(seq $((rounds - 1))); do run base schedule "$jobs" "$seconds"; run head schedule "$jobs" "$seconds"; done
