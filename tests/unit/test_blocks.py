"""common.blocks: lines cut into compressed blocks and read back merged, each identity once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from common.blocks import (BLOCK_SPAN_NS, PartitionLines, cut_blocks, decode_block, group_by_partition,
                           merge_blocks)
from common.container_lines import ContainerLines, group_rows
from common.log_store import LogLine
from common.records import LogRow
from common.row_keys import container_line_ids, content_line_id
from common.schema import LINE_ID_MAX, LINE_ID_MIN

NOON_NS = 1_773_489_600 * 10**9
EVERYTHING = ((LINE_ID_MIN, LINE_ID_MIN), (LINE_ID_MAX, LINE_ID_MAX))


def partition_lines(lines: list[tuple[int, int, str]], stream: str | None = "stdout") -> PartitionLines:
    part = PartitionLines()
    part.metas.append(("node-1", None, None, {"app": "web"}))
    for ts, line_id, log in lines:
        part.ts.append(ts)
        part.line_ids.append(line_id)
        part.logs.append(log)
        part.streams.append(stream)
        part.meta_of.append(0)
    return part


def with_ids(containers: list[ContainerLines]) -> list[tuple[ContainerLines, list[int]]]:
    return [(container, container_line_ids(container)) for container in containers]


def stored(blocks) -> list[tuple[int, int, bytes]]:
    """Blocks as a partition read gives them: (first_ts, max_ts, data) in clustering order."""
    return [(b.first_ts, b.max_ts, b.data) for b in sorted(blocks, key=lambda b: (b.first_ts, b.block_id))]


def read(blocks, low=EVERYTHING[0], high=EVERYTHING[1], *, backward=False) -> list[tuple[int, int, str]]:
    rows = stored(blocks)
    if backward:
        rows.reverse()
    return [(line.ts_ns, line.line_id, line.log)
            for line in merge_blocks(rows, low, high, backward=backward, pod_name="web-1", container_name="app")]


def test_a_block_keeps_every_column_of_its_lines():
    part = partition_lines([(NOON_NS + 2, 7, "b"), (NOON_NS + 1, 9, "a")], stream=None)
    (block,) = cut_blocks(part)
    decoded = decode_block(block.data)
    assert (block.first_ts, block.max_ts, block.line_count) == (NOON_NS + 1, NOON_NS + 2, 2)
    assert decoded.ts == [NOON_NS + 1, NOON_NS + 2]
    assert decoded.line_ids == [9, 7]
    assert decoded.logs == ["a", "b"]
    assert decoded.streams == [None, None]
    assert [decoded.metas[m] for m in decoded.meta_of] == [("node-1", None, None, {"app": "web"})] * 2


def test_the_same_lines_always_make_the_same_blocks():
    lines = [(NOON_NS + i, i, f"line {i}") for i in range(10)]
    assert cut_blocks(partition_lines(lines), max_lines=4) == cut_blocks(partition_lines(lines), max_lines=4)


def test_a_repeated_identity_in_one_batch_keeps_its_last_line():
    (block,) = cut_blocks(partition_lines([(NOON_NS, 1, "first"), (NOON_NS, 1, "second")]))
    assert decode_block(block.data).logs == ["second"]


def test_a_block_never_spans_more_than_the_span_bound():
    lines = [(NOON_NS, 1, "a"), (NOON_NS + BLOCK_SPAN_NS - 1, 2, "b"), (NOON_NS + BLOCK_SPAN_NS, 3, "late")]
    blocks = cut_blocks(partition_lines(lines))
    assert [(b.first_ts, b.line_count) for b in blocks] == [(NOON_NS, 2), (NOON_NS + BLOCK_SPAN_NS, 1)]


def test_block_boundaries_inside_a_run_of_equal_times_read_back_in_order():
    lines = [(NOON_NS, line_id, f"same instant {line_id}") for line_id in range(10)]
    blocks = cut_blocks(partition_lines(lines), max_lines=3)
    assert len(blocks) == 4 and len({b.first_ts for b in blocks}) == 1
    assert read(blocks) == lines
    assert read(blocks, backward=True) == lines[::-1]


def test_a_cursor_inside_a_block_resumes_exactly_after_it_both_ways():
    lines = [(NOON_NS + i // 3, i, f"line {i}") for i in range(12)]
    blocks = cut_blocks(partition_lines(lines))
    assert len(blocks) == 1
    after = lines[4]
    assert read(blocks, low=(after[0], after[1] + 1)) == lines[5:]
    assert read(blocks, high=(after[0], after[1] - 1), backward=True) == lines[:4][::-1]


def test_overlapping_blocks_of_two_senders_merge_in_order():
    first = [(NOON_NS + 2 * i, i, f"sender a {i}") for i in range(50)]
    second = [(NOON_NS + 2 * i + 1, 100 + i, f"sender b {i}") for i in range(50)]
    blocks = cut_blocks(partition_lines(first)) + cut_blocks(partition_lines(second))
    assert read(blocks) == sorted(first + second)
    assert read(blocks, backward=True) == sorted(first + second, reverse=True)


def test_a_late_line_in_an_old_blocks_range_reads_in_its_place():
    old = [(NOON_NS + 10 * i, i, f"line {i}") for i in range(20)]
    late = [(NOON_NS + 55, 999, "late")]
    blocks = cut_blocks(partition_lines(old)) + cut_blocks(partition_lines(late))
    assert read(blocks) == sorted(old + late)
    assert read(blocks, backward=True) == sorted(old + late, reverse=True)


def test_a_batch_re_sent_cut_three_ways_reads_each_line_once():
    lines = [(NOON_NS + i // 4, i, f"line {i}") for i in range(40)]
    blocks = [*cut_blocks(partition_lines(lines)),
              *cut_blocks(partition_lines(lines[:13])), *cut_blocks(partition_lines(lines[13:])),
              *(block for start in range(0, 40, 7) for block in cut_blocks(partition_lines(lines[start:start + 7])))]
    assert read(blocks) == lines
    assert read(blocks, backward=True) == lines[::-1]


def test_threads_decoding_blocks_at_once_each_get_their_own_lines():
    blocks = [cut_blocks(partition_lines([(NOON_NS + i, i, f"thread {t} line {i}") for i in range(2000)]))[0]
              for t in range(8)]
    with ThreadPoolExecutor(8) as pool:
        decoded = list(pool.map(lambda block: [decode_block(block.data).logs for _ in range(20)], blocks))
    assert all(logs == [[f"thread {t} line {i}" for i in range(2000)]] * 20 for t, logs in enumerate(decoded))


def test_lines_group_by_partition_with_their_metadata_once():
    rows = [LogRow("ns", "web-1", "app", NOON_NS + i, f"l{i}", "stdout", "node-1", labels={"app": "web"})
            for i in range(3)]
    rows.append(LogRow("ns", "web-2", "app", NOON_NS, "other", None))
    groups = group_by_partition(with_ids(group_rows(rows)), 3600)
    assert sorted(groups) == [("ns", "web-1", "app", NOON_NS // 10**9), ("ns", "web-2", "app", NOON_NS // 10**9)]
    web1 = groups[("ns", "web-1", "app", NOON_NS // 10**9)]
    assert web1.metas == [("node-1", None, None, {"app": "web"})] and web1.meta_of == [0, 0, 0]
    assert web1.series() == {("stdout", (("app", "web"),))}


def test_a_container_straddling_buckets_is_split_between_its_partitions():
    hour = 3600 * 10**9
    rows = [LogRow("ns", "web-1", "app", NOON_NS + offset, log, "stdout")
            for offset, log in [(hour - 1, "last of the first hour"), (hour, "first of the next"), (0, "late")]]
    groups = group_by_partition(with_ids(group_rows(rows)), 3600)
    first, second = ("ns", "web-1", "app", NOON_NS // 10**9), ("ns", "web-1", "app", NOON_NS // 10**9 + 3600)
    assert groups[first].logs == ["last of the first hour", "late"] and groups[second].logs == ["first of the next"]
    assert groups[first].line_ids == [content_line_id(0, "stdout", "last of the first hour"),
                                      content_line_id(0, "stdout", "late")]


def test_two_batches_of_one_container_share_its_partition_and_its_metadata_entries():
    old_pod = ("node-1", None, None, {"app": "web"})
    batch_1 = group_rows([LogRow("ns", "web-1", "app", NOON_NS, "a", "stdout", *old_pod)])
    batch_2 = group_rows([LogRow("ns", "web-1", "app", NOON_NS + 1, "b", "stdout", "node-2", None, None, {"app": "web"}),
                          LogRow("ns", "web-1", "app", NOON_NS + 2, "c", "stdout", *old_pod)])
    (part,) = group_by_partition([*with_ids(batch_1), *with_ids(batch_2)], 3600).values()
    assert part.logs == ["a", "b", "c"]
    assert part.metas == [old_pod, ("node-2", None, None, {"app": "web"})] and part.meta_of == [0, 1, 0]


line_lists = st.lists(
    st.tuples(st.sampled_from([0, 1, 2, 5, BLOCK_SPAN_NS, 2 * BLOCK_SPAN_NS + 3]), st.integers(0, 5)),
    min_size=1, max_size=40, unique=True,
)


@settings(max_examples=300, deadline=None)
@given(keys=line_lists, cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 40)), min_size=1, max_size=5),
       max_lines=st.integers(1, 8), low=st.integers(-1, 40), high=st.integers(-1, 40), backward=st.booleans())
def test_any_blocks_of_any_cuts_read_back_as_each_line_once_in_order(keys, cuts, max_lines, low, high, backward):
    lines = sorted((NOON_NS + ts, line_id, f"{ts}/{line_id}") for ts, line_id in keys)
    blocks = [block for start, length in cuts
              for block in (cut_blocks(partition_lines(lines[start:start + length]), max_lines=max_lines)
                            if lines[start:start + length] else [])]
    sent = {line for start, length in cuts for line in lines[start:start + length]}
    bounds = sorted(((lines[low % len(lines)][0], low % 7 - 1), (lines[high % len(lines)][0], high % 7 - 1)))
    expected = sorted(line for line in sent if bounds[0] <= line[:2] <= bounds[1])
    assert read(blocks, *bounds, backward=backward) == (expected[::-1] if backward else expected)
