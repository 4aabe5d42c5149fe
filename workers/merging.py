"""A worker's maintenance pass merges the small blocks that are due (BLOCK_MERGE_AFTER_SECONDS).

One worker per pass does it (the orphan-scan lock), for at most MERGE_PARTITIONS_PER_PASS partitions
and about MERGE_PASS_SECONDS, so merging never starves ingest: a backlog of candidates is worked
off over several passes, oldest first. How a merge stays safe: common/block_merge.py.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from common.merge_candidates import MergeCandidates
from common.metrics import WorkerMetrics
from common.store import CassandraStore

log = logging.getLogger(__name__)

MERGE_PARTITIONS_PER_PASS = 50
MERGE_PASS_SECONDS = 2.0


@dataclasses.dataclass
class MergePass:
    partitions: int = 0
    blocks_in: int = 0
    blocks_out: int = 0


def merge_due(store: CassandraStore, candidates: MergeCandidates, after_seconds: int, metrics: WorkerMetrics, *,
              clock: Callable[[], float] = time.time, budget_seconds: float = MERGE_PASS_SECONDS) -> MergePass:
    """Merge the due partitions' small blocks written before now - after_seconds. Raises the
    store's StoreUnavailable (the pass ends; the candidates stay) and Redis errors."""
    now = clock()
    cutoff = now - after_seconds
    deadline = time.monotonic() + budget_seconds
    done = MergePass()
    for partition in candidates.due(cutoff, MERGE_PARTITIONS_PER_PASS):
        if time.monotonic() > deadline:
            break
        outcome = store.merge_small_blocks(partition, int(cutoff * 1_000_000))
        candidates.done(partition, again_at=now if outcome.small_later else None)
        done.partitions += 1
        done.blocks_in += outcome.blocks_in
        done.blocks_out += outcome.blocks_out
    if done.blocks_in:
        metrics.blocks_merged.labels("in").inc(done.blocks_in)
        metrics.blocks_merged.labels("out").inc(done.blocks_out)
        log.info("event=blocks_merged partitions=%d blocks_in=%d blocks_out=%d", done.partitions, done.blocks_in,
                 done.blocks_out)
    return done
