"""The storage layouts against each other (CASSANDRA_LAYOUT=rows|blocks), in one run, alternated.

    .venv/bin/python bench/run.py --layouts [--quick] [--rounds N]

For each layout, a keyspace and queue of its own, one API and one worker started with that layout:
- end to end: the same 300 POST /write bodies of 1,000 lines (4 pods), 2 clients, until the queue
  is drained (pushed -> readable), and the worker's CPU time (user + system) per 1,000 lines;
- bare writer: the same lines straight into CassandraStore.write, 10,000 at a time, no queue;
- GET /query of 10,000 lines of one container (written in 1,000-line batches, as a worker would),
  p50 and p99 of 30; and 100,000 lines streamed as NDJSON, with the API's RSS growth (bench/run.py's);
- bytes on disk per line of the log table after `nodetool flush` and `nodetool compact`
  (the SSTables' Data/Index/... files in the node's data directory).
With --loki-url, a running Loki on the same corpus in every round (bench/loki_compare.py).
First, Cassandra is written to until its CPU per line stops falling (warm_store: a node's JIT).
Rounds alternate the order; each figure is the median of its rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
import statistics
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

from bench.workload import bodies, decoded_rows
from common.queue import BatchQueue, connect_redis
from common.records import LogRow
from common.schema import BLOCK_TABLE, LOG_TABLE
from common.settings import LAYOUTS, Settings
from common.store import CassandraStore
from common.timestamps import format_rfc3339_ns

ROOT = Path(__file__).resolve().parents[1]
JMX_PORT = 7199  # scripts/cassandra.sh's
QUERY_LINE = '10.46.0.1 - - [14/Mar/2026:12:00:00 +0000] "GET /index.html HTTP/1.1" 200 647 "-" "kube-probe/1.29"\n'


@dataclasses.dataclass
class Node:
    """How to reach the local node's nodetool and data directory (scripts/cassandra.sh's layout)."""

    lib: Path
    data: Path

    def nodetool(self, *args: str) -> None:
        options = [line for line in (ROOT / "scripts" / "cassandra" / "jvm17.options").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
        subprocess.run(["nice", "java", "-Xmx128m", *options, "-cp", f"{self.lib}/*",
                        "org.apache.cassandra.tools.NodeTool", "-h", "127.0.0.1", "-p", str(JMX_PORT), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)

    def table_bytes(self, keyspace: str, table: str) -> int:
        """The live SSTables' size of one table, after a flush and a major compaction."""
        self.nodetool("flush", keyspace, table)
        self.nodetool("compact", keyspace, table)
        return sum(path.stat().st_size for directory in (self.data / keyspace).glob(f"{table}-*")
                   for path in directory.glob("*") if path.is_file())


def layouts_comparison(run_mod, *, quick: bool, rounds: int, api_port: int, node: Node | None,
                       others: dict[str, Callable[[int], dict]] | None = None, api_processes: int = 1) -> dict:
    """{layout: {figure: median}} and the blocks/rows ratios; run_mod is bench.run (its helpers).
    `others` (Loki) are measured in every round too, {name: figures(e2e_batches)}: after the layouts
    in odd rounds, before them in even ones (each may leave background work: flushes, compactions)."""
    e2e_batches = 20 if quick else 300  # 300,000 lines: a few seconds, so that polling for the end (0.05 s) is noise
    others = others or {}
    warm_up = warm_store(run_mod, max_seconds=30 if quick else 300)
    figures: dict[str, list[dict]] = {name: [] for name in (*LAYOUTS, *others)}
    for round_ in range(rounds):
        order = [*LAYOUTS, *others] if round_ % 2 == 0 else [*others, *LAYOUTS[::-1]]
        for name in order:
            run_mod.log(f"layouts: round {round_ + 1}, {name}")
            figures[name].append(others[name](e2e_batches) if name in others
                                 else one_layout(run_mod, name, e2e_batches, api_port, node, api_processes))
    out: dict = {}
    for layout, runs in figures.items():
        out[layout] = {name: _median(run[name] for run in runs) for name in runs[0]}
        out[layout]["rounds"] = len(runs)
        out[layout]["e2e_lines_per_s_by_round"] = [round(run["e2e_lines_per_s"]) for run in runs]
    out["cassandra_warm_up_cpu_ms_per_1k_lines"] = warm_up
    rows, blocks = out["rows"], out["blocks"]
    out["ratio_blocks_to_rows"] = {name: round(blocks[name] / rows[name], 2) for name in rows
                                   if name != "rounds" and isinstance(rows[name], int | float) and rows[name]}
    for layout in LAYOUTS:
        v = out[layout]
        run_mod.log(f"layout {layout}: end to end {v['e2e_lines_per_s']:,.0f} lines/s, worker CPU "
                    f"{v['worker_cpu_ms_per_1k_lines']} ms/1k lines, bare writer {v['bare_writer_lines_per_s']:,.0f} "
                    f"lines/s, 10k query p50 {v['query_10k_p50_ms']} ms p99 {v['query_10k_p99_ms']} ms, "
                    f"disk {v.get('disk_bytes_per_line', 'n/a')} B/line")
    return out


