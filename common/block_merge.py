"""Merging small blocks (the `blocks` layout): which to merge, and into what. Pure; the store reads
and writes (CassandraStore.merge_small_blocks), the workers decide when (workers.merging).

A chatty container in small batches makes small blocks: a second's lines each, compressed alone,
with their metadata and a Cassandra row apiece. Once written long enough ago that no retry or
late line is likely to add to them (BLOCK_MERGE_AFTER_SECONDS), a partition's small blocks are
read, merged by identity (common.blocks.cut_blocks: sorted, one line per identity), cut again
into blocks of the usual bounds, written, and only then deleted.

Why this is safe to interrupt anywhere and to run twice, or twice at once:
- the merged blocks are written before any input is deleted, and a read drops a repeated
  identity, so between the two steps every line reads once, from either copy;
- block ids are digests of the lines' identities: the same inputs always make the same blocks,
  so a merge run again after a crash upserts the rows it wrote before, and then deletes;
- only blocks it read are deleted, and never one whose key is also an output; a block written
  meanwhile (a retry, a late line) is not an input and stays;
- a merged block lives no longer than its lines would have: it is written with the shortest TTL
  its inputs had left (nothing is resurrected past its TTL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from common import blocks
from common.partitions import PartitionKey

# A block with fewer lines than this, spanning under half the span bound, may grow by merging.
SMALL_BLOCK_LINES = blocks.BLOCK_MAX_LINES // 4
# Lines read into memory at once by one merge (inputs are taken in time order up to this).
MERGE_MAX_LINES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class BlockSummary:
    """A stored block without its data: key, bounds, size, and WRITETIME/TTL of its data cell."""

    first_ts: int
    block_id: int
    max_ts: int
    line_count: int
    written_us: int
    ttl_seconds: int | None

    @property
    def key(self) -> tuple[int, int]:
        return self.first_ts, self.block_id


@dataclasses.dataclass(frozen=True)
class MergePlan:
    inputs: list[BlockSummary]
    writes: list[blocks.Block]  # the merged blocks not already stored under the same key
    deletes: list[tuple[int, int]]  # inputs' keys that no merged block reuses
    ttl_seconds: int | None  # for the writes: the shortest TTL the inputs had left


@dataclasses.dataclass
class MergeOutcome:
    """What one partition's merge did: blocks read and merged, blocks written, lines in them, and
    the small blocks written after the cut-off (a later merge's)."""

    blocks_in: int = 0
    blocks_out: int = 0
    lines: int = 0
    small_later: int = 0

    def add(self, merge: MergePlan) -> MergeOutcome:
        return MergeOutcome(self.blocks_in + len(merge.inputs), self.blocks_out + len(merge.writes),
                            self.lines + sum(b.line_count for b in merge.writes), self.small_later)


def partitions_left_small(lines_per_partition: dict[PartitionKey, int]) -> list[PartitionKey]:
    """The partitions one write made small blocks in (fewer than SMALL_BLOCK_LINES lines)."""
    return [partition for partition, lines in lines_per_partition.items() if lines < SMALL_BLOCK_LINES]


def is_small(block: BlockSummary) -> bool:
    return block.line_count < SMALL_BLOCK_LINES and block.max_ts - block.first_ts < blocks.BLOCK_SPAN_NS // 2


def settled_small_blocks(summaries: Iterable[BlockSummary], written_before_us: int) -> list[BlockSummary]:
    """The small blocks written before the cut-off, in time order."""
    return sorted((b for b in summaries if is_small(b) and b.written_us < written_before_us), key=lambda b: b.key)


def chunks(small: Sequence[BlockSummary], max_lines: int = MERGE_MAX_LINES) -> list[list[BlockSummary]]:
    """Consecutive runs of the small blocks, each up to max_lines lines, worth merging (2 or more)."""
    runs: list[list[BlockSummary]] = [[]]
    lines = 0
    for block in small:
        if runs[-1] and lines + block.line_count > max_lines:
            runs.append([])
            lines = 0
        runs[-1].append(block)
        lines += block.line_count
    return [run for run in runs if len(run) > 1]


def plan(inputs: Sequence[BlockSummary], decoded: Sequence[blocks.DecodedBlock]) -> MergePlan | None:
    """What merging these blocks (decoded: their data, in the same order) writes and deletes; None
    when it would not make fewer blocks (nothing to gain: nothing is rewritten)."""
    merged = blocks.cut_blocks(blocks.lines_of(decoded))
    if len(merged) >= len(inputs):
        return None
    input_keys = {block.key for block in inputs}
    output_keys = {(block.first_ts, block.block_id) for block in merged}
    ttls = [block.ttl_seconds for block in inputs if block.ttl_seconds]
    return MergePlan(
        inputs=list(inputs),
        writes=[block for block in merged if (block.first_ts, block.block_id) not in input_keys],
        deletes=[block.key for block in inputs if block.key not in output_keys],
        ttl_seconds=min(ttls) if ttls else None,
    )
