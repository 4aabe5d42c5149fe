"""A/B of the workers: how fast do they drain a queue filled beforehand, per variant, in alternation.

    .venv/bin/python bench/drain.py --variant base=/tmp/base --variant new=. [--variant c16=.:CASSANDRA_WRITE_CONCURRENCY=16]
                                    [--rounds 3] [--batches 100] [--workers 1]

Each round fills the queue with the same 1,000-record batches (new timestamps per run, so every run
writes new rows), queued by the variant's own code (the payload form its API would queue), then
starts the variant's workers (code imported from the given directory) and times them until every
payload is gone. Also reports the workers' CPU per batch, which other load on
the machine disturbs less than the rate. Needs Redis and Cassandra from `make up`; uses a keyspace
of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab import cpu_seconds  # noqa: E402
from bench.run import ROOT, Proc, clean_up, parse_variants  # noqa: E402
from common.queue import BatchQueue, connect_redis  # noqa: E402
from common.settings import Settings  # noqa: E402
from common.store import CassandraStore  # noqa: E402


def start_worker(source: str, env: dict) -> Proc:
    source = str(Path(source).resolve())
    logfile = open(ROOT / "bench" / "results" / "drain-worker.log", "ab")
    return Proc("drain-worker", subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker"], cwd=source,
        env={**os.environ, **env, "PYTHONPATH": source}, stdout=logfile, stderr=logfile))


def fill(source: str, env: dict, namespace: str, batches: int, start_ns: int) -> None:
    """Queue the batches with the variant's own code, so that each variant's workers read the
    payload form their own API would queue."""
    code = ("import sys; from bench.workload import bodies; from common.queue import BatchQueue, connect_redis; "
            "from common.records import BatchDecoder; from common.settings import Settings; "
            "s = Settings(queue_name=sys.argv[4], queue_high_water_mark=10**6); q = BatchQueue(connect_redis(s), s); d = BatchDecoder(s.max_line_bytes); "
            "[q.enqueue(d.decode(b, 'application/json').rows) "
            "for b in bodies(sys.argv[1], int(sys.argv[2]), start_ns=int(sys.argv[3]))]")
    source = str(Path(source).resolve())
    subprocess.run([sys.executable, "-c", code, namespace, str(batches), str(start_ns), env["QUEUE_NAME"]],
                   cwd=source, check=True, env={**os.environ, "PYTHONPATH": source})


def wait_while(condition, workers: list[Proc], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while condition():
        if any(w.popen.poll() is not None for w in workers):
            raise RuntimeError("a worker exited; see bench/results/drain-worker.log")
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME=DIR[:ENV=VALUE,...]: workers started from DIR's code with extra env")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    variants = parse_variants(args.variant)
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"drain-{run}", cassandra_keyspace=f"drain_{run}", cassandra_consistency="ONE",
                        queue_high_water_mark=10**6)
    env = {"QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "LOG_LEVEL": "WARNING", "WORKER_METRICS_PORT": "0"}
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    store = CassandraStore(settings)
    store.connect()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    runs = 0
    try:
        for round_number in range(args.rounds):
            line = [f"round {round_number + 1}"]
            for name, (source, extra) in variants.items():
                runs += 1
                start_ns = 1_774_000_000 * 10**9 + runs * 10**12
                fill(source, {**env, **extra}, f"drain{runs}", args.batches, start_ns)
                workers = [start_worker(source, {**env, **extra}) for _ in range(args.workers)]
                wait_while(lambda: queue.unwritten_batches() == args.batches, workers)  # started writing
                cpu_before = sum(cpu_seconds(w.popen.pid) for w in workers)
                started, measured = time.perf_counter(), queue.unwritten_batches()
                wait_while(lambda: queue.unwritten_batches() > 0, workers)
                elapsed = time.perf_counter() - started
                cpu = sum(cpu_seconds(w.popen.pid) for w in workers) - cpu_before
                for w in workers:
                    w.stop()
                rate = measured * 1000 / elapsed
                results[name].append((rate, cpu / measured * 1000))
                line.append(f"{name} {rate:,.0f} rows/s ({cpu / measured * 1000:.1f} CPU ms/batch)")
            print("; ".join(line), flush=True)
    finally:
        clean_up(settings, store, queue, redis)
    print()
    for name, runs_ in results.items():
        rates, cpus = zip(*runs_)
        print(f"{name:>12}: median {statistics.median(rates):,.0f} rows/s, {statistics.median(cpus):.1f} CPU ms/batch "
              f"(rates {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
