#!/usr/bin/env bash
# Benchmark 6: the CPU-bound `crunch` plugin with no CPU limit, fuel, epochs
# and both (criterion group `cpu_bound` of the run_path bench).
set -euo pipefail
exec "$(dirname "$0")/run-path.sh" cpu_bound "$@"
