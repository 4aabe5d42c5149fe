"""Reading a container's stored lines back in full, for ledgers and assertions (not a serving path:
the API pages through common.log_search itself)."""

from __future__ import annotations

from typing import NamedTuple

from common.blocks import decode_block
from common.log_search import Scope, read_lines
from common.log_store import LogStore


def stored_lines(store: LogStore, namespace: str, pod_name: str, container_name: str, start_ns: int,
                 end_ns: int, *, bucket_seconds: int = 3600) -> list[tuple[int, str]]:
    """Every (ts_ns, log) of one container with start_ns <= ts <= end_ns, oldest first."""
    scope = Scope(namespace, pod_name, container_name)
    return [(line.ts_ns, line.log) for line in read_lines(store, scope, start_ns, end_ns, bucket_seconds=bucket_seconds)]


class StoredLine(NamedTuple):
    bucket: int
    ts_ns: int
    line_id: int
    log: str
    stream: str | None
    host: str | None
    pod_id: str | None
    docker_id: str | None
    labels: dict[str, str] | None


def stored_columns(store, keyspace: str, namespace: str, pod_name: str, container_name: str,
                   bucket: int | None = None) -> list[StoredLine]:
    """Every stored line of a container (of one bucket if given) with every column, straight from
    Cassandra in whichever layouts hold it, each identity once, in (bucket, ts_ns, line_id) order:
    what the API does not serve (metadata, labels)."""
    session = store.connect()
    where = "WHERE namespace = %s AND pod_name = %s AND container_name = %s"
    params: tuple = (namespace, pod_name, container_name)
    if bucket is not None:
        where, params = where + " AND bucket = %s", (*params, bucket)
    found: dict[tuple, StoredLine] = {}
    for row in session.execute(
            f"SELECT bucket, ts_ns, line_id, log, stream, host, pod_id, docker_id, labels FROM {keyspace}.log_lines "
            f"{where} ALLOW FILTERING", params, timeout=60):
        line = StoredLine(*row[:8], dict(row[8]) if row[8] else None)
        found[(line.bucket, line.ts_ns, line.line_id)] = line
    for block_bucket, data in session.execute(
            f"SELECT bucket, data FROM {keyspace}.log_blocks {where} ALLOW FILTERING", params, timeout=60):
        block = decode_block(data)
        for ts_ns, line_id, log, stream, meta in zip(block.ts, block.line_ids, block.logs, block.streams,
                                                     (block.metas[m] for m in block.meta_of)):
            found.setdefault((block_bucket, ts_ns, line_id), StoredLine(block_bucket, ts_ns, line_id, log, stream, *meta))
    return [found[key] for key in sorted(found)]
