#!/usr/bin/env bash
# Benchmark 1 (and 6): per-run cost of the noop plugin in process (criterion):
# bare wasmtime with and without pooling, fuel and epochs; sandcron's sandbox;
# the run record; compile vs cached artifact; the CPU-bound plugin under
# each CPU limit. Extra arguments filter criterion groups, e.g. `cpu_bound`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p sandcron --bench run_path -- "$@"
