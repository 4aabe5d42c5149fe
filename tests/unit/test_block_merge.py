"""common.block_merge: which small blocks to merge, and what merging them writes and deletes."""

from __future__ import annotations

import dataclasses

from common import block_merge
from common.block_merge import SMALL_BLOCK_LINES, BlockSummary, chunks, plan, settled_small_blocks
from common.blocks import BLOCK_SPAN_NS, cut_blocks, decode_block
from tests.unit.test_blocks import NOON_NS, partition_lines, read

SECOND = 10**9


def small_blocks(count: int, lines_each: int = 10, *, step_ns: int = 10**6, ttl: int | None = None,
                 written_us: int = 1) -> tuple[list[BlockSummary], list]:
    """`count` blocks of consecutive lines of one container, as the store would summarize them."""
    made, summaries = [], []
    for b in range(count):
        lines = [(NOON_NS + (b * lines_each + i) * step_ns, b * lines_each + i, f"line {b * lines_each + i}")
                 for i in range(lines_each)]
        (block,) = cut_blocks(partition_lines(lines))
        made.append(block)
        summaries.append(BlockSummary(block.first_ts, block.block_id, block.max_ts, block.line_count, written_us, ttl))
    return summaries, made


def test_consecutive_small_blocks_merge_into_one_holding_every_line_once():
    summaries, made = small_blocks(5)
    merge = plan(summaries, [decode_block(b.data) for b in made])
    (merged,) = merge.writes
    assert merged.line_count == 50
    assert read([merged]) == read(made)
    assert sorted(merge.deletes) == sorted(s.key for s in summaries)


def test_a_line_in_two_input_blocks_is_merged_once():
    summaries, made = small_blocks(2)
    again_summaries, again = small_blocks(1)  # block 0 again: the same identities, e.g. a retried write
    merge = plan(summaries + again_summaries, [decode_block(b.data) for b in made + again])
    assert sum(b.line_count for b in merge.writes) == 20


def test_nothing_is_rewritten_when_merging_would_not_make_fewer_blocks():
    # each block spans most of the span bound: no two fit in one
    summaries, made = small_blocks(2, lines_each=2, step_ns=BLOCK_SPAN_NS // 2 + SECOND)
    assert plan(summaries, [decode_block(b.data) for b in made]) is None


def test_an_input_the_merge_makes_again_is_neither_rewritten_nor_deleted():
    summaries, made = small_blocks(3)
    whole = cut_blocks(partition_lines([(NOON_NS + i * 10**6, i, f"line {i}") for i in range(30)]))[0]
    kept = BlockSummary(whole.first_ts, whole.block_id, whole.max_ts, whole.line_count, 1, None)
    merge = plan(summaries + [kept], [decode_block(b.data) for b in made + [whole]])
    assert merge.writes == []
    assert kept.key not in merge.deletes and len(merge.deletes) == 3


def test_a_merged_block_keeps_the_shortest_ttl_its_inputs_had_left():
    summaries, made = small_blocks(3, ttl=500)
    summaries[1] = dataclasses.replace(summaries[1], ttl_seconds=120)
    assert plan(summaries, [decode_block(b.data) for b in made]).ttl_seconds == 120


def test_blocks_without_a_ttl_merge_into_a_block_without_one():
    summaries, made = small_blocks(3, ttl=None)
    assert plan(summaries, [decode_block(b.data) for b in made]).ttl_seconds is None


def test_only_small_blocks_written_before_the_cut_off_are_taken_in_time_order():
    old, _ = small_blocks(3, written_us=100)
    recent = BlockSummary(NOON_NS, 1, NOON_NS, 1, written_us=200, ttl_seconds=None)
    big = BlockSummary(NOON_NS, 2, NOON_NS + 1, SMALL_BLOCK_LINES, written_us=100, ttl_seconds=None)
    wide = BlockSummary(NOON_NS, 3, NOON_NS + BLOCK_SPAN_NS // 2, 2, written_us=100, ttl_seconds=None)
    taken = settled_small_blocks(list(reversed(old)) + [recent, big, wide], written_before_us=150)
    assert taken == old


def test_runs_are_bounded_in_lines_and_a_run_of_one_is_left_alone():
    summaries, _ = small_blocks(5, lines_each=10)
    assert [len(run) for run in chunks(summaries, max_lines=20)] == [2, 2]  # the fifth alone: nothing to merge
    assert [len(run) for run in chunks(summaries)] == [5]


def test_metadata_of_several_blocks_is_kept_line_by_line():
    first = partition_lines([(NOON_NS, 1, "a")])
    second = partition_lines([(NOON_NS + 1, 2, "b")])
    second.metas[0] = ("node-2", "pod-id", None, {"app": "api"})
    lines = block_merge.blocks.lines_of([decode_block(cut_blocks(first)[0].data), decode_block(cut_blocks(second)[0].data)])
    (merged,) = cut_blocks(lines)
    decoded = decode_block(merged.data)
    assert [decoded.metas[m] for m in decoded.meta_of] == [("node-1", None, None, {"app": "web"}),
                                                           ("node-2", "pod-id", None, {"app": "api"})]


def test_a_write_notes_the_partitions_it_left_small_blocks_in():
    written = {("ns", "busy", "c", 0): SMALL_BLOCK_LINES, ("ns", "quiet", "c", 0): 1, ("ns", "quiet", "c", 3600): 2}
    assert block_merge.partitions_left_small(written) == [("ns", "quiet", "c", 0), ("ns", "quiet", "c", 3600)]
