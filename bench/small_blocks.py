"""Do small blocks hurt? The same 20,000 lines of one container stored as blocks of 1,000, 100 and
10 lines (what a chatty stream in small batches makes), and as blocks of 10 then merged
(CassandraStore.merge_small_blocks, what the workers' maintenance does): what merging wins.

    .venv/bin/python bench/run.py --small-blocks

For each block size, a keyspace of its own (the `blocks` layout): the lines written straight through
CassandraStore.write in slices of that size, then bytes on disk per line of `log_blocks` after
`nodetool flush` and `nodetool compact`, and GET /query of 10,000 of those lines (p50 and p99 of
30, through one API started on that keyspace).
"""

from __future__ import annotations

import time
import uuid

from bench.layouts import Node, query_latencies, query_lines
from common.queue import BatchQueue, connect_redis
from common.partitions import bucket_of
from common.schema import BLOCK_TABLE
from common.settings import Settings
from common.store import CassandraStore

LINES = 20_000
BLOCK_SIZES = (1000, 100, 10)


def small_blocks(run_mod, *, api_port: int, node: Node) -> dict:
    out = {}
    for size, merged in [(size, False) for size in BLOCK_SIZES] + [(BLOCK_SIZES[-1], True)]:
        name = f"blocks_of_{size}" + ("_then_merged" if merged else "")
        out[name] = v = one_size(run_mod, size, api_port, node, merged=merged)
        run_mod.log(f"{name.replace('_', ' ')}: {v['blocks']} blocks, disk {v['disk_bytes_per_line']:.1f} B/line, 10k query p50 "
                    f"{v['query_10k_p50_ms']} ms p99 {v['query_10k_p99_ms']} ms")
    return out


def one_size(run_mod, size: int, api_port: int, node: Node, *, merged: bool) -> dict:
    run = uuid.uuid4().hex[:8]
    settings = Settings(queue_name=f"bench-small-{run}", cassandra_keyspace=f"bench_small_{size}_{run}",
                        cassandra_consistency="ONE", cassandra_layout="blocks")
    env = {"QUEUE_NAME": settings.queue_name, "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
           "CASSANDRA_CONSISTENCY": "ONE", "LOG_LEVEL": "WARNING", "CASSANDRA_LAYOUT": "blocks"}
    redis = connect_redis(settings)
    store = CassandraStore(settings)
    store.connect()
    rows = query_lines("small", LINES)
    api = None
    try:
        for first in range(0, len(rows), size):
            store.write(rows[first:first + size])
        partition = ("small", "one", "app", bucket_of(rows[0].ts_ns, settings.cassandra_bucket_seconds))
        if merged:  # what the workers' merge (BLOCK_MERGE_AFTER_SECONDS) does to them
            store.merge_small_blocks(partition, int(time.time() * 1_000_000) + 1)
        (blocks,) = store.connect().execute(
            f"SELECT COUNT(*) FROM {settings.cassandra_keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND "
            "pod_name = %s AND container_name = %s AND bucket = %s", partition).one()
        disk = node.table_bytes(settings.cassandra_keyspace, BLOCK_TABLE) / LINES
        api = run_mod.start(f"api-small-{size}", [*run_mod.CLI, "api", "--port", str(api_port)], env)
        run_mod.wait_http(api_port, "/metrics")
        p50, p99 = query_latencies(run_mod, api_port, rows[:10_000])
        return {"blocks": blocks, "disk_bytes_per_line": round(disk, 1), "query_10k_p50_ms": round(p50, 1),
                "query_10k_p99_ms": round(p99, 1)}
    finally:
        if api is not None:
            api.stop()
        run_mod.clean_up(settings, store, BatchQueue(redis, settings), redis)
