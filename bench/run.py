"""The benchmark: every comparison in one run against the local stack (loopback only, bounded).

    make bench            # or: .venv/bin/python bench/run.py [--quick]
    .venv/bin/python bench/run.py --layouts    # only the rows/blocks layouts comparison (bench/layouts.py)
    make bench-cluster    # or: .venv/bin/python bench/run.py --cluster (after make cluster-up)

Needs Redis and Cassandra from `make up`; starts its own API, workers and ceiling app on spare
ports with a queue and keyspace of its own, and drops them afterwards. Prints a table and writes
bench/results/latest.json. With --cluster the store is the three-node cluster of `make cluster-up`
(replication factor 3, writes and reads at LOCAL_QUORUM) and the results go to cluster.json; the
Loki push and fsync comparisons, which do not depend on the store, are left out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.layouts import Node, layouts_comparison  # noqa: E402
from bench.loki_compare import loki_figures  # noqa: E402
from bench.small_blocks import small_blocks  # noqa: E402
from bench.workload import batches, bodies, decoded_rows, loki_json_body, loki_protobuf_body  # noqa: E402
from common.queue import BatchQueue, connect_redis  # noqa: E402
from common.redis_keys import payload_key_prefix  # noqa: E402
from common.records import LogRow  # noqa: E402
from common.settings import Settings, build_settings  # noqa: E402
from tests.store_reads import stored_lines  # noqa: E402
from common.store import CassandraStore  # noqa: E402
from common.timestamps import format_rfc3339_ns, parse_rfc3339_ns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The service's command line, run from this tree's code (not the installed package's), so that a copy
# of the repository benchmarks its own code: `python -m cli.main` puts the working directory first.
CLI = [sys.executable, "-m", "cli.main"]
API_PORT, CEILING_PORT = 18080, 18081  # the defaults of --api-port and --ceiling-port
LOKI_PUSH = "/loki/api/v1/push"
JSON_HEADERS = {"Content-Type": "application/json"}
PROTOBUF_HEADERS = {"Content-Type": "application/x-protobuf"}
# The store, as the settings' environment: the single node of `make up` at consistency ONE, or the
# cluster of `make cluster-up` (scripts/cassandra-cluster.sh) at replication factor 3 and LOCAL_QUORUM.
SINGLE_NODE = {"CASSANDRA_CONSISTENCY": "ONE"}
CLUSTER = {"CASSANDRA_HOSTS": "127.0.0.1,127.0.0.2,127.0.0.3", "CASSANDRA_PORT": "9142",
           "CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
           "CASSANDRA_REPLICATION_FACTORS": '{"datacenter1": 3}',
           "CASSANDRA_CONSISTENCY": "LOCAL_QUORUM", "CASSANDRA_LOCAL_DC": "datacenter1"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes and their memory ---


@dataclasses.dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    peak_rss_mb: float = 0.0

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()


class MemorySampler:
    def __init__(self, procs: list[Proc]):
        self._procs, self._stop = procs, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for proc in self._procs:
                proc.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def start(name: str, args: list[str], env: dict[str, str]) -> Proc:
    logfile = open(ROOT / "bench" / "results" / f"{name}.log", "ab")
    return Proc(name, subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                        stdout=logfile, stderr=logfile))


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: robust to other load, unlike a rate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def store_cpu_seconds(cluster: bool) -> float:
    """CPU time of the Cassandra JVMs this tree started (all replicas; 0 for a node started elsewhere)."""
    run = ROOT / ".run"
    pid_files = [run / "cluster" / f"node{n}" / "cassandra.pid" for n in (1, 2, 3)] if cluster else [run / "cassandra.pid"]
    total = 0.0
    for pid_file in pid_files:
        with contextlib.suppress(OSError, ValueError):
            total += cpu_seconds(int(pid_file.read_text()))
    return total


def require_free_port(port: int) -> None:
    """Fail before starting a server on a port something else holds: wait_http would measure that."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(f"port {port} is in use ({error}): pass --api-port/--ceiling-port") from None


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answering on port {port}")


# --- load ---


