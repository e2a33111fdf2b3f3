#!/usr/bin/env bash
# Benchmark 8: memory under sustained load. The real daemon (dev profile)
# with JOBS noop jobs every second (default 200: 200 runs/s) and
# `--max-runs-per-job MAX_RUNS` (default 100) for DURATION (default 30m),
# sampled every SAMPLE (default 1m): the daemon's RSS (VmRSS), the data
# dir's size, runs/s over the interval, the succeeded runs counted
# against JOBS x elapsed seconds and the daemon's threads. Prints a table
# and a verdict: RSS over the last 20 samples (all of them in a shorter
# soak, less the first) flat within 10 % (max / min), and no run lost
# (every fire ran once: the succeeded count grew by JOBS per second, give
# or take the first and last second; nothing failed or was skipped).
# DURATION=5m for a quick check; MAX_RUNS=0 keeps every run (disk growth
# per run); DB_CACHE, FLUSH_INTERVAL, MIMALLOC_PURGE_DELAY,
# MIMALLOC_PAGE_FULL_RETAIN reach the daemon; BINARY=path runs a prebuilt
# daemon (an A/B of two builds) instead of building this checkout's;
# KEEP=1 keeps the data dir and the daemon's log.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
jobs="${JOBS:-200}" max_runs="${MAX_RUNS:-100}" sample="${SAMPLE:-1m}" duration="${DURATION:-30m}"

