#!/usr/bin/env bash
# Hostile tenants: idle connections. How many connections sending a partial
# request head a daemon holds, and whether /healthz answers meanwhile (see
# bench/idle_connections.py). BIN= the binary to measure (default: this
# clone's debug build, built first); NOFILE= the daemon's open-files soft
# limit (default 1024, a common distribution default; `ulimit -Hn` caps it);
# STEPS= connection counts, RUNS=, LINGER= seconds before the second count.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-}"
if [ -z "$bin" ]; then
    cargo build -p sandcron
    bin="${CARGO_TARGET_DIR:-target}/debug/sandcron"
fi
uptime
python3 bench/idle_connections.py --bin "$bin" --nofile "${NOFILE:-1024}" \
    --steps "${STEPS:-500,1000,1100,2000,4000}" --runs "${RUNS:-3}" --linger "${LINGER:-12}"
uptime
