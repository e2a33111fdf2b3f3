# Sourced by the bench scripts: a work dir removed at exit with the daemon
# started in it, a median, and starting and stopping the daemon `$BIN`.

work=$(mktemp -d)
daemon=""
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The median of the numbers on standard input, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# start_daemon DATA_DIR LOG: `$BIN serve` on a free port with its data in
# DATA_DIR and its log in LOG; sets $daemon and $url.
start_daemon() {
    mkdir -p "$1"
    SANDCRON_LOG=info "$BIN" serve --listen 127.0.0.1:0 --data-dir "$1" 2>"$2" &
    daemon=$!
    url=""
    for _ in $(seq 600); do
        url=$(grep -o 'listening on http://[0-9.:]*' "$2" | head -1 | sed 's/listening on //' || true)
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "the daemon did not start" >&2
    cat "$2" >&2
    exit 1
}

stop_daemon() {
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=""
}