seconds_of() {
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
duration_s="$(seconds_of "$duration")" sample_s="$(seconds_of "$sample")"

echo "== building the daemon (dev profile) and the noop plugin" >&2
if [ -z "${BINARY:-}" ]; then
  timeout 1800 cargo build -q -j2 -p sandcron --bin sandcron
  target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  BINARY="$target/debug/sandcron"
fi
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
(cd plugins && env -u CARGO_BUILD_TARGET_DIR -u CARGO_TARGET_DIR -u RUSTFLAGS \
  timeout 900 cargo build -q --release -p noop --target-dir target)
plugin="$root/plugins/target/wasm32-wasip2/release/noop.wasm"

work="$(mktemp -d)"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

env_args=()
for name in DB_CACHE FLUSH_INTERVAL MAX_CONCURRENT_RUNS FIRE_AHEAD; do
  if [ -n "${!name:-}" ]; then env_args+=("SANDCRON_$name=${!name}"); fi
done
# The daemon runs for DURATION plus a margin, and never longer.
env "${env_args[@]}" RUST_LOG=warn,sandcron=info timeout $(( duration_s + 600 )) \
  "$BINARY" serve --listen 127.0.0.1:0 --data-dir "$work/data" --max-runs-per-job "$max_runs" \
  2> "$work/daemon.log" &
daemon_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/daemon.log" | head -n 1)"
  [ -n "$url" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the daemon printed no address" >&2; exit 1; }
token="$(cat "$work/data/admin-token")"
# `timeout` runs the daemon as its child: that is the process to measure.
server_pid="$(pgrep -P "$daemon_pid" | head -n 1)"
api() { curl -sS --max-time 30 -H "Authorization: Bearer $token" "$@"; }

api -o /dev/null --data-binary "@$plugin" "$url/v1/plugins?name=noop"
for index in $(seq 1 "$jobs"); do
  api -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"name\": \"soak-$index\", \"plugin\": \"noop\", \"schedule\": {\"every\": \"1s\"}}" "$url/v1/jobs"
done
echo "== $jobs jobs every second, max_runs_per_job $max_runs, for ${duration_s}s, daemon $server_pid on $url" >&2

# Succeeded / other finished runs, from /metrics.
counts() {
  api "$url/metrics" | awk '/^sandcron_runs_total\{/ {
      if ($0 ~ /status="succeeded"/) ok += $NF; else other += $NF }
    END { printf "%d %d\n", ok, other }'
}
# "job count" of succeeded runs, a line per job.
per_job() {
  api "$url/metrics" | sed -n 's/^sandcron_runs_total{.*job="\([^"]*\)".*status="succeeded".* \([0-9.e+]*\)$/\1 \2/p'
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$server_pid/status"; }
disk_mb() { du -sb "$work/data" | awk '{ printf "%.1f", $1 / 1e6 }'; }
now() { date +%s.%N; }

# The first fires come a second or two after the jobs are created: start
# counting once runs are finishing.
for _ in $(seq 1 100); do
  read -r ok _ < <(counts)
  [ "$ok" -ge "$jobs" ] && break
  sleep 0.1
done
read -r ok0 other0 < <(counts)
t0="$(now)"
per_job > "$work/jobs0"
results="$work/samples"
: > "$results"
printf '%-8s %-10s %-10s %-8s %-12s %-12s %-8s %-8s\n' minute rss_MiB data_MB runs/s counted expected missing threads
previous_ok="$ok0" previous_t="$t0"
samples=$(( duration_s / sample_s ))
for index in $(seq 1 "$samples"); do
  # Sleep to the next whole sample since t0, so drift does not add up.
  wake="$(awk -v t0="$t0" -v i="$index" -v s="$sample_s" 'BEGIN { printf "%.3f", t0 + i * s }')"
  sleep "$(awk -v w="$wake" -v n="$(now)" 'BEGIN { d = w - n; printf "%.3f", (d > 0 ? d : 0) }')"
  kill -0 "$server_pid" 2>/dev/null || { echo "the daemon died" >&2; tail -n 20 "$work/daemon.log" >&2; exit 1; }
  t="$(now)"
  read -r ok other < <(counts)
  rss="$(rss_mib)" disk="$(disk_mb)" threads="$(threads)"
  awk -v i="$index" -v s="$sample_s" -v rss="$rss" -v disk="$disk" -v ok="$ok" -v ok0="$ok0" -v threads="$threads" \
      -v pok="$previous_ok" -v t="$t" -v pt="$previous_t" -v t0="$t0" -v jobs="$jobs" 'BEGIN {
    counted = ok - ok0; expected = jobs * (t - t0)
    printf "%-8.1f %-10s %-10s %-8.0f %-12d %-12.0f %-8.0f %-8s\n", i * s / 60, rss, disk,
      (ok - pok) / (t - pt), counted, expected, expected - counted, threads
  }' | tee -a "$results"
  previous_ok="$ok" previous_t="$t"
done

read -r ok other < <(counts)
t_end="$(now)"
skipped="$(api "$url/v1/jobs" | grep -o '"skipped_fires": *[0-9]*' | awk -F: '{ s += $2 } END { print s + 0 }')"
# Every job ran every second: one whose count grew less than the others'
# since the first sample (give or take a second) is named.
behind="$(per_job | awk 'NR == FNR { start[$1] = $2; next }
  { grown[$1] = $2 - start[$1]; if (grown[$1] > most) most = grown[$1] }
  END { for (job in grown) if (grown[job] + 2 < most) printf "%s (%d of %d) ", job, grown[job], most }' "$work/jobs0" -)"
jobs_seen="$(per_job | wc -l)"
echo "== jobs with succeeded runs: $jobs_seen of $jobs; behind the others: ${behind:-none}" >&2
echo "== uptime: $(uptime)" >&2
awk -v jobs="$jobs" -v ok="$ok" -v ok0="$ok0" -v other="$other" -v other0="$other0" -v t0="$t0" \
    -v t="$t_end" -v skipped="$skipped" -v behind="${behind:-}" -v seen="$jobs_seen" '
  { rss[NR] = $2 }
  END {
    # The last 20 samples; in a shorter soak every sample but the first.
    first = NR > 20 ? NR - 19 : (NR > 1 ? 2 : 1)
    low = 1e18; high = 0
    for (i = first; i <= NR; i++) { if (rss[i] < low) low = rss[i]; if (rss[i] > high) high = rss[i] }
    flat = low > 0 && high / low <= 1.10
    counted = ok - ok0; expected = jobs * (t - t0)
    # Give or take the first and last second of the window.
    lost = counted < expected - 2 * jobs || counted > expected + 2 * jobs || other > other0 || skipped > 0 ||
      behind != "" || seen < jobs
    printf "RSS over samples %d-%d: min %.1f max %.1f MiB, max/min %.3f: %s\n", first, NR, low, high,
      (low > 0 ? high / low : 0), (flat ? "flat within 10 %" : "NOT flat")
    printf "runs: %d succeeded in %.0f s, expected %.0f (+-%d), %d not succeeded, %d fires skipped: %s\n",
      counted, t - t0, expected, 2 * jobs, other - other0, skipped, (lost ? "RUNS LOST" : "no run lost")
    if (flat && !lost) print "VERDICT: pass"; else print "VERDICT: fail"
    exit !(flat && !lost)
  }' "$results"
