"""Which bulk write is faster on this Cassandra: single-partition unlogged batches or concurrent
single-row INSERTs? Writes the same fluent-bit-shaped rows both ways into a scratch keyspace.

    .venv/bin/python bench/write_modes.py [--rows 20000] [--containers 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
import uuid

from common.records import LogRow
from common.settings import Settings
from common.store import CassandraStore

LINE = '10.46.0.0 - - [07/May/2018:00:00:00 +0000] "GET /index.html HTTP/1.1" 200 647 "-" "kube-probe/1.10"\n'


def make_rows(count: int, containers: int, start_ns: int) -> list[LogRow]:
    return [
        LogRow("default", f"web-{i % containers}", "nginx", start_ns + i * 1_000_000, f"{i} {LINE}", "stdout",
               "node-1", "pod-id", "docker-id", {"app": "web"})
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per queued batch (one job)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Settings(cassandra_keyspace=f"bench_{uuid.uuid4().hex[:8]}", cassandra_consistency="ONE")
    results = {}
    setup = CassandraStore(base)
    setup.connect()
    try:
        for mode in ("batch", "concurrent"):
            store = CassandraStore(dataclasses.replace(base, cassandra_write_mode=mode))
            rates = []
            for run in range(args.repeat):
                rows = make_rows(args.rows, args.containers, (1_700_000_000 + run * 86400) * 10**9)
                started = time.perf_counter()
                for first in range(0, len(rows), args.batch_rows):
                    store.write(rows[first:first + args.batch_rows])
                rates.append(len(rows) / (time.perf_counter() - started))
            store.close()
            results[mode] = {"rows_per_s_median": round(statistics.median(rates)), "runs": [round(r) for r in rates]}
            print(f"{mode:>10}: {statistics.median(rates):>9,.0f} rows/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    finally:
        setup.connect().execute(f"DROP KEYSPACE {base.cassandra_keyspace}", timeout=60)
        setup.close()
    print(json.dumps({"rows": args.rows, "containers": args.containers, "batch_rows": args.batch_rows, **results}))


if __name__ == "__main__":
    main()
