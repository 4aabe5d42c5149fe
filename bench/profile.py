"""Where the time goes: py-spy samples of the API under front-end load and of a worker draining a queue.

    .venv/bin/python bench/profile.py [--seconds 20] [--part api|worker|both] [--gil]

PROFILE_BATCHES=N queues N batches for the worker (default 400, drained in ~3 s: more keeps it busy
through a longer sample); PROFILE_NATIVE=1 samples native frames too (zstd, the driver's Cython,
the collector), idle waits included: leave out stacks ending in futex/poll/select when reading.
Needs Redis and Cassandra from `make up` and py-spy (`.venv/bin/pip install py-spy`). Starts its own
API / worker on spare ports with a queue and keyspace of its own (dropped afterwards), records raw
(collapsed) stacks to bench/results/profile-*.txt and prints the top frames, inclusive and self.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import CLI, ROOT, post_all, start, wait_http  # noqa: E402
from bench.workload import bodies  # noqa: E402
from common.queue import BatchQueue, connect_redis  # noqa: E402
from common.redis_keys import payload_key_prefix  # noqa: E402
from common.records import BatchDecoder  # noqa: E402
from common.settings import Settings  # noqa: E402
from common.store import CassandraStore  # noqa: E402

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
PORT = 18090


def record(pid: int, seconds: float, output: Path, gil: bool) -> subprocess.Popen:
    args = [PY_SPY, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250", "-f", "raw", *([] if os.environ.get("PROFILE_LINES") else ["--nolineno"]),
            "-o", str(output)]
    if gil:
        args.append("--gil")
    if os.environ.get("PROFILE_NATIVE"):
        args.append("--native")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(path: Path, top: int = 25) -> str:
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples ({path.name})", "", "inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    out += ["", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(out)


def profile_api(env: dict, seconds: float, gil: bool) -> Path:
    front = bodies("profile-front", 60)
    api = start("profile-api", [*CLI, "api", "--port", str(PORT)], env)
    try:
        wait_http(PORT, "/metrics")
        post_all(PORT, front[:20], 1000, 4)  # warm-up
        output = ROOT / "bench" / "results" / "profile-api.txt"
        spy = record(api.popen.pid, seconds, output, gil)
        deadline, posted = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            load = post_all(PORT, front, 1000, 4)
            posted += load.records
        spy.wait()
        print(f"api: {posted:,} records posted in {seconds:.0f} s while sampled", flush=True)
        return output
    finally:
        api.stop()


def profile_worker(settings: Settings, env: dict, seconds: float, gil: bool) -> Path:
    queue = BatchQueue(connect_redis(settings), settings)
    decoder = BatchDecoder(settings.max_line_bytes)
    batches = 0
    for body in bodies("profile-e2e", int(os.environ.get("PROFILE_BATCHES", "400")), start_ns=1_773_700_000 * 10**9):
        queue.enqueue(decoder.decode(body, "application/json").rows)
        batches += 1
    worker = start("profile-worker", [*CLI, "worker"], env)
    try:
        output = ROOT / "bench" / "results" / "profile-worker.txt"
        time.sleep(1.0)  # connected and writing
        spy = record(worker.popen.pid, seconds, output, gil)
        spy.wait()
        print(f"worker: {batches - queue.unwritten_batches()} of {batches} batches written", flush=True)
        return output
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--part", choices=("api", "worker", "both"), default="both")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"profile-{run}", cassandra_keyspace=f"profile_{run}",
                        cassandra_consistency="ONE", queue_high_water_mark=10**6)
    env = {"QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "QUEUE_HIGH_WATER_MARK": str(10**6), "LOG_LEVEL": "WARNING",
           "WORKER_METRICS_PORT": "0", "MAX_BODY_BYTES": str(64 * 2**20)}
    store = CassandraStore(settings)
    store.connect()
    redis = connect_redis(settings)
    outputs = []
    try:
        if args.part in ("api", "both"):
            outputs.append(profile_api(env, args.seconds, args.gil))
        if args.part in ("worker", "both"):
            outputs.append(profile_worker(settings, env, args.seconds, args.gil))
    finally:
        with contextlib.suppress(Exception):
            store.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
        store.close()
        BatchQueue(redis, settings).rq_queue.empty()
        for key in redis.scan_iter(match=payload_key_prefix(settings.queue_name).encode() + b"*", count=1000):
            redis.delete(key)
    for output in outputs:
        print()
        print(summarize(output))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
