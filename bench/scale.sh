#!/usr/bin/env bash
# Benchmark 5: JOBS idle jobs (default 100000; try 1000000): RSS, restart to
# first fire (a job due after the restart, and a one-shot that came due while
# the daemon was down), idle CPU; and 10,000 cron jobs at second resolution
# for 70 s: lateness, RSS and CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p sandcron --bench scheduler_lateness -- scale "${JOBS:-100000}" 10
cargo bench -p sandcron --bench scheduler_lateness -- cron 10000 70
