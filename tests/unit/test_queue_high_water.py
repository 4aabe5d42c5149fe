"""The high-water mark: checked against the queue length the last enqueue read, re-read from Redis
once that is older than QUEUE_LENGTH_MAX_AGE_SECONDS (time from the injected clock)."""

from __future__ import annotations

import fakeredis
import pytest

from common.queue import QUEUE_LENGTH_MAX_AGE_SECONDS, BatchQueue, QueueFull
from common.records import LogRow
from common.settings import Settings

ROWS = [LogRow("ns", "pod", "c", 1, "line")]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_length_below_the_mark_is_trusted_and_an_old_one_is_read_again():
    clock, redis = Clock(), fakeredis.FakeRedis()
    settings = Settings(queue_high_water_mark=2)
    queue = BatchQueue(redis, settings, monotonic=clock)
    queue.enqueue(ROWS)  # reads the length: 1 batch
    BatchQueue(redis, settings).enqueue(ROWS)  # another API process: 2 batches, at the mark
    queue.enqueue(ROWS)  # the length it read is fresh and below the mark
    clock.now += QUEUE_LENGTH_MAX_AGE_SECONDS + 0.1
    with pytest.raises(QueueFull):
        queue.enqueue(ROWS)
