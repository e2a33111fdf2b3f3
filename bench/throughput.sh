#!/usr/bin/env bash
# Benchmark 2: durable runs per second of a noop job, asked for over HTTP
# (`POST /v1/jobs/{id}/run` against the real daemon, RUNS runs from CLIENTS
# clients) and fired by schedules (JOBS jobs every second for DURATION seconds;
# the default 20,000 offers twice the 10,000 runs/s target, so the figure is
# what the daemon keeps up with, not what it was offered).
# FLUSH_INTERVAL=0|1ms|5ms tries other durability windows.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-20000}" clients="${CLIENTS:-64}" jobs="${JOBS:-20000}" seconds="${DURATION:-20}"
cargo bench -p sandcron --bench throughput -- api "$runs" "$clients"
cargo bench -p sandcron --bench throughput -- schedule "$jobs" "$seconds"
