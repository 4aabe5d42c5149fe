"""Soak: steady ingest plus concurrent queries for a bounded time, watching API and worker memory.

    make soak             # or: .venv/bin/python bench/soak.py [--seconds 180] [--rate 5000]

By default it starts its own API and worker (127.0.0.1, spare ports) on the Redis and Cassandra of
`make up`, with a queue and keyspace of its own that it drops afterwards. With --stack it drives the
running stack instead (http://127.0.0.1:$PORT, pids from .run/api.pid and .run/worker.pid, the
default queue and keyspace). Every few seconds it samples VmRSS of both processes and prints a row;
at the end it checks that

- memory stayed flat: after the warm-up, the median RSS of the last third of the samples is within
  15 % or 20 MB of the median of the first third, for each process;
- every acknowledged record was stored, once (read back through the store's query path);
- every query answered 200;

writes bench/results/soak-<timestamp>.json, and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import lines, post_write  # noqa: E402
from common.queue import BatchQueue, connect_redis  # noqa: E402
from common.settings import Settings  # noqa: E402
from tests.store_reads import stored_lines  # noqa: E402
from common.store import CassandraStore  # noqa: E402
from common.timestamps import format_rfc3339_ns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("kube-insight-logserver"))
START_NS = 1_773_489_600 * 10**9
PODS = 8
GROWTH_FRACTION, GROWTH_MB = 0.15, 20.0


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the records: batch n is always the same records, so the ledger only keeps batch numbers ---


def batch_rows(n: int, size: int) -> list[tuple[str, int, str, str]]:
    """(pod, ts_ns, log, stream) of batch n; timestamps never repeat across batches."""
    source = lines(random.Random(n))
    rows = []
    for i in range(size):
        text, stream = next(source)
        rows.append((f"soak-{i % PODS}", START_NS + (n * size + i) * 1000, text, stream))
    return rows


def batch_body(namespace: str, n: int, size: int) -> bytes:
    return json.dumps([
        {"time": format_rfc3339_ns(ts), "log": text, "stream": stream,
         "kubernetes": {"namespace_name": namespace, "pod_name": pod, "container_name": "app", "host": "node-1"}}
        for pod, ts, text, stream in batch_rows(n, size)
    ]).encode()


# --- the system under test ---


@dataclasses.dataclass
class Target:
    port: int
    api_pid: int
    worker_pid: int
    settings: Settings
    own_processes: list[subprocess.Popen] = dataclasses.field(default_factory=list)

    def stop(self) -> None:
        for process in self.own_processes:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, process: subprocess.Popen | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the API exited with status {process.returncode}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ready")
            connection.getresponse().read()
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answering on port {port}")


def start_own(results_dir: Path) -> Target:
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"soak-{run}", cassandra_keyspace=f"soak_{run}", cassandra_consistency="ONE")
    env = {**os.environ, "QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "LOG_LEVEL": "WARNING", "WORKER_METRICS_PORT": "0", "IP": "127.0.0.1"}
    store = CassandraStore(settings)
    store.connect()  # the schema exists before the processes start
    store.close()
    port = free_port()
    logfile = open(results_dir / "soak-processes.log", "ab")
    worker = subprocess.Popen([CLI, "worker"], env=env, stdout=logfile, stderr=logfile)
    api = subprocess.Popen([CLI, "api"], env={**env, "PORT": str(port)}, stdout=logfile, stderr=logfile)
    target = Target(port, api.pid, worker.pid, settings, [api, worker])
    try:
        wait_http(port, api)
    except Exception:
        target.stop()
        raise
    return target


def running_stack() -> Target:
    run_dir = ROOT / ".run"
    pids = {name: int((run_dir / f"{name}.pid").read_text()) for name in ("api", "worker")}
    port = int(os.environ.get("PORT", "8080"))
    wait_http(port, None, timeout=5)
    return Target(port, pids["api"], pids["worker"], Settings(cassandra_consistency="ONE"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- load ---


class Ingest:
    """Senders posting batch after batch at `rate` records/s in total; a batch is retried until 2xx."""

    def __init__(self, port: int, namespace: str, rate: int, batch_size: int, senders: int):
        self._port, self._namespace, self._size = port, namespace, batch_size
        self._interval = batch_size * senders / rate  # seconds between one sender's batches
        self._senders = senders
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._next_batch = 0
        self.acknowledged: list[int] = []
        self.statuses: collections.Counter = collections.Counter()
        self.abandoned = 0
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(senders)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=180)

    @property
    def acknowledged_records(self) -> int:
        return len(self.acknowledged) * self._size

    @property
    def sent_records(self) -> int:
        return self._next_batch * self._size

    def _take(self) -> int:
        with self._lock:
            n, self._next_batch = self._next_batch, self._next_batch + 1
            return n

    def _run(self, sender: int) -> None:
        connection = None
        next_at = time.monotonic() + sender * self._interval / self._senders  # senders spread out
        while not self._stopping.is_set():
            if self._stopping.wait(max(0.0, next_at - time.monotonic())):
                break
            next_at = max(next_at + self._interval, time.monotonic())
            n = self._take()
            connection = self._deliver(connection, n, batch_body(self._namespace, n, self._size))

    def _deliver(self, connection, n: int, body: bytes):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            connection, response = post_write(connection, self._port, body)
            if response is None:
                with self._lock:
                    self.statuses[0] += 1
                time.sleep(0.2)
                continue
            with self._lock:
                self.statuses[response.status] += 1
                if 200 <= response.status < 300:
                    self.acknowledged.append(n)
                    return connection
            time.sleep(float(response.getheader("Retry-After") or 0.2))
        with self._lock:
            self.abandoned += 1
        return connection


class Queries:
    """GET /query in a loop: one pod over the span of a recently acknowledged batch or ten."""

    def __init__(self, port: int, namespace: str, ingest: Ingest, batch_size: int, every: float):
        self._port, self._namespace, self._ingest, self._size, self._every = port, namespace, ingest, batch_size, every
        self._stopping = threading.Event()
        self.latencies: list[float] = []
        self.rows = 0
        self.statuses: collections.Counter = collections.Counter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        rng = random.Random(7)
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
        while not self._stopping.wait(self._every):
            acknowledged = self._ingest.acknowledged[-10:]
            if not acknowledged:
                continue
            first, last = min(acknowledged), max(acknowledged)
            params = urllib.parse.urlencode({
                "namespace": self._namespace, "pod_name": f"soak-{rng.randrange(PODS)}", "container_name": "app",
                "start_time": format_rfc3339_ns(START_NS + first * self._size * 1000),
                "end_time": format_rfc3339_ns(START_NS + ((last + 1) * self._size - 1) * 1000),
            })
            started = time.perf_counter()
            try:
                connection.request("GET", f"/query?{params}")
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
                self.statuses[0] += 1
                continue
            self.latencies.append(time.perf_counter() - started)
            self.statuses[response.status] += 1
            if response.status == 200:
                self.rows += len(json.loads(body)["log_rows"])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


# --- checks ---


def memory_verdict(samples: list[dict], warmup: float, key: str) -> dict:
    steady = [s[key] for s in samples if s["t"] >= warmup]
    if len(steady) < 3:
        return {"ok": False, "reason": f"only {len(steady)} samples after the warm-up"}
    third = len(steady) // 3
    first, last = statistics.median(steady[:third]), statistics.median(steady[-third:])
    growth = last - first
    ok = growth <= GROWTH_MB or growth <= GROWTH_FRACTION * first
    return {"ok": ok, "first_third_median_mb": round(first, 1), "last_third_median_mb": round(last, 1),
            "growth_mb": round(growth, 1), "max_mb": round(max(steady), 1)}


def reconcile(store: CassandraStore, namespace: str, acknowledged: list[int], size: int) -> dict:
    """Every acknowledged record read back through the store's query path: missing, twice, unexpected."""
    expected: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for n in acknowledged:
        for pod, ts, text, _ in batch_rows(n, size):
            expected[pod][(ts, text)] += 1
    missing = duplicates = unexpected = stored = 0
    for pod, want in expected.items():
        first, last = min(ts for ts, _ in want), max(ts for ts, _ in want)
        got = collections.Counter(stored_lines(store, namespace, pod, "app", first, last,
                                               bucket_seconds=store.bucket_seconds))
        stored += sum(got.values())
        missing += sum((want - got).values())
        unexpected += sum((got - want).values())
        duplicates += sum(count - 1 for count in got.values() if count > 1)
    return {"acknowledged": len(acknowledged) * size, "stored": stored, "missing": missing,
            "duplicates": duplicates, "unexpected": unexpected}


