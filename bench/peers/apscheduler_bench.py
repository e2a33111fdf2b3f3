"""APScheduler 3.x on the workloads of sandcron's benchmarks (bench/README.md).

Each run prints one line of JSON with its figures. The job is a Python no-op
that records when it ran; APScheduler's default executor (a pool of 10
threads) runs it; nothing is durable except the job store's jobs (SQLite,
or PostgreSQL at $PEER_DATABASE_URL, a SQLAlchemy URL).

  python apscheduler_bench.py per-run N
  python apscheduler_bench.py burst N ROUNDS memory|sqlite|postgres
  python apscheduler_bench.py cron N SECONDS memory|sqlite|postgres
  python apscheduler_bench.py restart N [sqlite|postgres]
"""

import json
import logging
import math
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from apscheduler.executors.base import run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

logging.basicConfig(level=logging.ERROR)

STARTS = {}
LOCK = threading.Lock()
DONE = threading.Event()
WANTED = [0]
# Seconds the burst workload's tick runs alone before the first burst (its
# idle lateness).
IDLE_SECONDS = int(os.environ.get("IDLE_SECONDS", "10"))


def noop(key):
    """The job: remember when it ran (and nothing else)."""
    now = time.time()
    with LOCK:
        STARTS[key] = now
        if len(STARTS) >= WANTED[0]:
            DONE.set()


TICKS = []


def tick():
    """An every-second job on whole seconds: it knows when it was due."""
    now = time.time()
    with LOCK:
        TICKS.append(now)


def percentile(values, fraction):
    if not values:
        return 0
    values = sorted(values)
    return values[round((len(values) - 1) * fraction)]


def spread_us(values):
    return {
        "p50_us": round(percentile(values, 0.5) * 1e6),
        "p99_us": round(percentile(values, 0.99) * 1e6),
        "max_us": round(max(values) * 1e6) if values else 0,
    }


def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def scheduler_for(store, path=None):
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    if store == "sqlite":
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        scheduler.add_jobstore(SQLAlchemyJobStore(url=f"sqlite:///{path}"), "default")
    elif store == "postgres":
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        scheduler.add_jobstore(SQLAlchemyJobStore(url=os.environ["PEER_DATABASE_URL"]), "default")
    return scheduler


def next_second(at):
    return math.floor(at) + 1


def per_run(count):
    """APScheduler's own run path for one due run (misfire check, the call,
    the event), called directly: its per-run cost without any waiting."""
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.start(paused=True)
    job = scheduler.add_job(noop, "date", run_date=datetime.now(timezone.utc) + timedelta(days=1), args=["x"])
    run_time = [datetime.now(timezone.utc)]
    WANTED[0] = 1 << 60
    for _ in range(1000):
        run_job(job, "default", run_time, "apscheduler.executors.default")
    began = time.perf_counter()
    for _ in range(count):
        run_job(job, "default", run_time, "apscheduler.executors.default")
    took = time.perf_counter() - began
    scheduler.shutdown(wait=False)
    return {"workload": "per-run", "runs": count, "per_run_us": took / count * 1e6}


def burst(count, rounds, store):
    with tempfile.TemporaryDirectory() as dir:
        scheduler = scheduler_for(store, os.path.join(dir, "jobs.sqlite"))
        scheduler.start()
        start = datetime.fromtimestamp(next_second(time.time()), timezone.utc)
        scheduler.add_job(tick, "interval", seconds=1, start_date=start, misfire_grace_time=None)
        # Idle seconds first: the tick alone.
        idle_until = start.timestamp() + IDLE_SECONDS
        time.sleep(max(0.0, idle_until - time.time()))
        results = []
        for round_ in range(rounds):
            # Adding a job to a database store is a transaction of its own.
            margin = count * {"sqlite": 0.008, "postgres": 0.004}.get(store, 0.00025)
            instant = next_second(time.time() + 2 + margin)
            due = datetime.fromtimestamp(instant, timezone.utc)
            with LOCK:
                STARTS.clear()
            DONE.clear()
            WANTED[0] = count
            for index in range(count):
                scheduler.add_job(noop, "date", run_date=due, args=[index], misfire_grace_time=None)
            assert time.time() < instant, "jobs were added too late"
            DONE.wait(600)
            with LOCK:
                starts = list(STARTS.values())
            last = max(starts)
            results.append({"round": round_, "instant": instant, "runs": len(starts), "all_ran_ms": (last - instant) * 1e3,
                            "lateness": spread_us([at - instant for at in starts])})
        time.sleep(1.2)
        with LOCK:
            ticks = list(TICKS)
        scheduler.shutdown(wait=True)
    instants = {r["instant"] for r in results}
    during = [at - math.floor(at) for at in ticks if math.floor(at) in instants]
    idle = [at - math.floor(at) for at in ticks if math.floor(at) < idle_until]
    return {"workload": "burst", "store": store, "rounds": results,
            "all_ran_ms_median": percentile([r["all_ran_ms"] for r in results], 0.5),
            "tick_lateness_idle": spread_us(idle), "tick_lateness_during_burst": spread_us(during),
            "tick_fires_at_burst_instants": f"{len(during)} of {rounds}"}


