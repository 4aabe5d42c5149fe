"""Where a line lives in the store: its partition (namespace, pod, container, time bucket).

A leaf (no imports of the project's own besides timestamps): ingest, the store and the query
planner all derive buckets the same way from here.
"""

from __future__ import annotations

from common.timestamps import NS_PER_SECOND

PartitionKey = tuple[str, str, str, int]  # (namespace, pod_name, container_name, bucket)


def bucket_of(ts_ns: int, bucket_seconds: int) -> int:
    """Start (epoch seconds) of the time bucket holding ts_ns."""
    seconds = ts_ns // NS_PER_SECOND
    return seconds - seconds % bucket_seconds