# --- the run ---


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180, help="length of the steady load (default 180)")
    parser.add_argument("--rate", type=int, default=5000, help="records per second (default 5000)")
    parser.add_argument("--batch", type=int, default=1000, help="records per POST (default 1000)")
    parser.add_argument("--senders", type=int, default=2, help="concurrent senders (default 2)")
    parser.add_argument("--query-every", type=float, default=0.5, help="seconds between queries (default 0.5)")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between RSS samples (default 5)")
    parser.add_argument("--warmup", type=float, default=30, help="seconds ignored by the memory check (default 30)")
    parser.add_argument("--stack", action="store_true", help="drive the running stack instead of own processes")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)

    target = running_stack() if args.stack else start_own(args.results_dir)
    namespace = f"soak-{uuid.uuid4().hex[:8]}"
    queue = BatchQueue(connect_redis(target.settings), target.settings)
    store = CassandraStore(target.settings)
    log(f"{'running stack' if args.stack else 'own API and worker'} on port {target.port} (api pid "
        f"{target.api_pid}, worker pid {target.worker_pid}); {args.rate} records/s in {args.batch}-record "
        f"batches for {args.seconds:.0f}s, a query every {args.query_every}s; namespace {namespace}")
    ingest = Ingest(target.port, namespace, args.rate, args.batch, args.senders)
    queries = Queries(target.port, namespace, ingest, args.batch, args.query_every)
    samples: list[dict] = []
    try:
        started = time.monotonic()
        ingest.start()
        queries.start()
        print(f"{'t s':>6} {'acked':>9} {'rec/s':>7} {'queued':>6} {'api MB':>7} {'worker MB':>9} "
              f"{'queries':>7} {'q p50 ms':>8}", flush=True)
        last_t, last_acked = 0.0, 0
        while (t := time.monotonic() - started) < args.seconds:
            time.sleep(min(args.sample_every, max(args.seconds - t, 0.01)))
            t = time.monotonic() - started
            acked = ingest.acknowledged_records
            sample = {"t": round(t, 1), "acknowledged": acked,
                      "records_per_s": round((acked - last_acked) / (t - last_t)),
                      "queued_batches": queue.status().queued,
                      "api_rss_mb": round(rss_mb(target.api_pid), 1),
                      "worker_rss_mb": round(rss_mb(target.worker_pid), 1),
                      "queries": len(queries.latencies), "query_p50_ms": round(percentile(queries.latencies[-50:], 0.5), 1)}
            samples.append(sample)
            last_t, last_acked = t, acked
            print(f"{sample['t']:>6.0f} {acked:>9} {sample['records_per_s']:>7} {sample['queued_batches']:>6} "
                  f"{sample['api_rss_mb']:>7.1f} {sample['worker_rss_mb']:>9.1f} {sample['queries']:>7} "
                  f"{sample['query_p50_ms']:>8.1f}", flush=True)
        load_seconds = time.monotonic() - started
        queries.stop()
        ingest.stop()
        drain_started = time.monotonic()
        while queue.unwritten_batches() and time.monotonic() - drain_started < 120:
            time.sleep(0.2)
        drain_seconds = time.monotonic() - drain_started
        stored = reconcile(store, namespace, ingest.acknowledged, args.batch)
    finally:
        queries.stop()
        ingest.stop()
        target.stop()
        if not args.stack:
            with contextlib.suppress(Exception):
                store.connect().execute(f"DROP KEYSPACE IF EXISTS {target.settings.cassandra_keyspace}", timeout=60)
        store.close()

    memory = {name: memory_verdict(samples, args.warmup, f"{name}_rss_mb") for name in ("api", "worker")}
    query_errors = sum(count for status, count in queries.statuses.items() if status != 200)
    checks = {
        "memory_flat": all(v["ok"] for v in memory.values()),
        "every_acknowledged_record_stored_once": (stored["missing"], stored["duplicates"], stored["unexpected"]) == (0, 0, 0)
        and ingest.abandoned == 0,
        "queries_answered": query_errors == 0 and len(queries.latencies) > 0,
    }
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "target": "stack" if args.stack else "own processes",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load": {"seconds": round(load_seconds, 1), "acknowledged_records": ingest.acknowledged_records,
                 "records_per_s": round(ingest.acknowledged_records / load_seconds),
                 "post_statuses": {str(k): v for k, v in ingest.statuses.items()}, "abandoned_batches": ingest.abandoned,
                 "drain_seconds": round(drain_seconds, 1)},
        "queries": {"count": len(queries.latencies), "rows": queries.rows,
                    "statuses": {str(k): v for k, v in queries.statuses.items()},
                    "p50_ms": round(percentile(queries.latencies, 0.5), 1),
                    "p99_ms": round(percentile(queries.latencies, 0.99), 1)},
        "memory": memory, "stored": stored, "checks": checks, "ok": all(checks.values()), "samples": samples,
    }
    path = args.results_dir / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    for name, verdict in memory.items():
        if "reason" in verdict:
            log(f"{name} memory: {verdict['reason']}")
        else:
            log(f"{name} RSS median {verdict['first_third_median_mb']} MB (first third after warm-up) -> "
                f"{verdict['last_third_median_mb']} MB (last third), max {verdict['max_mb']} MB: "
                f"{'flat' if verdict['ok'] else 'GROWING'}")
    log(f"ingest {result['load']['records_per_s']} records/s for {load_seconds:.0f}s, POST statuses "
        f"{result['load']['post_statuses']}; queries {result['queries']['count']} p50 {result['queries']['p50_ms']} ms "
        f"p99 {result['queries']['p99_ms']} ms, statuses {result['queries']['statuses']}; drained in {drain_seconds:.1f}s")
    print(f"[soak] seconds={load_seconds:.0f} rate={result['load']['records_per_s']} sent={ingest.sent_records} "
          f"acknowledged={stored['acknowledged']} stored={stored['stored']} missing={stored['missing']} "
          f"duplicates={stored['duplicates']} unexpected={stored['unexpected']} "
          f"api_rss_mb={memory['api'].get('first_third_median_mb')}->{memory['api'].get('last_third_median_mb')} "
          f"worker_rss_mb={memory['worker'].get('first_third_median_mb')}->{memory['worker'].get('last_third_median_mb')} "
          f"{'OK' if result['ok'] else 'FAILED: ' + ', '.join(k for k, v in checks.items() if not v)}", flush=True)
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
