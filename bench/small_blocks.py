"""Do small blocks hurt? The same 20,000 lines of one container stored as blocks of 1,000, 100 and
10 lines (what a chatty stream in small batches makes), measured for what a merge task would win.

    .venv/bin/python bench/run.py --small-blocks

For each block size, a keyspace of its own (the `blocks` layout): the lines written straight through
CassandraStore.write in slices of that size, then bytes on disk per line of `log_blocks` after
`nodetool flush` and `nodetool compact`, and GET /query of 10,000 of those lines (p50 and p99 of
30, through one API started on that keyspace).
"""

from __future__ import annotations

import urllib.parse
import uuid

from bench.layouts import QUERY_LINE, Node
from common.queue import BatchQueue, connect_redis
from common.records import LogRow
from common.schema import BLOCK_TABLE
from common.settings import Settings
from common.store import CassandraStore
from common.timestamps import format_rfc3339_ns

LINES = 20_000
BLOCK_SIZES = (1000, 100, 10)


def small_blocks(run_mod, *, api_port: int, node: Node) -> dict:
    out = {}
    for size in BLOCK_SIZES:
        out[f"blocks_of_{size}"] = one_size(run_mod, size, api_port, node)
        v = out[f"blocks_of_{size}"]
        run_mod.log(f"blocks of {size} lines: disk {v['disk_bytes_per_line']:.1f} B/line, 10k query p50 "
                    f"{v['query_10k_p50_ms']} ms p99 {v['query_10k_p99_ms']} ms")
    return out


def one_size(run_mod, size: int, api_port: int, node: Node) -> dict:
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"bench-small-{run}", cassandra_keyspace=f"bench_small_{size}_{run}",
                        cassandra_consistency="ONE", cassandra_layout="blocks")
    env = {"QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "LOG_LEVEL": "WARNING", "CASSANDRA_LAYOUT": "blocks"}
    redis = connect_redis(settings)
    store = CassandraStore(settings)
    store.connect()
    start_ns = 1_773_480_000 * 10**9
    rows = [LogRow("small", "one", "app", start_ns + i * 10**6, f"{i} {QUERY_LINE}", "stdout") for i in range(LINES)]
    api = None
    try:
        for first in range(0, len(rows), size):
            store.write(rows[first:first + size])
        disk = node.table_bytes(settings.cassandra_keyspace, BLOCK_TABLE) / LINES
        api = run_mod.start(f"api-small-{size}", [*run_mod.CLI, "api", "--port", str(api_port)], env)
        run_mod.wait_http(api_port, "/metrics")
        wanted = rows[:10_000]
        params = urllib.parse.urlencode({"namespace": "small", "pod_name": "one", "container_name": "app",
                                         "start_time": format_rfc3339_ns(wanted[0].ts_ns),
                                         "end_time": format_rfc3339_ns(wanted[-1].ts_ns)})
        run_mod.get_latencies(api_port, f"/query?{params}", 3)  # warm-up
        latencies, returned = run_mod.get_latencies(api_port, f"/query?{params}", 30)
        if returned != len(wanted):
            raise RuntimeError(f"/query returned {returned} of {len(wanted)} lines")
        return {"disk_bytes_per_line": round(disk, 1), "query_10k_p50_ms": round(run_mod.pct(latencies, 0.5), 1),
                "query_10k_p99_ms": round(run_mod.pct(latencies, 0.99), 1)}
    finally:
        if api is not None:
            api.stop()
        run_mod.clean_up(settings, store, BatchQueue(redis, settings), redis)
