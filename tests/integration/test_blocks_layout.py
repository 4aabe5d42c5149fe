"""The `blocks` layout (CASSANDRA_LAYOUT=blocks) on the real Cassandra: what cutting lines into
blocks must never show a reader (a line twice, a line missing, a line out of order), and the dual
read of a keyspace that held rows before blocks."""

from __future__ import annotations

import uuid

import pytest

from common.blocks import BLOCK_MAX_LINES, BLOCK_SPAN_NS
from common.log_store import Direction
from common.partitions import bucket_of
from common.records import LogRow
from common.schema import BLOCK_TABLE, LINE_ID_MAX, LINE_ID_MIN

pytestmark = pytest.mark.integration

T0 = 1_760_000_400 * 10**9  # the start of an hour bucket
BUCKET = bucket_of(T0, 3600)
WHOLE = ((0, LINE_ID_MIN), (2**63 - 1, LINE_ID_MAX))


@pytest.fixture
def namespace() -> str:
    return f"blocks-{uuid.uuid4().hex[:10]}"


def lines_of(namespace: str, count: int, *, ts=lambda i: T0 + i, text="line {}", offset_base=0) -> list[LogRow]:
    """`count` lines of one container, each with a file offset (so its identity is the same however
    a batch holding it is cut)."""
    return [LogRow(namespace, "web", "app", ts(i), text.format(i), "stdout", offset=offset_base + 100 * i,
                   log_file="/var/log/containers/web.log") for i in range(count)]


def read(store, namespace, low=WHOLE[0], high=WHOLE[1], *, direction=Direction.FORWARD, page_size=1000):
    return list(store.read_range((namespace, "web", "app", BUCKET), low, high, direction=direction,
                                 page_size=page_size))


def logs(lines) -> list[str]:
    return [line.log for line in lines]


def block_count(store, keyspace: str, namespace: str) -> int:
    (count,) = store.connect().execute(
        f"SELECT COUNT(*) FROM {keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND pod_name = 'web' "
        "AND container_name = 'app' AND bucket = %s", (namespace, BUCKET), timeout=60).one()
    return count


def test_a_run_of_equal_times_split_across_blocks_reads_in_order_both_ways(real_blocks_store, integration_settings,
                                                                           namespace):
    rows = lines_of(namespace, BLOCK_MAX_LINES + 500, ts=lambda i: T0 + 5)
    real_blocks_store.write(rows)
    assert block_count(real_blocks_store, integration_settings.cassandra_keyspace, namespace) == 2
    expected = [row.log for row in rows]
    assert logs(read(real_blocks_store, namespace, page_size=300)) == expected
    assert logs(read(real_blocks_store, namespace, direction=Direction.BACKWARD, page_size=300)) == expected[::-1]


def test_overlapping_blocks_of_two_senders_read_as_one_ordered_stream(real_blocks_store, namespace):
    first = lines_of(namespace, 300, ts=lambda i: T0 + 2 * i, text="sender a {}")
    second = lines_of(namespace, 300, ts=lambda i: T0 + 2 * i + 1, text="sender b {}", offset_base=10**6)
    real_blocks_store.write(first)
    real_blocks_store.write(second)
    expected = [line.log for line in sorted(first + second, key=lambda row: row.ts_ns)]
    assert logs(read(real_blocks_store, namespace, page_size=50)) == expected
    assert logs(read(real_blocks_store, namespace, direction=Direction.BACKWARD, page_size=50)) == expected[::-1]


def test_a_batch_re_sent_cut_three_ways_reads_each_line_exactly_once(real_blocks_store, namespace):
    rows = lines_of(namespace, 600, ts=lambda i: T0 + i // 3)
    real_blocks_store.write(rows)
    real_blocks_store.write(rows[:250])
    real_blocks_store.write(rows[250:])
    for start in range(0, 600, 170):
        real_blocks_store.write(rows[start:start + 170])
    lines = read(real_blocks_store, namespace, page_size=100)
    assert logs(lines) == [row.log for row in rows]
    assert len({(line.ts_ns, line.line_id) for line in lines}) == 600


def test_a_late_line_in_an_old_blocks_range_reads_in_its_place(real_blocks_store, namespace):
    old = lines_of(namespace, 100, ts=lambda i: T0 + 10 * i)
    late = LogRow(namespace, "web", "app", T0 + 555, "late line", "stdout", offset=10**6,
                  log_file="/var/log/containers/web.log")
    real_blocks_store.write(old)
    real_blocks_store.write([late])
    expected = [row.log for row in sorted([*old, late], key=lambda row: row.ts_ns)]
    assert expected[56] == "late line"
    assert logs(read(real_blocks_store, namespace)) == expected
    assert logs(read(real_blocks_store, namespace, direction=Direction.BACKWARD)) == expected[::-1]
    assert logs(read(real_blocks_store, namespace, (T0 + 551, LINE_ID_MIN), (T0 + 559, LINE_ID_MAX))) == ["late line"]


def test_a_cursor_inside_a_block_resumes_exactly_after_it_in_both_directions(real_blocks_store, namespace):
    rows = lines_of(namespace, 90, ts=lambda i: T0 + i // 3)  # three lines per nanosecond, one block
    real_blocks_store.write(rows)
    lines = read(real_blocks_store, namespace)
    cursor = lines[40]  # the middle line of its nanosecond
    after = read(real_blocks_store, namespace, (cursor.ts_ns, cursor.line_id + 1))
    before = read(real_blocks_store, namespace, high=(cursor.ts_ns, cursor.line_id - 1), direction=Direction.BACKWARD)
    assert after == lines[41:]
    assert before == lines[:40][::-1]


def test_lines_of_a_container_that_moved_from_rows_to_blocks_read_as_one(real_rows_store, real_blocks_store,
                                                                          namespace):
    rows = lines_of(namespace, 400, ts=lambda i: T0 + i)
    real_rows_store.write(rows[:250])  # before the switch
    real_blocks_store.write(rows[150:])  # after it, the batch of 150..249 retried across the switch
    expected = [row.log for row in rows]
    for store in (real_rows_store, real_blocks_store):
        assert logs(read(store, namespace, page_size=64)) == expected
        assert logs(read(store, namespace, direction=Direction.BACKWARD, page_size=64)) == expected[::-1]
    middle = read(real_rows_store, namespace)[199]
    assert logs(read(real_blocks_store, namespace, (middle.ts_ns, middle.line_id + 1))) == expected[200:]


def test_a_block_past_the_span_bound_is_found_by_a_read_starting_inside_it(real_blocks_store, namespace):
    rows = lines_of(namespace, 3, ts=lambda i: T0 + i * (BLOCK_SPAN_NS // 2 - 1))  # one block, ~a span wide
    real_blocks_store.write(rows)
    assert logs(read(real_blocks_store, namespace, (rows[2].ts_ns, LINE_ID_MIN))) == ["line 2"]
    assert logs(read(real_blocks_store, namespace, high=(rows[0].ts_ns, LINE_ID_MAX),
                     direction=Direction.BACKWARD)) == ["line 0"]
