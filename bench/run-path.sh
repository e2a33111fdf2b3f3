#!/usr/bin/env bash
# Benchmark 1 (and 6): per-run cost of the noop plugin in process (criterion):
# bare wasmtime with and without pooling, fuel and epochs; sandcron's sandbox;
# the run record; compile vs cached artifact; the CPU-bound plugin under
# each CPU limit; a noop job in Rust, Python and JavaScript. Extra arguments
# filter criterion groups, e.g. `cpu_bound` or `languages`.
#
# Unless the arguments leave out `languages`, the Python and JavaScript
# noops are built first with `sandcron new` + `sandcron build` (toolchains
# from the default cache, installed on first use), and after criterion the
# three noops also run over HTTP through a daemon: HTTP_RUNS (default 200)
# runs each, interleaved, `POST /v1/jobs/{name}/run?wait=30s`; the medians
# of the request's wall time (curl) and of the run's duration_ms.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_RUNS=${HTTP_RUNS:-200}

languages=yes
if [ $# -gt 0 ]; then
    languages=no
    for filter in "$@"; do
        case "languages" in *"$filter"*) languages=yes ;; esac
    done
fi
if [ "$languages" = no ]; then
    exec cargo bench -p sandcron --bench run_path -- "$@"
fi

. bench/lib.sh
echo "uptime: $(uptime)"
BIN=$(cargo build -q --release -p sandcron --bin sandcron --message-format=json |
    jq -r 'select(.executable != null) | .executable' | tail -n 1)
"$BIN" new noop-python --lang python --dir "$work/noop-python" >/dev/null
cat >"$work/noop-python/app.py" <<'PY'
from sandcron import Context, Input, WitWorld, job  # noqa: F401 (WitWorld: the export)


@job
def run(ctx: Context, input: Input) -> None:
    return None
PY
"$BIN" new noop-js --lang js --dir "$work/noop-js" >/dev/null
cat >"$work/noop-js/index.js" <<'JS'
import { job } from './sandcron.js';

export const run = job(() => undefined);
JS
SANDCRON_BENCH_NOOP_PYTHON=$("$BIN" build "$work/noop-python" | tail -n 1)
SANDCRON_BENCH_NOOP_JS=$("$BIN" build "$work/noop-js" | tail -n 1)
export SANDCRON_BENCH_NOOP_PYTHON SANDCRON_BENCH_NOOP_JS
# Criterion also builds the Rust noop (plugins/target).
cargo bench -p sandcron --bench run_path -- "$@"

echo "== over HTTP: $HTTP_RUNS runs of each noop (uptime: $(uptime))"
start_daemon "$work/data" "$work/daemon.log"
token=$(cat "$work/data/admin-token")
declare -A components=([rust]=plugins/target/wasm32-wasip2/release/noop.wasm
    [python]=$SANDCRON_BENCH_NOOP_PYTHON [js]=$SANDCRON_BENCH_NOOP_JS)
for lang in rust python js; do
    "$BIN" plugin push "${components[$lang]}" --name "noop-$lang" --url "$url" --data-dir "$work/data" >/dev/null
    "$BIN" job create --name "noop-$lang" --plugin "noop-$lang" --url "$url" --data-dir "$work/data" >/dev/null
    # The first run loads the compiled plugin; not counted.
    curl -sf -X POST -H "Authorization: Bearer $token" "$url/v1/jobs/noop-$lang/run?wait=30s" >/dev/null
done
for _ in $(seq "$HTTP_RUNS"); do
    for lang in rust python js; do
        answer=$(curl -sf -X POST -H "Authorization: Bearer $token" -w '\n%{time_total}' \
            "$url/v1/jobs/noop-$lang/run?wait=30s")
        [ "$(head -n 1 <<<"$answer" | jq -r .status)" = succeeded ] || { echo "run failed: $answer" >&2; exit 1; }
        echo "$(tail -n 1 <<<"$answer") $(head -n 1 <<<"$answer" | jq -r .duration_ms)" >>"$work/http-$lang"
    done
done
stop_daemon
printf '%-7s %14s %16s\n' lang request_ms duration_ms
for lang in rust python js; do
    request=$(awk '{printf "%.2f\n", $1 * 1000}' "$work/http-$lang" | median)
    duration=$(awk '{print $2}' "$work/http-$lang" | median)
    printf '%-7s %14s %16s\n' "$lang" "$request" "$duration"
done
