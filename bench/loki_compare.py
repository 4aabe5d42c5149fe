"""Grafana Loki on the same corpus as bench/layouts.py, in the same run (`--loki-url`).

Loki is started by the caller (single binary, filesystem storage; see README "Measured
performance"); this only talks to it over loopback HTTP and reads its data directory's size:
- end to end: the same 300 batches of 1,000 lines (4 pods) as snappy protobuf pushes (what
  Promtail and Alloy send), 2 clients, until a count query sees every line (pushed -> readable);
- 10,000 lines of one stream through query_range (limit 10,000, forward), p50 and p99 of 30;
- bytes on disk per line after POST /flush: the data directory without its WAL, once its size
  stops changing.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
import uuid
from pathlib import Path

from bench.layouts import QUERY_LINE
from bench.workload import batches, loki_json_body, loki_protobuf_body
from common.timestamps import format_rfc3339_ns

PUSH = "/loki/api/v1/push"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _get(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"Loki answered {response.status} to {path}: {body[:200]!r}")
    return json.loads(body)


def _count(port: int, namespace: str, at_ns: int) -> int:
    params = urllib.parse.urlencode({"query": f'sum(count_over_time({{namespace="{namespace}"}}[1h]))',
                                     "time": at_ns})
    result = _get(port, f"/loki/api/v1/query?{params}")["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def _data_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.rglob("*")
               if path.is_file() and path.relative_to(data_dir).parts[0] != "wal")


def loki_figures(run_mod, url: str, data_dir: Path, e2e_batches: int) -> dict:
    port = urllib.parse.urlsplit(url).port or 3100
    run = uuid.uuid4().hex[:6]
    before = _data_bytes(data_dir)

    namespace = f"e2e-{run}"
    start_ns = 1_773_500_000 * 10**9
    records = batches(namespace, e2e_batches, start_ns=start_ns)
    payloads = [loki_protobuf_body(batch) for batch in records]
    warm = [loki_protobuf_body(batch) for batch in batches(f"warm-{run}", 5, start_ns=1_773_400_000 * 10**9)]
    run_mod.post_all(port, warm, 1000, 2, PUSH, PROTOBUF, 204)
    lines = e2e_batches * 1000
    last_ns = start_ns + lines * 1000
    pid = _listener_pid(port)
    cpu_before = run_mod.cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    load = run_mod.post_all(port, payloads, 1000, 2, PUSH, PROTOBUF, 204)
    run_mod.wait_until(lambda: _count(port, namespace, last_ns + 10**9) >= lines, 600)
    elapsed = time.perf_counter() - started
    cpu_ms_per_1k = (run_mod.cpu_seconds(pid) - cpu_before) * 1000 / (lines / 1000) if pid else None
    if load.errors:
        raise RuntimeError(f"Loki refused {load.errors} pushes")

    query_ns = 1_773_480_000 * 10**9
    query_records = [{"time": format_rfc3339_ns(query_ns + i * 10**6), "log": f"{i} {QUERY_LINE}", "stream": "stdout",
                      "kubernetes": {"namespace_name": f"query-{run}", "pod_name": "one", "container_name": "app",
                                     "pod_id": "p", "host": "node-1"}} for i in range(10_000)]
    for first in range(0, 10_000, 1000):
        run_mod.post_all(port, [loki_json_body(query_records[first:first + 1000])], 1000, 1, PUSH, JSON, 204)
    params = urllib.parse.urlencode({"query": f'{{namespace="query-{run}", pod="one", container="app"}}',
                                     "limit": 10_000, "direction": "forward", "start": query_ns,
                                     "end": query_ns + 10_000 * 10**6})
    run_mod.get_latencies(port, f"/loki/api/v1/query_range?{params}", 3, run_mod.loki_lines)
    latencies, returned = run_mod.get_latencies(port, f"/loki/api/v1/query_range?{params}", 30, run_mod.loki_lines)
    if returned != 10_000:
        raise RuntimeError(f"Loki returned {returned} of 10,000 lines")

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/flush")
    connection.getresponse().read()
    sizes = [-1, _data_bytes(data_dir)]
    while sizes[-1] != sizes[-2]:  # flushed chunks and the index written
        time.sleep(2)
        sizes.append(_data_bytes(data_dir))
    stored = 5_000 + lines + 10_000
    return {"e2e_lines_per_s": round(lines / elapsed), "query_10k_p50_ms": round(run_mod.pct(latencies, 0.5), 1),
            "query_10k_p99_ms": round(run_mod.pct(latencies, 0.99), 1),
            "disk_bytes_per_line": round((sizes[-1] - before) / stored, 1),
            # Loki's own process, while it ingested and served the end-to-end count queries
            "e2e_cpu_ms_per_1k_lines": None if cpu_ms_per_1k is None else round(cpu_ms_per_1k, 1)}


def _listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:port (Loki started by hand), from /proc; None if not found."""
    wanted = f"{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + wanted) and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None