@dataclasses.dataclass
class Load:
    records: int
    megabytes: float
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def post_all(port: int, payloads: list[bytes], records_per_body: int, concurrency: int, path: str = "/write",
             headers: dict[str, str] = JSON_HEADERS, ok: int = 200) -> Load:
    """POST every payload once to `path`, from `concurrency` keep-alive connections; an answer
    other than `ok` is an error."""
    latencies, errors, lock, next_index = [], [0], threading.Lock(), [0]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(payloads):
                return
            started = time.perf_counter()
            connection.request("POST", path, body=payloads[index], headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != ok:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Load(len(payloads) * records_per_body, sum(map(len, payloads)) / 1e6, seconds, latencies, errors[0])


def loki_lines(document: dict) -> int:
    return sum(len(stream["values"]) for stream in document["data"]["result"])


def get_latencies(port: int, path: str, repeat: int, count=lambda document: len(document["log_rows"])
                  ) -> tuple[list[float], int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        latencies.append(time.perf_counter() - started)
        rows = count(json.loads(body))
    return latencies, rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


# --- the run ---


def clean_up(settings: Settings, store, queue, redis) -> None:
    """Drop a bench run's keyspace, queue and queued payloads."""
    with contextlib.suppress(Exception):
        store.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
    store.close()
    queue.rq_queue.empty()
    for key in redis.scan_iter(match=payload_key_prefix(settings.queue_name).encode() + b"*", count=1000):
        redis.delete(key)


def parse_variants(specs: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """NAME=DIR[:ENV=VALUE,...] -> {name: (source dir, extra env)} (bench/ab.py, bench/drain.py)."""
    variants = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        source, _, extra = rest.partition(":")
        variants[name] = (source, dict(item.split("=", 1) for item in extra.split(",") if item))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller volumes, for a smoke run")
    parser.add_argument("--front-only", action="store_true",
                        help="only the ceiling and the front end (quick comparisons while tuning)")
    parser.add_argument("--api-port", type=int, default=API_PORT, help="the bench's own API (default %(default)s)")
    parser.add_argument("--ceiling-port", type=int, default=CEILING_PORT,
                        help="the ceiling app (default %(default)s)")
    parser.add_argument("--layouts", action="store_true",
                        help="only the storage layouts (CASSANDRA_LAYOUT=rows|blocks) against each other")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the layouts comparison (default %(default)s)")
    parser.add_argument("--cassandra-lib", type=Path, default=ROOT / ".cassandra" / "lib",
                        help="the node's jars, for nodetool (scripts/cassandra.sh's; default %(default)s)")
    parser.add_argument("--cassandra-data", type=Path, default=ROOT / ".run" / "cassandra" / "data",
                        help="the node's data directory, for bytes on disk (default %(default)s)")
    parser.add_argument("--loki-url", default=os.environ.get("LOKI_URL") or None,
                        help="a running Loki (e.g. http://127.0.0.1:3100) to measure on the same corpus with the "
                        "layouts (bench/loki_compare.py); default $LOKI_URL (make bench LOKI_URL=... LOKI_DATA=...)")
    parser.add_argument("--loki-data", type=Path, default=os.environ.get("LOKI_DATA") or None,
                        help="that Loki's data directory, for bytes on disk; default $LOKI_DATA")
    parser.add_argument("--api-processes", type=int, default=2,
                        help="with --layouts: API_PROCESSES of each layout's API (default %(default)s, as the "
                        "shipped deploy/kubernetes/api.yaml runs it; Loki's single binary uses every core too)")
    parser.add_argument("--appendfsync", choices=("always", "everysec"),
                        help="with --layouts: the stack's Redis at this policy for the run (CONFIG SET, put back "
                        "after). Loki acknowledges a push once its WAL is written, not fsynced: everysec is that class")
    parser.add_argument("--cluster", action="store_true",
                        help="store into the 3-node cluster of `make cluster-up` (RF 3, LOCAL_QUORUM)")
    args = parser.parse_args()
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    if args.layouts:
        stack_redis = connect_redis(build_settings({}, {}))
        with redis_appendfsync(stack_redis, args.appendfsync):
            results = {"machine": machine(), "redis_appendfsync": args.appendfsync or "the stack's",
                       "layouts": compare_layouts(args)}
        stack_redis.close()
        results["api_processes"] = args.api_processes
        parts = [part for part in (args.appendfsync, f"api{args.api_processes}" if args.api_processes > 1 else None)
                 if part]
        name = "-".join(["layouts", *parts]) + ".json"
        (ROOT / "bench" / "results" / name).write_text(json.dumps(results, indent=2))
        print_table(results)
        return
    api_port, ceiling_port = args.api_port, args.ceiling_port
    for port in (api_port, ceiling_port, api_port + 2):  # api_port + 2: the API of step 1c
        require_free_port(port)
    front_batches, e2e_batches = (60, 20) if args.quick else (300, 100)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)

    run = uuid.uuid4().hex[:8]
    env = {"QUEUE_NAME": f"bench-{run}", "CASSANDRA_KEYSPACE": f"bench_{run}", "QUEUE_HIGH_WATER_MARK": str(10**6),
           "LOG_LEVEL": "WARNING", "WORKER_METRICS_PORT": "0", "MAX_BODY_BYTES": str(64 * 2**20),
           **(CLUSTER if args.cluster else SINGLE_NODE)}
    settings = build_settings({}, env)
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    store = CassandraStore(settings)
    store.connect()  # creates the keyspace before any process races to
    results: dict = {"machine": machine(),
                     "store": "3-node cluster, RF 3, LOCAL_QUORUM" if args.cluster else "single node, ONE"}
    procs: list[Proc] = []
    try:
        log(f"generating {front_batches} + 2x{e2e_batches} batches of 1,000 records")
        front_records = batches("bench-front", front_batches)
        front = [json.dumps(records).encode() for records in front_records]
        log(f"mean record size {sum(map(len, front)) / front_batches / 1000:.0f} bytes as JSON")

        # 6. the ceiling: decode only
        ceiling = start("ceiling", [sys.executable, str(ROOT / "bench" / "ceiling_app.py"), str(ceiling_port), "8"], {})
        procs.append(ceiling)
        wait_http(ceiling_port, "/")
        with MemorySampler([ceiling]):
            post_all(ceiling_port, front[:20], 1000, 4)  # warm-up
            ceiling_load = post_all(ceiling_port, front, 1000, 4)
        ceiling.stop()
        log(f"ceiling: {ceiling_load.records_per_s:,.0f} records/s")

        # 1. the front end, workers stopped: with 2 API processes (API_PROCESSES) and with 1,
        # alternated; the last API (1 process) stays for the later steps
        runs: dict[int, list[dict]] = {2: [], 1: []}
        rounds = 1 if args.quick else 3
        for round_ in range(rounds):
            for count in runs:
                api = start(f"api{count}", [*CLI, "api", "--port", str(api_port), "--processes", str(count)], env)
                procs.append(api)
                wait_http(api_port, "/metrics")
                runs[count].append(front_end(api, api_port, front, redis))
                if count > 1 or round_ < rounds - 1:
                    api.stop()
        results["front_end_2_processes"], results["front_end"] = median_run(runs[2]), median_run(runs[1])
        results["front_end"]["ratio_2_processes_to_1"] = round(
            results["front_end_2_processes"]["records_per_s"] / results["front_end"]["records_per_s"], 2)
        results["ceiling"] = {"records_per_s": round(ceiling_load.records_per_s),
                              "p99_ms": round(ceiling_load.percentile(0.99), 1),
                              "ratio_front_end_to_ceiling": round(results["front_end"]["records_per_s"]
                                                                  / ceiling_load.records_per_s, 2)}

        # 1a. the Loki push (JSON and protobuf) of the same records, alternated with POST /write
        # 1b. what "acknowledged" costs: Redis fsyncing its AOF before each reply, or once a second
        # 1c. what waiting for a replica costs (REDIS_WAIT_REPLICAS), on a Redis of the bench's own
        # None depends on the store, and on the cluster their batches would take minutes to drain.
        if not args.cluster:
            with MemorySampler([api]):
                results["loki_push"] = loki_push_rates(api_port, api.popen.pid, front_records[:front_batches // 3], rounds=3)
            results["durability"] = fsync_policies(api_port, redis, front[:front_batches // 2], rounds=3)
            results["replica_wait"] = replica_waits(api_port + 2, env, front[:front_batches // 2], rounds=3)

        if not args.front_only:
            # drain the front-end backlog with two workers (it also warms Cassandra up)
            log("draining the front-end backlog")
            workers = [start(f"worker{i}", [*CLI, "worker"], env) for i in range(2)]
            procs += workers
            with MemorySampler(workers):
                wait_until(lambda: queue.unwritten_batches() == 0, 600)
            for w in workers:
                w.stop()

            # 2. end to end with one and with two workers
            results["end_to_end"] = {}
            for count in (1, 2):
                namespace = f"e2e-{count}"
                payloads = bodies(namespace, e2e_batches, start_ns=1_773_500_000 * 10**9 + count * 10**13)
                workers = [start(f"worker{count}{i}", [*CLI, "worker"], env) for i in range(count)]
                procs += workers
                time.sleep(2)  # let them connect before the clock starts
                with MemorySampler([api, *workers]):
                    worker_cpu = -sum(cpu_seconds(w.popen.pid) for w in workers)
                    store_cpu = -store_cpu_seconds(args.cluster)
                    started = time.perf_counter()
                    post_all(api_port, payloads, 1000, 2)
                    wait_until(lambda: queue.unwritten_batches() == 0, 900)
                    elapsed = time.perf_counter() - started
                    worker_cpu += sum(cpu_seconds(w.popen.pid) for w in workers)
                    store_cpu += store_cpu_seconds(args.cluster)
                for w in workers:
                    w.stop()
                stored = count_rows(store, namespace, payloads)
                rate = e2e_batches * 1000 / elapsed
                log(f"end to end, {count} worker(s): {rate:,.0f} records/s ({stored:,} rows counted), CPU per batch: "
                    f"workers {worker_cpu / e2e_batches * 1000:.1f} ms, Cassandra {store_cpu / e2e_batches * 1000:.1f} ms")
                results["end_to_end"][f"{count}_workers"] = {
                    "records_per_s": round(rate), "rows_counted": stored,
                    "worker_peak_rss_mb": round(max(w.peak_rss_mb for w in workers)),
                    "worker_cpu_ms_per_batch": round(worker_cpu / e2e_batches * 1000, 1),
                    "cassandra_cpu_ms_per_batch": round(store_cpu / e2e_batches * 1000, 1)}

            # 3. the store's limit: the same rows straight into Cassandra
            payloads = bodies("bare", e2e_batches, start_ns=1_773_600_000 * 10**9)
            rows = decoded_rows(payloads, settings.max_line_bytes)
            started, store_cpu = time.perf_counter(), store_cpu_seconds(args.cluster)
            for first in range(0, len(rows), 10_000):
                store.write(rows[first:first + 10_000])
            bare_rate = len(rows) / (time.perf_counter() - started)
            store_cpu = store_cpu_seconds(args.cluster) - store_cpu
            best_e2e = max(v["records_per_s"] for v in results["end_to_end"].values())
            results["bare_writer"] = {"records_per_s": round(bare_rate),
                                      "ratio_end_to_end_to_bare": round(best_e2e / bare_rate, 2),
                                      "cassandra_cpu_ms_per_1000_rows": round(store_cpu / len(rows) * 10**6, 1)}
            log(f"bare writer: {bare_rate:,.0f} rows/s, Cassandra CPU {store_cpu / len(rows) * 10**6:.1f} ms per 1,000 rows")

            # 4. query latency: 10,000 rows of one container, inside a bucket and across a border
            results["query"] = query_latencies(api_port, store, settings)
            # 4b. a 100,000-row answer, streamed as NDJSON and as one JSON document, with API memory
            results["big_query"] = big_query(api_port, store, settings, api)
            results["memory"] = {"api_peak_rss_mb": round(api.peak_rss_mb),
                                 "worker_peak_rss_mb": round(max(p.peak_rss_mb for p in procs if p.name.startswith("worker")))}
    finally:
        for proc in procs:
            if proc.popen.poll() is None:
                proc.stop()
        clean_up(settings, store, queue, redis)
    if not args.front_only and not args.cluster:
        results["layouts"] = compare_layouts(args)
    name = "front-only.json" if args.front_only else "cluster.json" if args.cluster else "latest.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(results, indent=2))
    print_table(results)


def api_pids(api: Proc) -> list[int]:
    """The API's processes: the one, or the supervisor's forked children (API_PROCESSES > 1)."""
    pid = api.popen.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children] or [pid]


def api_cpu_seconds(api: Proc) -> float:
    """CPU time of the API: its process, and its forked children under the supervisor (API_PROCESSES > 1)."""
    pids = {api.popen.pid, *api_pids(api)}
    return sum(cpu_seconds(pid) for pid in pids)


def redis_cpu_seconds(redis) -> float:
    cpu = redis.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def front_end(api: Proc, port: int, payloads: list[bytes], redis) -> dict:
    """POST every payload once to the API (4 clients, workers stopped): the rate, the latency,
    and the CPU spent per 1,000 records by the API's processes (in all and each), by Redis, and by
    this load generator (the 2 cores' whole budget: what is left for a second API process)."""
    with MemorySampler([api]):
        post_all(port, payloads[:20], 1000, 4)  # warm-up
        pids = api_pids(api)
        before = {pid: cpu_seconds(pid) for pid in pids}
        redis_before, client_before = redis_cpu_seconds(redis), time.process_time()
        load = post_all(port, payloads, 1000, 4)
        thousands = load.records / 1000
        cpu_ms = [(cpu_seconds(pid) - before[pid]) / thousands * 1000 for pid in pids]
        redis_ms = (redis_cpu_seconds(redis) - redis_before) / thousands * 1000
        client_ms = (time.process_time() - client_before) / thousands * 1000
    log(f"front end, {len(pids)} API process(es): {load.records_per_s:,.0f} records/s, p99 "
        f"{load.percentile(0.99):.1f} ms, API CPU per 1,000 records {sum(cpu_ms):.2f} ms "
        f"({' + '.join(f'{ms:.2f}' for ms in cpu_ms)}), Redis {redis_ms:.2f} ms, load generator {client_ms:.2f} ms")
    return {"processes": len(pids), "records_per_s": round(load.records_per_s),
            "mb_per_s": round(load.megabytes / load.seconds, 1),
            "p50_ms": round(load.percentile(0.5), 1), "p99_ms": round(load.percentile(0.99), 1),
            "errors": load.errors,
            # sampled from the process started: with several, that is the supervisor, not an API process
            "api_peak_rss_mb": round(api.peak_rss_mb) if len(pids) == 1 else None,
            "api_cpu_ms_per_1000_records": round(sum(cpu_ms), 2),
            "api_cpu_ms_per_1000_records_by_process": [round(ms, 2) for ms in cpu_ms],
            "redis_cpu_ms_per_1000_records": round(redis_ms, 2), "load_generator_cpu_ms_per_1000_records": round(client_ms, 2),
            "cores_busy": round((sum(cpu_ms) + redis_ms + client_ms) * thousands / load.seconds / 1000, 2)}


def median_run(runs: list[dict]) -> dict:
    """The run of median rate, with the range of the rates and of the API's CPU per 1,000 records."""
    ordered = sorted(runs, key=lambda run: run["records_per_s"])
    cpu = sorted(run["api_cpu_ms_per_1000_records"] for run in runs)
    return {**ordered[len(ordered) // 2], "runs": len(runs), "min": ordered[0]["records_per_s"],
            "max": ordered[-1]["records_per_s"], "api_cpu_ms_per_1000_records_range": [cpu[0], cpu[-1]]}


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"


def compare_layouts(args) -> dict:
    node = Node(args.cassandra_lib, args.cassandra_data) if args.cassandra_lib.is_dir() else None
    if node is None:
        log(f"no Cassandra jars in {args.cassandra_lib}: bytes on disk not measured")
    # Loki (when running) on the same corpus in every round, after the two layouts
    others = {"loki": functools.partial(loki_figures, sys.modules[__name__], args.loki_url, args.loki_data)
              } if args.loki_url else {}
    out = layouts_comparison(sys.modules[__name__], quick=args.quick, rounds=args.rounds, api_port=args.api_port,
                             node=node, others=others, api_processes=args.api_processes)
    if node is not None:  # what merging small blocks would win (bench/small_blocks.py)
        out["small_blocks"] = small_blocks(sys.modules[__name__], api_port=args.api_port, node=node)
    if loki := out.get("loki"):
        log(f"Loki at {args.loki_url}: end to end {loki['e2e_lines_per_s']:,} lines/s, 10k query p50 "
            f"{loki['query_10k_p50_ms']} ms p99 {loki['query_10k_p99_ms']} ms, disk {loki['disk_bytes_per_line']} B/line")
    return out


def loki_push_rates(port: int, api_pid: int, records: list[list[dict]], rounds: int) -> dict:
    """POST /write and the Loki push of the same records (fluent-bit's `loki` JSON, Promtail's
    snappy protobuf), each body 1,000 records, alternated `rounds` times in rotating order on one
    API with its workers stopped: the median rate of each, the API's CPU per body (robust to the
    machine's other load, unlike a rate), and each Loki path against /write."""
    paths = {
        "write": ("/write", JSON_HEADERS, 200, [json.dumps(batch).encode() for batch in records]),
        "loki_json": (LOKI_PUSH, JSON_HEADERS, 204, [loki_json_body(batch) for batch in records]),
        "loki_protobuf": (LOKI_PUSH, PROTOBUF_HEADERS, 204, [loki_protobuf_body(batch) for batch in records]),
    }
    for path, headers, ok, payloads in paths.values():  # warm-up
        post_all(port, payloads[:10], 1000, 4, path, headers, ok)
    loads: dict[str, list[Load]] = {name: [] for name in paths}
    cpu_ms: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            path, headers, ok, payloads = paths[name]
            before = cpu_seconds(api_pid)
            loads[name].append(post_all(port, payloads, 1000, 4, path, headers, ok))
            cpu_ms[name].append((cpu_seconds(api_pid) - before) / len(payloads) * 1000)
    summary = {}
    for name, runs in loads.items():
        rates = sorted(load.records_per_s for load in runs)
        merged = Load(0, 0.0, 1.0, [latency for load in runs for latency in load.latencies], 0)
        summary[name] = {"records_per_s": round(rates[len(rates) // 2]), "min": round(rates[0]), "max": round(rates[-1]),
                         "body_kb": round(sum(map(len, paths[name][3])) / len(records) / 1000),
                         "p50_ms": round(merged.percentile(0.5), 1), "p99_ms": round(merged.percentile(0.99), 1),
                         "api_cpu_ms_per_body": round(sorted(cpu_ms[name])[len(runs) // 2], 2),
                         "errors": sum(load.errors for load in runs)}
    for name in ("loki_json", "loki_protobuf"):
        summary[name]["ratio_to_write"] = round(summary[name]["records_per_s"] / summary["write"]["records_per_s"], 2)
        per_round = sorted(a.records_per_s / b.records_per_s for a, b in zip(loads[name], loads["write"]))
        summary[name]["ratio_range"] = [round(per_round[0], 2), round(per_round[-1], 2)]
    for name, v in summary.items():
        log(f"{name}: median {v['records_per_s']:,} records/s ({v['min']:,}-{v['max']:,}), p99 {v['p99_ms']} ms, "
            f"API CPU {v['api_cpu_ms_per_body']} ms/body"
            + (f", {v['ratio_to_write']}x /write" if "ratio_to_write" in v else ""))
    return summary


@contextlib.contextmanager
def redis_appendfsync(redis, policy: str | None):
    """`redis` at `policy` for the block (None: as it is), its own policy put back after."""
    if policy is None:
        yield
        return
    if redis.config_get("appendonly")["appendonly"] != "yes":
        raise RuntimeError("the stack's Redis runs without AOF: appendfsync would measure nothing")
    original = redis.config_get("appendfsync")["appendfsync"]
    redis.config_set("appendfsync", policy)
    try:
        yield
    finally:
        redis.config_set("appendfsync", original)


def fsync_policies(port: int, redis, payloads: list[bytes], rounds: int) -> dict:
    """The front end with Redis at `appendfsync always` and at `everysec`, alternated `rounds` times
    on the same Redis and API (CONFIG SET between rounds; the stack's own policy is put back)."""
    loads: dict[str, list[Load]] = {"everysec": [], "always": []}
    for _ in range(rounds):
        for policy in loads:
            with redis_appendfsync(redis, policy):
                loads[policy].append(post_all(port, payloads, 1000, 4))
    return summarize_alternated(loads, "appendfsync")


def summarize_alternated(loads: dict[str, list[Load]], what: str) -> dict:
    """Per variant: the median rate of its runs, their range, and the latency over all of them."""
    summary = {}
    for variant, runs in loads.items():
        rates = sorted(load.records_per_s for load in runs)
        merged = Load(0, 0.0, 1.0, [latency for load in runs for latency in load.latencies], 0)
        summary[variant] = {"records_per_s": round(rates[len(rates) // 2]), "min": round(rates[0]),
                            "max": round(rates[-1]), "p50_ms": round(merged.percentile(0.5), 1),
                            "p99_ms": round(merged.percentile(0.99), 1),
                            "errors": sum(load.errors for load in runs)}
        log(f"front end, {what} {variant}: median {summary[variant]['records_per_s']:,} records/s "
            f"({summary[variant]['min']:,}-{summary[variant]['max']:,}), p50 {summary[variant]['p50_ms']} ms, "
            f"p99 {summary[variant]['p99_ms']} ms")
    return summary


# A Redis that fails over (scripts/redis-ha.sh) on ports of the bench's own, for the cost of WAIT.
REDIS_HA_PORTS = {"REDIS_HA_PRIMARY_PORT": "16480", "REDIS_HA_REPLICA_PORT": "16481",
                  "REDIS_HA_SENTINEL_PORTS": "26480 26481 26482"}  # below the ephemeral range


def replica_waits(api_port: int, env: dict[str, str], payloads: list[bytes], rounds: int) -> dict:
    """The front end on a Redis primary with a replica, reached through the Sentinels, with
    REDIS_WAIT_REPLICAS=0 (the primary's answer) and =1 (WAIT 1: a replica holds the batch before
    the 200), alternated `rounds` times, each on an API started for it. Both Redis nodes run
    `appendfsync always`, as the stack's."""
    ha_env = {**os.environ, **REDIS_HA_PORTS, "REDIS_HA_DIR": str(ROOT / ".run" / "bench-redis-ha")}
    script = str(ROOT / "scripts" / "redis-ha.sh")
    sentinels = ",".join(f"127.0.0.1:{port}" for port in REDIS_HA_PORTS["REDIS_HA_SENTINEL_PORTS"].split())
    loads: dict[str, list[Load]] = {"0": [], "1": []}
    try:
        subprocess.run([script, "up"], env=ha_env, check=True, stdout=subprocess.DEVNULL)
        for _ in range(rounds):
            for wanted in loads:
                api = start(f"api-wait{wanted}", [*CLI, "api", "--port", str(api_port)],
                            {**env, "REDIS_SENTINELS": sentinels, "REDIS_WAIT_REPLICAS": wanted})
                try:
                    wait_http(api_port, "/metrics")
                    post_all(api_port, payloads[:10], 1000, 4)  # warm-up
                    loads[wanted].append(post_all(api_port, payloads, 1000, 4))
                finally:
                    api.stop()
    finally:
        subprocess.run([script, "down"], env=ha_env, check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", ha_env["REDIS_HA_DIR"]], check=False)
    return summarize_alternated(loads, "REDIS_WAIT_REPLICAS")


def wait_until(condition, timeout: float) -> None:
    """Poll `condition` every 0.05 s: the end of an end-to-end run is known to that much."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def count_rows(store: CassandraStore, namespace: str, payloads: list[bytes]) -> int:
    first = json.loads(payloads[0])[0]["time"]
    last = json.loads(payloads[-1])[-1]["time"]
    pods = {r["kubernetes"]["pod_name"] for body in payloads for r in json.loads(body)}
    return sum(len(stored_lines(store, namespace, pod, "app", parse_rfc3339_ns(first), parse_rfc3339_ns(last),
                                bucket_seconds=store.bucket_seconds))
               for pod in pods)


def query_latencies(port: int, store: CassandraStore, settings: Settings) -> dict:
    bucket_ns = settings.cassandra_bucket_seconds * 10**9
    border = (1_773_489_600 * 10**9 // bucket_ns + 10) * bucket_ns
    line = '10.46.0.1 - - [14/Mar/2026:12:00:00 +0000] "GET /index.html HTTP/1.1" 200 647 "-" "kube-probe/1.29"\n'
    inside = [LogRow("query", "one", "app", border - 3_600 * 10**9 + i * 10**6, f"{i} {line}", "stdout") for i in range(10_000)]
    across = [LogRow("query", "two", "app", border - 5_000 * 10**6 + i * 10**6, f"{i} {line}", "stdout") for i in range(10_000)]
    store.write(inside)
    store.write(across)
    out = {}
    for name, rows in (("10k_rows_one_bucket", inside), ("10k_rows_across_bucket_border", across)):
        params = urllib.parse.urlencode({"namespace": "query", "pod_name": rows[0].pod_name, "container_name": "app",
                                         "start_time": format_rfc3339_ns(rows[0].ts_ns),
                                         "end_time": format_rfc3339_ns(rows[-1].ts_ns)})
        get_latencies(port, f"/query?{params}", 3)  # warm-up
        latencies, returned = get_latencies(port, f"/query?{params}", 30)
        out[name] = {"rows": returned, "p50_ms": round(pct(latencies, 0.5), 1), "p99_ms": round(pct(latencies, 0.99), 1)}
        log(f"query {name}: p50 {out[name]['p50_ms']} ms, p99 {out[name]['p99_ms']} ms ({returned} rows)")
    # The same 10,000 lines through Loki's query_range, in the same run: its target is 80% of /query's speed.
    params = urllib.parse.urlencode({"query": '{namespace="query", pod="one", container="app"}', "limit": 10_000,
                                     "direction": "forward", "start": inside[0].ts_ns, "end": inside[-1].ts_ns + 1})
    get_latencies(port, f"/loki/api/v1/query_range?{params}", 3, loki_lines)
    latencies, returned = get_latencies(port, f"/loki/api/v1/query_range?{params}", 30, loki_lines)
    loki = {"rows": returned, "p50_ms": round(pct(latencies, 0.5), 1), "p99_ms": round(pct(latencies, 0.99), 1)}
    loki["ratio_query_to_query_range_p50"] = round(out["10k_rows_one_bucket"]["p50_ms"] / loki["p50_ms"], 2)
    out["loki_query_range_10k_rows_one_bucket"] = loki
    log(f"query_range 10k rows: p50 {loki['p50_ms']} ms, p99 {loki['p99_ms']} ms ({returned} rows)")
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def big_query(port: int, store: CassandraStore, settings: Settings, api: Proc, rows_wanted: int = 100_000) -> dict:
    """GET /query of 100,000 rows of one container, as NDJSON (streamed) and as JSON (built whole),
    with the API's RSS growth over its level before each request."""
    line = '{"level":"info","ts":"2026-03-14T12:00:00Z","msg":"order placed","order_id":12345,"items":3}\n'
    start_ns = 1_773_489_600 * 10**9 - 7 * 3600 * 10**9
    for first in range(0, rows_wanted, 10_000):
        store.write([LogRow("query", "big", "app", start_ns + i * 10**5, f"{i} {line}", "stdout")
                     for i in range(first, first + 10_000)])
    params = urllib.parse.urlencode({"namespace": "query", "pod_name": "big", "container_name": "app",
                                     "start_time": format_rfc3339_ns(start_ns),
                                     "end_time": format_rfc3339_ns(start_ns + rows_wanted * 10**5)})
    out = {}
    for name, accept in (("ndjson_streamed", "application/x-ndjson"), ("json_document", "application/json")):
        baseline, peak, done = rss_mb(api.popen.pid), [0.0], threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], rss_mb(api.popen.pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.perf_counter()
        connection.request("GET", f"/query?{params}", headers={"Accept": accept})
        response = connection.getresponse()
        received, newlines, first_byte = 0, 0, None
        while chunk := response.read(256 * 1024):
            first_byte = first_byte or time.perf_counter() - started
            received += len(chunk)
            newlines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        rows = newlines if accept == "application/x-ndjson" else rows_wanted
        out[name] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                     "mb": round(received / 1e6, 1), "first_byte_ms": round(first_byte * 1000, 1),
                     "api_rss_growth_mb": round(max(peak[0] - baseline, 0), 1)}
        log(f"query {name}: {rows:,} rows in {seconds:.2f} s, first byte {first_byte * 1000:.0f} ms, "
            f"API RSS +{out[name]['api_rss_growth_mb']} MB")
    return out


def print_table(r: dict) -> None:
    fe, ce, q = r.get("front_end", {}), r.get("ceiling", {}), r.get("query", {})
    rows = [
        (f"front end accept rate ({v['processes']} API process(es), workers stopped)",
         f"{v.get('records_per_s', 0):,} rec/s ({v['min']:,}-{v['max']:,}, median of {v['runs']}), {v.get('mb_per_s')} MB/s, "
         f"p50 {v.get('p50_ms')} ms, p99 {v.get('p99_ms')} ms, "
         f"API CPU {v['api_cpu_ms_per_1000_records']} ms per 1,000 records "
         f"({' + '.join(map(str, v['api_cpu_ms_per_1000_records_by_process']))}; all runs "
         f"{v['api_cpu_ms_per_1000_records_range'][0]}-{v['api_cpu_ms_per_1000_records_range'][1]}), Redis "
         f"{v['redis_cpu_ms_per_1000_records']} ms, load generator {v['load_generator_cpu_ms_per_1000_records']} ms: "
         f"{v['cores_busy']} cores busy")
        for v in (r[key] for key in ("front_end_2_processes", "front_end") if key in r)
    ] + [
        ("front end, 2 API processes against 1", f"{fe.get('ratio_2_processes_to_1')}x"),
        ("ceiling: bare Falcon + waitress + msgspec decode", f"{ce.get('records_per_s', 0):,} rec/s (front end = {ce.get('ratio_front_end_to_ceiling')}x)"),
    ] if fe else []
    for name, v in r.get("loki_push", {}).items():
        what = {"write": "POST /write", "loki_json": "Loki push, JSON (fluent-bit)",
                "loki_protobuf": "Loki push, snappy protobuf (Promtail, Alloy)"}[name]
        ratio = f", {v['ratio_to_write']}x /write ({v['ratio_range'][0]}-{v['ratio_range'][1]})" if name != "write" else ""
        rows.append((f"{what} (median of 3, alternated)",
                     f"{v['records_per_s']:,} rec/s ({v['min']:,}-{v['max']:,}){ratio}, {v['body_kb']} kB/body, "
                     f"API CPU {v['api_cpu_ms_per_body']} ms/body, p99 {v['p99_ms']} ms"))
    for policy, v in r.get("durability", {}).items():
        rows.append((f"front end, Redis appendfsync {policy} (median of 3, alternated)",
                     f"{v['records_per_s']:,} rec/s ({v['min']:,}-{v['max']:,}), p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms"))
    for wanted, v in r.get("replica_wait", {}).items():
        rows.append((f"front end via Sentinel, REDIS_WAIT_REPLICAS={wanted} (median of 3, alternated)",
                     f"{v['records_per_s']:,} rec/s ({v['min']:,}-{v['max']:,}), p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms"))
    for name, v in r.get("end_to_end", {}).items():
        rows.append((f"end to end, {name.replace('_', ' ')}",
                     f"{v['records_per_s']:,} rec/s ({v['rows_counted']:,} rows counted), CPU per 1,000-record batch: "
                     f"workers {v.get('worker_cpu_ms_per_batch')} ms, Cassandra {v.get('cassandra_cpu_ms_per_batch')} ms"))
    if bw := r.get("bare_writer"):
        rows.append(("bare writer (same rows, driver only)",
                     f"{bw['records_per_s']:,} rows/s (end to end = {bw['ratio_end_to_end_to_bare']}x), "
                     f"Cassandra CPU {bw.get('cassandra_cpu_ms_per_1000_rows')} ms per 1,000 rows"))
    for name, v in q.items():
        rows.append((f"GET /query {name.replace('_', ' ')}", f"p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms"))
    for name, v in r.get("big_query", {}).items():
        rows.append((f"GET /query 100k rows, {name.replace('_', ' ')}",
                     f"{v['rows']:,} rows in {v['seconds']} s ({v['rows_per_s']:,} rows/s), first byte "
                     f"{v['first_byte_ms']} ms, API RSS +{v['api_rss_growth_mb']} MB"))
    for layout in ("rows", "blocks"):
        if v := r.get("layouts", {}).get(layout):
            rows.append((f"layout {layout} (median of {v['rounds']})",
                         f"end to end {v['e2e_lines_per_s']:,.0f} lines/s, worker CPU {v['worker_cpu_ms_per_1k_lines']} "
                         f"ms/1k lines (meanwhile API {v['e2e_api_cpu_ms_per_1k_lines']}, Cassandra "
                         f"{v['e2e_cassandra_cpu_ms_per_1k_lines']}, Redis {v['e2e_redis_cpu_ms_per_1k_lines']}), bare writer {v['bare_writer_lines_per_s']:,.0f} lines/s, 10k query p50 "
                         f"{v['query_10k_p50_ms']} ms p99 {v['query_10k_p99_ms']} ms, 100k NDJSON "
                         f"{v['query_100k_ndjson_lines_per_s']:,.0f} lines/s API RSS +{v['query_100k_ndjson_api_rss_growth_mb']} MB, disk "
                         f"{v.get('disk_bytes_per_line', 'n/a')} B/line"))
    if loki := r.get("layouts", {}).get("loki"):
        rows.append((f"Loki, same corpus (median of {loki.get('rounds', 1)})",
                     f"end to end {loki['e2e_lines_per_s']:,.0f} lines/s (Loki's CPU {loki.get('e2e_cpu_ms_per_1k_lines')} "
                     f"ms/1k lines), 10k query p50 {loki['query_10k_p50_ms']} ms "
                     f"p99 {loki['query_10k_p99_ms']} ms, disk {loki['disk_bytes_per_line']} B/line"))
    for name, v in r.get("layouts", {}).get("small_blocks", {}).items():
        rows.append((f"one container, {name.replace('_', ' ')} lines",
                     f"{v['blocks']} blocks, disk {v['disk_bytes_per_line']} B/line, 10k query p50 {v['query_10k_p50_ms']} ms "
                     f"p99 {v['query_10k_p99_ms']} ms"))
    if ratio := r.get("layouts", {}).get("ratio_blocks_to_rows"):
        rows.append(("layout blocks / rows", ", ".join(f"{name} {value}x" for name, value in ratio.items())))
    if m := r.get("memory"):
        rows.append(("peak RSS", f"API {m['api_peak_rss_mb']} MB, worker {m['worker_peak_rss_mb']} MB"))
    elif fe:
        rows.append(("peak RSS", f"API {fe.get('api_peak_rss_mb')} MB"))
    width = max(len(a) for a, _ in rows)
    where = f"store: {r['store']}" if "store" in r else f"Redis appendfsync: {r.get('redis_appendfsync')}"
    print(f"\nmachine: {r['machine']}; {where}")
    for a, b in rows:
        print(f"  {a:<{width}}  {b}")


if __name__ == "__main__":
    main()
