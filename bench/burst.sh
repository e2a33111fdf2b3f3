#!/usr/bin/env bash
# Benchmarks 3 and 4: ROUNDS rounds of COUNT one-shot jobs due at the same
# instant (time until all have run, lateness p50/p99), while an every-second
# job fires on the same instants (its lateness idle and during the bursts).
# TICK_PRIORITY=high gives the every-second job a higher priority.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p sandcron --bench throughput -- burst "${COUNT:-10000}" "${ROUNDS:-3}"
