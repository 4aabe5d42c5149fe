"""Reading a container's stored lines back in full, for ledgers and assertions (not a serving path:
the API pages through common.log_search itself)."""

from __future__ import annotations

from common.log_search import Scope, read_lines
from common.log_store import LogStore


def stored_lines(store: LogStore, namespace: str, pod_name: str, container_name: str, start_ns: int,
                 end_ns: int, *, bucket_seconds: int = 3600) -> list[tuple[int, str]]:
    """Every (ts_ns, log) of one container with start_ns <= ts <= end_ns, oldest first."""
    scope = Scope(namespace, pod_name, container_name)
    return [(line.ts_ns, line.log) for line in read_lines(store, scope, start_ns, end_ns, bucket_seconds=bucket_seconds)]