def warm_store(run_mod, *, min_seconds: float = 60, max_seconds: float = 300, window: int = 10,
               settle: float = 0.9) -> list[float]:
    """Write throwaway lines into Cassandra until its CPU per 1,000 lines stops falling, and give
    that figure for each round. A freshly started node runs its write path interpreted while its JIT
    compiles it (C2 threads were ~70 % of its CPU): 17-23 ms per 1,000 lines end to end at first,
    2-4 once warm, a fall that goes on for minutes. Measuring before that would charge the first
    layout measured for the node's start. Stops once `min_seconds` have passed and the mean of the
    last `window` rounds (~2 s each) is no lower than `settle` times that of the `window` before
    (a three-round rule stopped at 4.2 ms, and a second warm-up then went on from 3.0 to 2.0), or
    at `max_seconds`; at once for a node this tree did not start (its CPU cannot be read)."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"bench-warm-{run}", cassandra_keyspace=f"bench_warm_{run}",
                        cassandra_consistency="ONE", cassandra_layout="blocks")
    store = CassandraStore(settings)
    store.connect()
    per_1k: list[float] = []
    started = time.monotonic()
    try:
        for round_ in itertools.count():
            rows = decoded_rows(bodies(f"warm{round_ % 4}", 50, start_ns=1_773_400_000 * 10**9 + round_ * 10**12),
                                settings.max_line_bytes)
            cpu = run_mod.store_cpu_seconds(False)
            for first in range(0, len(rows), 5_000):  # as a worker writes: a few batches at a time
                store.write(rows[first:first + 5_000])
            cpu = run_mod.store_cpu_seconds(False) - cpu
            if cpu == 0:
                run_mod.log("Cassandra warm-up: the node's CPU cannot be read (not started by this tree); skipped")
                return per_1k
            per_1k.append(round(cpu / len(rows) * 10**6, 1))
            elapsed = time.monotonic() - started
            settled = len(per_1k) >= 2 * window and (
                statistics.mean(per_1k[-window:]) >= settle * statistics.mean(per_1k[-2 * window:-window]))
            if (settled and elapsed >= min_seconds) or elapsed >= max_seconds:
                break
    finally:
        with contextlib.suppress(Exception):
            store.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
        store.close()
    run_mod.log(f"Cassandra warm-up: {len(per_1k)} rounds in {elapsed:.0f} s, its CPU per 1,000 lines written "
                f"{per_1k[0]} -> {per_1k[-1]} ms")
    return per_1k


def _median(values) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if known else None


def one_layout(run_mod, layout: str, e2e_batches: int, api_port: int, node: Node | None,
               api_processes: int = 1) -> dict:
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"bench-{layout}-{run}", cassandra_keyspace=f"bench_{layout}_{run}",
                        cassandra_consistency="ONE", queue_high_water_mark=10**6, cassandra_layout=layout)
    env = {"QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "QUEUE_HIGH_WATER_MARK": str(10**6), "LOG_LEVEL": "WARNING",
           "WORKER_METRICS_PORT": "0", "CASSANDRA_LAYOUT": layout, "API_PROCESSES": str(api_processes)}
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    store = CassandraStore(settings)
    store.connect()  # the keyspace exists before the processes start
    procs = []
    try:
        api = run_mod.start(f"api-{layout}", [*run_mod.CLI, "api", "--port", str(api_port)], env)
        procs.append(api)
        run_mod.wait_http(api_port, "/metrics")
        # warm-up: a few batches through a worker, so that neither layout pays the first connections
        worker = run_mod.start(f"worker-{layout}", [*run_mod.CLI, "worker"], env)
        procs.append(worker)
        run_mod.post_all(api_port, bodies("warm", 5, start_ns=1_773_400_000 * 10**9), 1000, 2)
        run_mod.wait_until(lambda: queue.unwritten_batches() == 0, 300)

        payloads = bodies("e2e", e2e_batches, start_ns=1_773_500_000 * 10**9)
        cpu_before = run_mod.cpu_seconds(worker.popen.pid)
        others_before = (run_mod.api_cpu_seconds(api), run_mod.store_cpu_seconds(False),
                         run_mod.redis_cpu_seconds(redis))
        started = time.perf_counter()
        run_mod.post_all(api_port, payloads, 1000, 2)
        run_mod.wait_until(lambda: queue.unwritten_batches() == 0, 900)
        elapsed = time.perf_counter() - started
        worker_cpu = run_mod.cpu_seconds(worker.popen.pid) - cpu_before
        api_cpu, cassandra_cpu, redis_cpu = (after - before for after, before in zip(
            (run_mod.api_cpu_seconds(api), run_mod.store_cpu_seconds(False), run_mod.redis_cpu_seconds(redis)),
            others_before))
        lines = e2e_batches * 1000
        counted = run_mod.count_rows(store, "e2e", payloads)
        if counted != lines:
            raise RuntimeError(f"{layout}: {counted:,} lines readable of {lines:,} pushed")

        bare = decoded_rows(bodies("bare", e2e_batches, start_ns=1_773_600_000 * 10**9), settings.max_line_bytes)
        started = time.perf_counter()
        for first in range(0, len(bare), 10_000):
            store.write(bare[first:first + 10_000])
        bare_rate = len(bare) / (time.perf_counter() - started)

        p50, p99 = query_10k(run_mod, api_port, store)
        streamed = run_mod.big_query(api_port, store, settings, api)["ndjson_streamed"]
        per_1k = 1000 / (lines / 1000)
        figures = {"e2e_lines_per_s": lines / elapsed, "worker_cpu_ms_per_1k_lines": worker_cpu * per_1k,
                   # the rest of the 2 cores' budget during the same end-to-end run (0 when the
                   # Cassandra node was not started by this tree's scripts/cassandra.sh)
                   "e2e_api_cpu_ms_per_1k_lines": api_cpu * per_1k, "e2e_cassandra_cpu_ms_per_1k_lines": cassandra_cpu * per_1k,
                   "e2e_redis_cpu_ms_per_1k_lines": redis_cpu * per_1k,
                   "bare_writer_lines_per_s": bare_rate, "query_10k_p50_ms": p50, "query_10k_p99_ms": p99,
                   "query_100k_ndjson_lines_per_s": streamed["rows_per_s"],
                   # the one API process's (with a supervisor, its children are not sampled)
                   "query_100k_ndjson_api_rss_growth_mb": streamed["api_rss_growth_mb"] if api_processes == 1 else None}
        if node is not None:
            stored = 5_000 + 2 * lines + 10_000 + 100_000  # warm-up, end to end, bare writer, queries
            table = BLOCK_TABLE if layout == "blocks" else LOG_TABLE
            figures["disk_bytes_per_line"] = node.table_bytes(settings.cassandra_keyspace, table) / stored
        return figures
    finally:
        for proc in procs:
            if proc.popen.poll() is None:
                proc.stop()
        run_mod.clean_up(settings, store, queue, redis)


def query_10k(run_mod, port: int, store: CassandraStore) -> tuple[float, float]:
    rows = query_lines("query", 10_000)
    for first in range(0, len(rows), 1000):
        store.write(rows[first:first + 1000])
    return query_latencies(run_mod, port, rows)


def query_lines(namespace: str, count: int) -> list[LogRow]:
    """`count` lines of container query/one/app, a millisecond apart."""
    start_ns = 1_773_480_000 * 10**9
    return [LogRow(namespace, "one", "app", start_ns + i * 10**6, f"{i} {QUERY_LINE}", "stdout") for i in range(count)]


def query_latencies(run_mod, port: int, rows: list[LogRow]) -> tuple[float, float]:
    """p50 and p99 (ms) of 30 GET /query answers of exactly these stored lines of one container."""
    first = rows[0]
    params = urllib.parse.urlencode({"namespace": first.namespace, "pod_name": first.pod_name,
                                     "container_name": first.container_name,
                                     "start_time": format_rfc3339_ns(first.ts_ns),
                                     "end_time": format_rfc3339_ns(rows[-1].ts_ns)})
    run_mod.get_latencies(port, f"/query?{params}", 3)  # warm-up
    latencies, returned = run_mod.get_latencies(port, f"/query?{params}", 30)
    if returned != len(rows):
        raise RuntimeError(f"/query returned {returned} of {len(rows)} lines")
    return run_mod.pct(latencies, 0.5), run_mod.pct(latencies, 0.99)
