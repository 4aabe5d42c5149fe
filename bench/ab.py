"""A/B of the front end on a noisy machine: source trees (and settings) measured in alternation.

    .venv/bin/python bench/ab.py --variant base=/tmp/base --variant new=. [--variant t4=.:API_THREADS=4]
                                 [--rounds 5] [--batches 200]

Each round posts the same 1,000-record batches to the ceiling app and to one API per variant (its
code imported from the given directory), in turn, so that load from other work on the machine hits
every variant alike. Prints the median rate, p99 and rate / ceiling of the same round per variant.
Needs Redis from `make up`; the queue is emptied after every run (workers are not started).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import CEILING_PORT, ROOT, Proc, cpu_seconds, parse_variants, post_all, start, wait_http  # noqa: E402
from bench.workload import bodies  # noqa: E402
from common.queue import BatchQueue, connect_redis  # noqa: E402
from common.redis_keys import payload_key_prefix  # noqa: E402
from common.settings import Settings  # noqa: E402

PORT = 18085


def measure(port: int, pid: int, payloads: list[bytes]):
    post_all(port, payloads[:20], 1000, 4)  # warm-up
    before = cpu_seconds(pid)
    load = post_all(port, payloads, 1000, 4)
    return load, (cpu_seconds(pid) - before) / len(payloads) * 1000  # CPU ms per 1,000-record batch


def run_api(source: str, extra_env: dict, env: dict, payloads: list[bytes]):
    source = str(Path(source).resolve())
    # `python -m` puts the working directory first on sys.path: run from the source tree itself.
    logfile = open(ROOT / "bench" / "results" / "ab-api.log", "ab")
    proc = Proc("ab-api", subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(PORT)], cwd=source,
        env={**os.environ, **env, **extra_env, "PYTHONPATH": ":".join(filter(None, [source, extra_env.get("PYTHONPATH")]))},
        stdout=logfile, stderr=logfile))
    try:
        wait_http(PORT, "/metrics")
        return measure(PORT, proc.popen.pid, payloads)
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME=DIR[:ENV=VALUE,...]: an API started from DIR's code with extra env")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    variants = parse_variants(args.variant)
    settings = Settings(queue_name=f"ab-{uuid.uuid4().hex[:8]}", queue_high_water_mark=10**6)
    env = {"QUEUE_NAME": settings.queue_name, "QUEUE_HIGH_WATER_MARK": str(10**6), "LOG_LEVEL": "WARNING",
           "MAX_BODY_BYTES": str(64 * 2**20)}
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    payloads = bodies("ab", args.batches)
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in variants}
    ceiling = start("ab-ceiling", [sys.executable, str(ROOT / "bench" / "ceiling_app.py"), str(CEILING_PORT), "8"], {})
    try:
        wait_http(CEILING_PORT, "/")
        for round_number in range(args.rounds):
            top_load, top_cpu = measure(CEILING_PORT, ceiling.popen.pid, payloads)
            top = top_load.records_per_s
            line = [f"round {round_number + 1}: ceiling {top:,.0f} ({top_cpu:.2f} CPU ms/batch)"]
            for name, (source, extra) in variants.items():
                load, cpu = run_api(source, extra, env, payloads)
                queue.rq_queue.empty()
                for key in redis.scan_iter(match=payload_key_prefix(settings.queue_name).encode() + b"*", count=1000):
                    redis.delete(key)
                results[name].append((load.records_per_s, load.percentile(0.99), load.records_per_s / top, cpu))
                line.append(f"{name} {load.records_per_s:,.0f} (p99 {load.percentile(0.99):.0f} ms, {cpu:.2f} CPU ms/batch, "
                            f"errors {load.errors})")
            print("; ".join(line), flush=True)
    finally:
        ceiling.stop()
    print()
    for name, runs in results.items():
        rates, p99s, ratios, cpus = zip(*runs)
        print(f"{name:>12}: median {statistics.median(rates):,.0f} rec/s, p99 {statistics.median(p99s):.1f} ms, "
              f"{statistics.median(ratios):.2f}x ceiling, {statistics.median(cpus):.2f} CPU ms/batch "
              f"(rates {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
