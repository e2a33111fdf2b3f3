#!/usr/bin/env bash
# The built-in plugin std.http against a local receiver: a fresh daemon
# (`--http-allow-private 127.0.0.1/32`), a cron job in Asia/Tokyo whose
# input is a templated POST with a JSON body (every placeholder used), run
# RUNS times (default 20) one after another with `POST .../run?wait=30s`.
# Prints the first run (which compiles std.http for the engine) apart, then
# the medians over the RUNS that follow of the run's `duration_ms` (the
# sandbox's wall time, instance to output), the round trip of the
# `?wait=` request (queueing, the run, its durable record), and, for
# comparison, the same for the `fetch` test plugin making the same request
# and for the `noop` plugin (no request: what a run costs besides it).
# Also prints std.http's component size and the compile time the daemon logs.
#
#   bench/std_http.sh [path/to/sandcron]   # default: target/debug/sandcron
#
# The receiver is python3's http.server answering every POST with 201 and a
# 12-byte JSON body.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/sandcron}")
RUNS=${RUNS:-20}

FETCH=plugins/target/wasm32-wasip2/release/fetch.wasm
NOOP=plugins/target/wasm32-wasip2/release/noop.wasm
if [ ! -f "$FETCH" ] || [ ! -f "$NOOP" ]; then
    (cd plugins && cargo build --release --quiet --target-dir target)
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

work=$(mktemp -d)
daemon="" receiver=""
cleanup() {
    for pid in $daemon $receiver; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/receiver.py" <<'EOF'
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"ok": true}'
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
EOF
python3 "$work/receiver.py" >"$work/receiver-port" &
receiver=$!
for _ in $(seq 100); do [ -s "$work/receiver-port" ] && break; sleep 0.05; done
port=$(cat "$work/receiver-port")

SANDCRON_LOG=info "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
    --http-allow-private 127.0.0.1/32 2>"$work/log" &
daemon=$!
url=""
for _ in $(seq 600); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$work/log" | head -1 | sed 's/listening on //' || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "the daemon did not start" >&2; cat "$work/log" >&2; exit 1; }
admin=$(cat "$work/data/admin-token")
api() { curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }

target="http://127.0.0.1:$port"
api -d "$(jq -n --arg url "$target/hook/{{run_id}}?job={{job}}" '{
    name: "std-http", plugin: "std.http",
    schedule: {cron: "0 9 * * *", timezone: "Asia/Tokyo"}, http_allow: ["127.0.0.1"],
    input: {url: $url, method: "POST", headers: {"x-job": "{{job}}"},
            body: {at: "{{timestamp}}", ms: "{{timestamp_ms}}", run: "{{run_id}}", attempt: "{{attempt}}"}}}')" \
    "$url/v1/jobs" >/dev/null
api --data-binary "@$FETCH" -H 'content-type: application/wasm' "$url/v1/plugins?name=fetch" >/dev/null
api -d "$(jq -n --arg url "$target/hook/x?job=fetch" '{
    name: "fetch", plugin: "fetch", http_allow: ["127.0.0.1"],
    input: {url: $url, method: "POST", headers: [["x-job", "fetch"], ["content-type", "application/json"]],
            body: "{\"at\":\"2026-05-04T18:30:00+09:00\",\"ms\":\"1777887000000\",\"run\":\"01J\",\"attempt\":\"1\"}"}}')" \
    "$url/v1/jobs" >/dev/null
api --data-binary "@$NOOP" -H 'content-type: application/wasm' "$url/v1/plugins?name=noop" >/dev/null
api -d '{"name": "noop", "plugin": "noop"}' "$url/v1/jobs" >/dev/null

# One run: "<duration_ms> <round trip in microseconds> <run id>", failing loudly.
run_once() {
    local answer
    answer=$(curl -sf -H "Authorization: Bearer $admin" -X POST -w '\n%{time_total}' \
        "$url/v1/jobs/$1/run?wait=30s")
    local run=${answer%$'\n'*} total=${answer##*$'\n'}
    [ "$(jq -r .status <<<"$run")" = succeeded ] || { echo "run of $1 failed: $run" >&2; exit 1; }
    echo "$(jq -r .duration_ms <<<"$run") $(awk -v t="$total" 'BEGIN {printf "%d", t * 1000000}') $(jq -r .id <<<"$run")"
}

# The request's own time as std.http logs it ("... in 0.8 ms"), in microseconds.
request_us() {
    curl -sf -H "Authorization: Bearer $admin" "$url/v1/runs/$1/logs" |
        grep -o 'in [0-9.]* ms' | awk '{printf "%d", $2 * 1000}'
}

read -r duration trip _ <<<"$(run_once std-http)"
compile_ms=$(grep -o 'built-in plugin compiled.*' "$work/log" | grep -o 'compile_ms=[0-9]*' | head -1 | cut -d= -f2 || true)
echo "first std.http run: duration $duration ms, round trip $((trip / 1000)) ms; std.http compiled in ${compile_ms:-?} ms (in the background when the job was created)"
run_once fetch >/dev/null
run_once noop >/dev/null
for job in std-http fetch noop; do
    : >"$work/durations" ; : >"$work/trips"; : >"$work/requests"
    for _ in $(seq "$RUNS"); do
        read -r duration trip run_id <<<"$(run_once "$job")"
        echo "$duration" >>"$work/durations"
        echo "$trip" >>"$work/trips"
        [ "$job" = std-http ] && request_us "$run_id" >>"$work/requests" && echo >>"$work/requests"
    done
    requests=""
    [ -s "$work/requests" ] && requests=", the request itself $(grep . "$work/requests" | median) us"
    echo "$job: median of $RUNS runs: duration_ms $(median <"$work/durations"), round trip $(median <"$work/trips") us (min $(sort -n "$work/trips" | head -1), max $(sort -n "$work/trips" | tail -1))$requests"
done
size=$(api "$url/v1/plugins/std.http" | jq -r '.versions[0].size')
echo "std.http component: $size bytes ($(api "$url/v1/plugins/std.http" | jq -r '.versions[0].digest')); fetch: $(stat -c %s "$FETCH") bytes"
echo "binary: $BIN; $(uptime)"
