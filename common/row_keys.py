"""Deterministic Cassandra keys for log rows: which partition (bucket) and which clustering id.

The seed keyed rows by a millisecond timestamp, so two lines of one container in the same
millisecond overwrote each other. Here a row is keyed by (ts_ns, line_id):
- line_id's high bits are the line's position among the lines of its batch that share its
  container and nanosecond, so such lines read back in the order they were sent (a stack trace
  stamped in one millisecond stays in order);
- its low 47 bits hash the line's stream and text, so distinct lines never collide on a position.
The same batch written twice (a retried request, a re-run job) yields the same keys: one row each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from common.records import LogRow
from common.timestamps import NS_PER_SECOND

HASH_BITS = 47
MAX_POSITION = (1 << (63 - HASH_BITS)) - 1  # 65,535: beyond that, order among equal stamps is by hash
_HASH_MASK = (1 << HASH_BITS) - 1

PartitionKey = tuple[str, str, str, int]


def bucket_of(ts_ns: int, bucket_seconds: int) -> int:
    """Start (epoch seconds) of the time bucket holding ts_ns."""
    seconds = ts_ns // NS_PER_SECOND
    return seconds - seconds % bucket_seconds


def content_hash(stream: str | None, log: str) -> int:
    digest = hashlib.blake2b(f"{stream or ''}\x00{log}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _HASH_MASK


def line_ids(rows: Iterable[LogRow]) -> Iterator[int]:
    """One line_id per row, in order; depends only on the batch's content and order."""
    seen: dict[tuple[str, str, str, int], int] = {}
    for row in rows:
        stamp = (row.namespace, row.pod_name, row.container_name, row.ts_ns)
        position = seen.get(stamp, 0)
        seen[stamp] = position + 1
        yield (min(position, MAX_POSITION) << HASH_BITS) | content_hash(row.stream, row.log)


def partition_key(row: LogRow, bucket_seconds: int) -> PartitionKey:
    return (row.namespace, row.pod_name, row.container_name, bucket_of(row.ts_ns, bucket_seconds))
