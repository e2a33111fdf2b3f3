"""Turns the JSON lines of one side-by-side run (bench/peers.sh) into the
markdown table of docs/benchmarks.md: each workload's figure for sandcron
and each peer, and sandcron's figure divided by the peer's (below 1: sandcron
takes less time, memory or CPU)."""

import json
import sys

PEERS = [("sandcron", None), ("apscheduler", "memory"), ("apscheduler", "sqlite"), ("node-cron", None)]
HEADS = ["sandcron", "APScheduler (memory)", "APScheduler (SQLite)", "node-cron"]


def load(path):
    results = {}
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            result = json.loads(line)
            store = result.get("store")
            key = (result["peer"], store if result["peer"] == "apscheduler" else None, result["workload"])
            results[key] = result
    return results


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def rows(results):
    def get(peer, store, workload, pick):
        result = results.get((peer, store, workload))
        if result is None and workload == "per-run" and peer == "apscheduler" and store == "memory":
            result = results.get((peer, None, workload))
        if result is None:
            return None
        try:
            return pick(result)
        except (KeyError, TypeError, ValueError):
            return None

    def rounds(pick):
        return lambda r: median([pick(round_) for round_ in r["rounds"]])

    table = [
        ("per-run cost of a no-op run in process, µs", "per-run", lambda r: r["per_run_us"]),
        ("burst: 10,000 one-shots due at once, until the last ran, ms (median of rounds)", "burst",
         lambda r: r["all_ran_ms_median"]),
        ("burst: lateness p50, ms", "burst", rounds(lambda x: x["lateness"]["p50_us"] / 1000)),
        ("burst: lateness p99, ms", "burst", rounds(lambda x: x["lateness"]["p99_us"] / 1000)),
        ("burst: runs lost (of 10,000 a round, summed)", "burst",
         lambda r: sum(x.get("missed", 0) for x in r["rounds"])),
        ("every-second job lateness p99 in the 10 idle seconds before the bursts, ms", "burst",
         lambda r: r["tick_lateness_idle"]["p99_us"] / 1000),
        ("every-second job lateness at the burst instants, max, ms", "burst",
         lambda r: r["tick_lateness_during_burst"]["max_us"] / 1000),
        ("every-second job fires at the burst instants", "burst", lambda r: r["tick_fires_at_burst_instants"]),
        ("10,000 cron jobs at second resolution: lateness p50, ms", "cron", lambda r: r["lateness"]["p50_us"] / 1000),
        ("10,000 cron jobs at second resolution: lateness p99, ms", "cron", lambda r: r["lateness"]["p99_us"] / 1000),
        ("10,000 cron jobs: fires in the window", "cron", lambda r: r["fires"]),
        ("10,000 cron jobs: RSS, MiB", "cron", lambda r: r["rss_mib"]),
        ("10,000 cron jobs: CPU, % of one core", "cron", lambda r: r["cpu_percent"]),
        ("restart with 10,000 stored jobs: first fire late, ms", "restart", lambda r: r["first_fire_late_ms"]),
        ("restart: a one-shot overdue by > 1 s runs", "restart", lambda r: "yes" if r["overdue_one_shot_ran"] else "no (dropped)"),
    ]
    for label, workload, pick in table:
        figures = [get(peer, store, workload, pick) for peer, store in PEERS]
        yield label, figures


def show(value):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def ratio(ours, theirs):
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}x"


def main():
    results = load(sys.argv[1])
    print("| workload | " + " | ".join(HEADS) + " | sandcron / APScheduler (memory) | sandcron / node-cron |")
    print("|---" * (len(HEADS) + 3) + "|")
    for label, figures in rows(results):
        print(f"| {label} | " + " | ".join(show(f) for f in figures)
              + f" | {ratio(figures[0], figures[1])} | {ratio(figures[0], figures[3])} |")


if __name__ == "__main__":
    main()
