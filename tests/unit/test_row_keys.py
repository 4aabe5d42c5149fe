"""common.row_keys: the partition (bucket) and clustering id (line_id) of every stored line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.records import LogRow, decode_json_batch
from common.row_keys import HASH_BITS, MAX_POSITION, bucket_of, line_ids, partition_key
from tests.fixtures import fluent_bit_body

NOON = 1_773_489_600  # 2026-03-14T12:00:00Z, a whole hour
NS = 1_000_000_000


def row(log: str = "line\n", ts_ns: int = NOON * NS, *, stream: str | None = "stdout",
        pod: str = "web-1", container: str = "app", namespace: str = "default") -> LogRow:
    return LogRow(namespace, pod, container, ts_ns, log, stream)


def position(line_id: int) -> int:
    return line_id >> HASH_BITS


# --- bucket_of ---


def test_an_instant_on_a_bucket_border_opens_that_bucket():
    assert bucket_of(NOON * NS, 3600) == NOON


def test_the_last_nanosecond_before_a_border_belongs_to_the_previous_bucket():
    assert bucket_of(NOON * NS - 1, 3600) == NOON - 3600


def test_an_instant_inside_an_hour_bucket_maps_to_the_start_of_the_hour():
    assert bucket_of((NOON + 1799) * NS + 999_999_999, 3600) == NOON


def test_day_buckets_start_at_midnight_utc():
    midnight = NOON - 12 * 3600
    assert bucket_of(NOON * NS, 86400) == midnight


def test_the_epoch_is_the_first_bucket():
    assert bucket_of(0, 3600) == 0


@given(st.integers(min_value=0, max_value=2**63 - 1), st.integers(min_value=60, max_value=7 * 86400))
def test_a_bucket_starts_at_a_multiple_of_its_size_and_holds_the_instant(ts_ns, bucket_seconds):
    bucket = bucket_of(ts_ns, bucket_seconds)
    assert bucket % bucket_seconds == 0
    assert bucket * NS <= ts_ns < (bucket + bucket_seconds) * NS


def test_the_partition_key_is_the_container_and_its_bucket():
    assert partition_key(row(ts_ns=(NOON + 5) * NS), 3600) == ("default", "web-1", "app", NOON)


# --- line_ids ---


def test_the_same_batch_gets_the_same_ids_every_time():
    rows = decode_json_batch(fluent_bit_body("json"), 256 * 1024).rows
    assert list(line_ids(rows)) == list(line_ids(rows))
    assert list(line_ids(rows)) == list(line_ids(decode_json_batch(fluent_bit_body("json"), 256 * 1024).rows))


def test_there_is_one_id_per_row_in_order():
    rows = [row("a"), row("b", ts_ns=NOON * NS + 1), row("c")]
    ids = list(line_ids(rows))
    assert len(ids) == 3
    assert ids[0] != ids[2]


def test_lines_of_one_container_at_one_nanosecond_get_increasing_ids_in_batch_order():
    # Hashes are unordered ("zebra" might hash below "apple"); the position bits must still win.
    logs = ["zebra", "apple", "mango", "Traceback", "  at x", "  at y"]
    ids = list(line_ids([row(text) for text in logs]))
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [position(i) for i in ids] == list(range(len(logs)))


def test_identical_lines_at_the_same_nanosecond_in_one_batch_get_distinct_ids():
    ids = list(line_ids([row("same\n")] * 3))
    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_the_first_line_at_a_nanosecond_has_position_zero_whatever_came_before_at_other_stamps():
    rows = [row("x", ts_ns=NOON * NS), row("x", ts_ns=NOON * NS + 1)]
    assert [position(i) for i in line_ids(rows)] == [0, 0]


def test_positions_are_counted_per_container_not_per_batch():
    rows = [row("x", container="a"), row("x", container="b"), row("x", pod="other"), row("x", namespace="n2")]
    assert [position(i) for i in line_ids(rows)] == [0, 0, 0, 0]


def test_an_id_depends_on_the_line_text_and_its_stream():
    (plain,) = line_ids([row("x", stream="stdout")])
    (other_text,) = line_ids([row("y", stream="stdout")])
    (other_stream,) = line_ids([row("x", stream="stderr")])
    assert len({plain, other_text, other_stream}) == 3


def test_ids_fit_a_non_negative_cassandra_bigint_even_past_the_last_position():
    rows = [row("same")] * (MAX_POSITION + 3)
    ids = list(line_ids(rows))
    assert all(0 <= i < 2**63 for i in ids)
    assert position(ids[-1]) == MAX_POSITION


def test_the_real_fluent_bit_batch_gets_one_distinct_key_per_line():
    rows = decode_json_batch(fluent_bit_body("json"), 256 * 1024).rows
    keys = {(partition_key(r, 3600), r.ts_ns, i) for r, i in zip(rows, line_ids(rows))}
    assert len(keys) == len(rows) == 50


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "a\n", ""]),
                          st.sampled_from(["stdout", "stderr", None])), max_size=60))
def test_no_two_rows_of_a_batch_share_a_clustering_key(specs):
    rows = [row(text, NOON * NS + offset, stream=stream) for offset, text, stream in specs]
    keys = [(r.ts_ns, i) for r, i in zip(rows, line_ids(rows))]
    assert len(set(keys)) == len(keys)


@given(st.lists(st.text(max_size=20), max_size=40))
def test_ids_at_one_stamp_follow_batch_order_for_any_lines(logs):
    ids = list(line_ids([row(text) for text in logs]))
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("count", [1, 2, 10])
def test_line_ids_accepts_any_iterable_of_rows(count):
    assert len(list(line_ids(row(str(n)) for n in range(count)))) == count
