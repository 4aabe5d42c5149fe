"""The compiled block cutting (common._native `partition_blocks`, native/src/blocks.rs) against its
Python reference (common.blocks: group_by_partition, cut_blocks, encode_block, series).

Both must give the same partitions in the same order, the same blocks (first_ts, block_id, max_ts,
line count, and columns that decode alike) and the same series: a block's key is its identity in
Cassandra, so a batch written by either, then retried by the other, upserts the same rows."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import workload
from common import blocks
from common.container_lines import ContainerLines
from common.native import native
from common.queue import decode_payload, encode_payload
from common.records import BatchDecoder
from common.row_keys import container_line_ids
from common.timestamps import NS_PER_SECOND

DAY = 86_400
BUCKET_EDGE_NS = 1_773_446_400 * NS_PER_SECOND  # 2026-03-14T00:00:00Z, a day bucket's start


@pytest.fixture(scope="module")
def compiled():
    module = native()
    assert module is not None, "common._native is not built: `make install` builds it (needs cargo)"
    return module


def columns(data: bytes, *, compressed: bool) -> blocks._Columns:
    codec = blocks._codec
    return codec.decoder.decode(codec.decompressor.decompress(data) if compressed else data)


def python_result(containers, bucket_seconds, max_lines, max_text):
    return [(key, len(lines.ts),
             [(b.first_ts, b.block_id, b.max_ts, b.line_count, columns(b.data, compressed=True))
              for b in blocks.cut_blocks(lines, max_lines=max_lines, max_text_bytes=max_text)],
             set(lines.series()))
            for key, lines in blocks.group_by_partition(containers, bucket_seconds).items()]


def compiled_result(compiled, containers, bucket_seconds, max_lines, max_text):
    return [(key, count, [(*head, columns(data, compressed=False)) for *head, data in cut], set(series))
            for key, count, cut, series in compiled.partition_blocks(
                containers, bucket_seconds, max_lines, max_text, blocks.BLOCK_SPAN_NS)]


def assert_same_as_python(compiled, containers, bucket_seconds=DAY, max_lines=blocks.BLOCK_MAX_LINES,
                          max_text=blocks.BLOCK_MAX_TEXT_BYTES):
    expected = python_result(containers, bucket_seconds, max_lines, max_text)
    assert compiled_result(compiled, containers, bucket_seconds, max_lines, max_text) == expected


def with_ids(containers: list[ContainerLines]) -> list[tuple[ContainerLines, list[int]]]:
    return [(container, container_line_ids(container)) for container in containers]


def queued_containers(bodies: list[bytes]) -> list[ContainerLines]:
    decoder = BatchDecoder(16384)
    return [c for body in bodies
            for c in decode_payload(encode_payload(decoder.decode(body, "application/json").rows, 0)).lines.containers]


def test_a_write_of_the_bench_corpus_cuts_the_same_blocks(compiled):
    assert_same_as_python(compiled, with_ids(queued_containers(workload.bodies("ns", 4))))


def test_small_bounds_cut_the_same_blocks(compiled):
    containers = with_ids(queued_containers(workload.bodies("ns", 2)))
    assert_same_as_python(compiled, containers, max_lines=37)
    assert_same_as_python(compiled, containers, max_text=2_000)


def test_partition_blocks_compresses_what_the_compiled_cut_gives(compiled):
    containers = with_ids(queued_containers(workload.bodies("ns", 1)))
    written = blocks.partition_blocks(containers, DAY)
    assert [(p.key, p.line_count, [(*b[:4], columns(b.data, compressed=True)) for b in p.blocks], set(p.series))
            for p in written] == python_result(containers, DAY, blocks.BLOCK_MAX_LINES, blocks.BLOCK_MAX_TEXT_BYTES)


def test_without_the_compiled_module_partition_blocks_is_the_python_rule(monkeypatch):
    containers = with_ids(queued_containers(workload.bodies("ns", 1)))
    monkeypatch.setattr(blocks, "native", lambda: None)
    assert blocks.partition_blocks(containers, DAY) == blocks.python_partition_blocks(containers, DAY)


def test_metadata_equal_but_for_its_labels_order_is_one_value_in_a_block(compiled):
    """Python compares metadata as tuples holding dicts: the same labels in another order are equal."""
    first = ContainerLines("ns", "pod", "app", [("node", None, None, {"app": "web", "tier": "db"})],
                           [BUCKET_EDGE_NS], ["a"], ["stdout"], [0])
    second = ContainerLines("ns", "pod", "app", [("node", None, None, {"tier": "db", "app": "web"})],
                            [BUCKET_EDGE_NS + 1], ["b"], ["stdout"], [0])
    containers = [(first, [1]), (second, [2])]
    assert_same_as_python(compiled, containers)
    [(_, _, [(*_, block)], series)] = compiled_result(compiled, containers, DAY, 10, 100)
    assert block.metas == [("node", None, None, {"app": "web", "tier": "db"})] and block.meta_of == [0, 0]
    assert series == {("stdout", (("app", "web"), ("tier", "db")))}


def test_columns_that_disagree_in_length_are_refused(compiled):
    lines = ContainerLines("ns", "pod", "app", [(None, None, None, None)], [1, 2], ["a"], [None], [0])
    with pytest.raises(ValueError, match="differ in length"):
        compiled.partition_blocks([(lines, [1, 2])], DAY, 10, 10, blocks.BLOCK_SPAN_NS)


def test_a_container_without_lines_is_refused_as_python_refuses_it(compiled):
    empty = ContainerLines("ns", "pod", "app", [], [], [], [], [])
    with pytest.raises(ValueError, match="without lines"):
        compiled.partition_blocks([(empty, [])], DAY, 10, 10, blocks.BLOCK_SPAN_NS)
    with pytest.raises(ValueError):
        blocks.python_partition_blocks([(empty, [])], DAY)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
label_items = st.lists(st.tuples(st.sampled_from(["app", "tier", "ü"]), st.sampled_from(["web", "db", ""])),
                       max_size=3, unique_by=lambda item: item[0])
metas = st.tuples(st.sampled_from([None, "node-1", "node-2"]), st.sampled_from([None, "uid"]), st.just(None),
                  st.one_of(st.none(), label_items.map(dict)))
# Times that repeat, cross a day bucket's edge and a block's 60 s span; ids that repeat.
stamps = st.sampled_from([BUCKET_EDGE_NS - 1, BUCKET_EDGE_NS, BUCKET_EDGE_NS + 1, BUCKET_EDGE_NS + 59 * NS_PER_SECOND,
                          BUCKET_EDGE_NS + 60 * NS_PER_SECOND, BUCKET_EDGE_NS + 61 * NS_PER_SECOND, 0])
ids = st.sampled_from([0, 1, 2, (1 << 62) + 5, (1 << 63) - 1])


@st.composite
def containers(draw):
    names = draw(st.tuples(st.sampled_from(["ns", "other"]), st.sampled_from(["pod-a", "pod-b"]), st.just("app")))
    container_metas = draw(st.lists(metas, min_size=1, max_size=3))
    lines = draw(st.lists(st.tuples(stamps, ids, texts, st.sampled_from([None, "stdout", "stderr"]),
                                    st.integers(0, len(container_metas) - 1)), min_size=1, max_size=12))
    ts, line_ids, logs, streams, meta_of = (list(column) for column in zip(*lines))
    return ContainerLines(*names, container_metas, ts, logs, streams, meta_of), line_ids


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(containers(), min_size=1, max_size=5), st.sampled_from([DAY, 60, 3600]),
       st.sampled_from([1, 2, 3, 4096]), st.sampled_from([0, 5, 20, 1 << 20]))
def test_any_containers_cut_the_same_blocks(compiled, batch, bucket_seconds, max_lines, max_text):
    assert_same_as_python(compiled, batch, bucket_seconds, max_lines, max_text)