def cron(count, seconds, store):
    with tempfile.TemporaryDirectory() as dir:
        scheduler = scheduler_for(store, os.path.join(dir, "jobs.sqlite"))
        for index in range(count):
            trigger = CronTrigger(second=index % 60, minute=f"{(index // 60) % 10}/10", timezone=timezone.utc)
            scheduler.add_job(tick, trigger, misfire_grace_time=None, id=f"cron-{index}")
        scheduler.start()
        time.sleep(2)
        since = time.time()
        cpu_before = cpu_seconds()
        time.sleep(seconds)
        cpu = cpu_seconds() - cpu_before
        rss = rss_mib()
        with LOCK:
            ticks = [at for at in TICKS if at >= since]
        scheduler.shutdown(wait=False)
    return {"workload": "cron", "store": store, "jobs": count, "seconds": seconds, "fires": len(ticks),
            "lateness": spread_us([at - math.floor(at) for at in ticks]),
            "rss_mib": rss, "cpu_percent": cpu / seconds * 100}


def restart(count, store):
    """N stored jobs in SQLite or PostgreSQL; a new process starts on them:
    how late is the first fire, and what happens to a one-shot that came due
    while down."""
    dir = tempfile.mkdtemp()
    path = os.path.join(dir, "jobs.sqlite")
    scheduler = scheduler_for(store, path)
    scheduler.start(paused=True)
    # Daily, twelve hours from now: none fires during the bench (as in
    # sandcron's scale bench; a fixed hour fired them all when run in it).
    hour = (datetime.now(timezone.utc).hour + 12) % 24
    for index in range(count):
        scheduler.add_job(tick, CronTrigger(hour=hour, second=index % 60, timezone=timezone.utc), id=f"idle-{index}")
    now = time.time()
    scheduler.add_job(noop, "date", run_date=datetime.fromtimestamp(now + 3, timezone.utc), args=["overdue"], id="overdue")
    scheduler.shutdown(wait=False)
    # The "restart": 5 s later (the one-shot is then 2 s overdue), a new
    # scheduler opens the same store with a job due 100 ms after it starts.
    time.sleep(max(0, now + 5 - time.time()))
    began = time.time()
    scheduler = scheduler_for(store, path)
    WANTED[0] = 1 << 60
    scheduler.add_job(noop, "date", run_date=datetime.fromtimestamp(began + 0.1, timezone.utc), args=["soon"], id="soon")
    scheduler.start()
    deadline = time.time() + 10
    while "soon" not in STARTS and time.time() < deadline:
        time.sleep(0.001)
    time.sleep(0.5)
    scheduler.shutdown(wait=False)
    return {"workload": "restart", "store": store, "jobs": count,
            "first_fire_late_ms": (STARTS["soon"] - (began + 0.1)) * 1e3 if "soon" in STARTS else None,
            "overdue_one_shot_ran": "overdue" in STARTS}


def main():
    workload, *rest = sys.argv[1:]
    if workload == "per-run":
        result = per_run(int(rest[0]))
    elif workload == "burst":
        result = burst(int(rest[0]), int(rest[1]), rest[2])
    elif workload == "cron":
        result = cron(int(rest[0]), int(rest[1]), rest[2])
    elif workload == "restart":
        result = restart(int(rest[0]), rest[1] if len(rest) > 1 else "sqlite")
    else:
        raise SystemExit(f"unknown workload {workload}")
    result["peer"] = "apscheduler"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
