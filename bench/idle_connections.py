#!/usr/bin/env python3
"""Hostile tenants: idle connections. How many connections that send a
partial request head (no blank line ending it) a sandcron daemon holds, and
whether /healthz still answers meanwhile.

For each count N in --steps, a fresh daemon (the --bin binary, default
settings, its open-files soft limit set to --nofile) gets N connections, each
sending "GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n" and nothing more. Then:
  * /healthz is asked --probes times on new connections (2 s timeout each):
    answers, and the median time of those answered;
  * how many of the N the daemon still holds open right away, and after
    --linger seconds (the default header timeout is 10 s).
Every step is run --runs times; the table gives the medians. Only loopback
is used, every loop is bounded, and each daemon is killed after its step.

Standard library only. Usage:
  bench/idle_connections.py --bin target/debug/sandcron [--nofile 1024]
"""

import argparse
import os
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


def start_daemon(binary, nofile, data_dir, log_path):
    def limit_files():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

    log = open(log_path, "wb")
    process = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "SANDCRON_LOG": "info"},
        preexec_fn=limit_files,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log_path, "rb") as text:
            found = re.search(rb"listening on http://([0-9.]+):([0-9]+)", text.read())
        if found:
            return process, (found.group(1).decode(), int(found.group(2)))
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited: see {log_path}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the daemon did not start within 60 s")


def open_partial(address, count):
    """Opens up to `count` connections sending a partial head; stops after
    5 connects in a row fail (a daemon out of file descriptors stops
    accepting, and its backlog fills)."""
    sockets, failures = [], 0
    while len(sockets) < count and failures < 5:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(address)
            sock.sendall(PARTIAL_HEAD)
            sockets.append(sock)
            failures = 0
        except OSError:
            sock.close()
            failures += 1
    return sockets


def still_open(sockets):
    """How many the server has not closed: not readable, or readable with
    bytes but no end."""
    poller = select.poll()
    by_fd = {}
    for sock in sockets:
        poller.register(sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[sock.fileno()] = sock
    closed = set()
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(4096, socket.MSG_PEEK) == b"":
                closed.add(fd)
        except OSError:
            closed.add(fd)
    return len(sockets) - len(closed)


def healthz(address):
    """Seconds to a 200 from /healthz on a new connection, or None."""
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.settimeout(max(0.01, 2 - (time.monotonic() - started)))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return None
    if not answer.startswith(b"HTTP/1.1 200"):
        return None
    return time.monotonic() - started


def step(binary, nofile, count, probes, linger):
    with tempfile.TemporaryDirectory() as data_dir:
        log_path = os.path.join(data_dir, "daemon.log")
        process, address = start_daemon(binary, nofile, os.path.join(data_dir, "data"), log_path)
        try:
            sockets = open_partial(address, count)
            opened = len(sockets)
            times = [healthz(address) for _ in range(probes)]
            answered = [seconds for seconds in times if seconds is not None]
            held = still_open(sockets)
            time.sleep(linger)
            held_later = still_open(sockets)
            for sock in sockets:
                sock.close()
            return {
                "opened": opened,
                "held": held,
                "held_later": held_later,
                "answered": len(answered),
                "median_ms": statistics.median(answered) * 1000 if answered else None,
            }
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the sandcron binary")
    parser.add_argument("--nofile", type=int, default=1024, help="the daemon's open-files soft limit")
    parser.add_argument("--steps", default="500,1000,1100,2000,4000", help="connection counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--linger", type=float, default=12.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    counts = [int(count) for count in args.steps.split(",")]
    print(f"# {args.bin}: daemon open-files soft limit {args.nofile} (hard {hard}); {args.runs} runs")
    print(f"# {os.uname().sysname} {os.uname().release}; load: {os.getloadavg()}")
    print("| connections | opened | held at once | held after %gs | /healthz answered | /healthz median |" % args.linger)
    print("|---|---|---|---|---|---|")
    for count in counts:
        results = [step(args.bin, args.nofile, count, args.probes, args.linger) for _ in range(args.runs)]
        median = lambda key: statistics.median(result[key] for result in results)
        times = [result["median_ms"] for result in results if result["median_ms"] is not None]
        answered = "/".join(str(result["answered"]) for result in results)
        shown = f"{statistics.median(times):.1f} ms" if times else "none"
        print(
            f"| {count} | {median('opened'):.0f} | {median('held'):.0f} | {median('held_later'):.0f} "
            f"| {answered} of {args.probes} | {shown} |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
