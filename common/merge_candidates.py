"""The partitions a write left with small blocks, waiting to be merged (a Redis sorted set).

A worker notes each partition it wrote fewer than SMALL_BLOCK_LINES lines of (in the `blocks`
layout), scored by the time it first did so since the last merge: ZADD NX, so a chatty container
writing every second becomes due BLOCK_MERGE_AFTER_SECONDS after its first small block, not never.
A merge takes the due ones; an entry is dropped once merged, or noted again at once when that
partition has small blocks too recent for this merge. Losing an entry (Redis lost, a crash
between the merge and the drop) costs a merge, never a line: small blocks read as well as big ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

from common.partitions import PartitionKey
from common.redis_keys import merge_candidates_key


class MergeCandidates:
    def __init__(self, connection: redis.Redis, queue_name: str):
        self._redis = connection
        self._key = merge_candidates_key(queue_name)

    def note(self, partitions: Iterable[PartitionKey], now: float) -> None:
        members = {json.dumps(list(partition)): now for partition in partitions}
        if members:
            self._redis.zadd(self._key, members, nx=True)

    def due(self, settled_before: float, limit: int) -> list[PartitionKey]:
        """The partitions noted before `settled_before` (oldest first), at most `limit`."""
        members = self._redis.zrangebyscore(self._key, "-inf", settled_before, start=0, num=limit)
        return [tuple(json.loads(member)) for member in members]

    def done(self, partition: PartitionKey, again_at: float | None = None) -> None:
        """Merged: drop the entry, or (again_at) keep it due later, for small blocks left to merge."""
        member = json.dumps(list(partition))
        if again_at is None:
            self._redis.zrem(self._key, member)
        else:
            self._redis.zadd(self._key, {member: again_at})

    def count(self) -> int:
        return self._redis.zcard(self._key)
