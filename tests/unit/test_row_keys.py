"""common.row_keys: the partition (bucket) and clustering id (line_id) of every stored line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hashlib
import json

from common.records import BatchDecoder, LogRow, decode_json_batch
from common.row_keys import (
    HASH_BITS,
    MAX_OVERFLOW,
    MAX_POSITION,
    OFFSET_BITS,
    OFFSET_FLAG,
    PATH_BITS,
    bucket_of,
    content_line_id,
    line_ids,
    partition_key,
    path_hash,
)
from tests.fixtures import fluent_bit_body
from tests.records import kubernetes

NOON = 1_773_489_600  # 2026-03-14T12:00:00Z, a whole hour
NS = 1_000_000_000


def row(log: str = "line\n", ts_ns: int = NOON * NS, *, stream: str | None = "stdout",
        pod: str = "web-1", container: str = "app", namespace: str = "default",
        offset: int | None = None, log_file: str | None = None) -> LogRow:
    return LogRow(namespace, pod, container, ts_ns, log, stream, offset=offset, log_file=log_file)


def old_rule_line_ids(rows):
    """line_ids as versions before offsets computed them: the ids already stored."""
    seen = {}
    for r in rows:
        stamp = (r.namespace, r.pod_name, r.container_name, r.ts_ns)
        position = seen.get(stamp, 0)
        seen[stamp] = position + 1
        digest = hashlib.blake2b(f"{r.stream or ''}\x00{r.log}".encode(), digest_size=8).digest()
        yield (min(position, 65_535) << 47) | (int.from_bytes(digest, "big") & ((1 << 47) - 1))


FILE = "/var/log/containers/web-1_default_app-0123.log"


def from_file(logs, ts_ns: int = NOON * NS, log_file: str | None = FILE) -> list[LogRow]:
    rows, offset = [], 0
    for log in logs:
        rows.append(row(log, ts_ns, offset=offset, log_file=log_file))
        offset += len(log.encode())
    return rows


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


# --- line_ids without offsets: the rule of earlier versions, widened past 65,535 ---


def test_ids_without_offsets_are_those_earlier_versions_stored_up_to_the_last_position():
    rows = [row("same")] * (MAX_POSITION + 1) + [row(f"line {n}", NOON * NS + 1 + n % 3) for n in range(3000)]
    assert list(line_ids(rows)) == list(old_rule_line_ids(rows))


def test_lines_each_at_a_nanosecond_of_their_own_get_the_ids_earlier_versions_stored():
    rows = [row(f"línea {n} ✓\n", NOON * NS + n, stream=("stdout", "stderr", None)[n % 3]) for n in range(300)]
    assert list(line_ids(rows)) == list(old_rule_line_ids(rows))


def test_identical_lines_past_the_last_position_stay_distinct():
    count = MAX_POSITION + 100_000
    ids = list(line_ids([row("same")] * count))
    assert len(set(ids)) == count


def test_lines_past_the_last_position_keep_the_last_position_field_and_fit_a_bigint():
    ids = list(line_ids([row("same")] * (MAX_POSITION + 10)))
    assert all(position(i) == MAX_POSITION and 0 <= i < 2**63 for i in ids[MAX_POSITION:])


@given(st.integers(0, MAX_OVERFLOW - 1), st.integers(0, MAX_OVERFLOW - 1), st.text(max_size=10))
def test_one_line_at_two_overflow_positions_gets_two_ids(extra_a, extra_b, log):
    a = content_line_id(MAX_POSITION + extra_a, "stdout", log)
    b = content_line_id(MAX_POSITION + extra_b, "stdout", log)
    assert (a == b) == (extra_a == extra_b)


@given(st.integers(0, MAX_POSITION + MAX_OVERFLOW - 1))
def test_a_content_id_is_non_negative_63_bits_and_below_the_positions_up_to_it(position_):
    line_id = content_line_id(position_, "stdout", "x")
    assert 0 <= line_id < 2**63
    assert position(line_id) == min(position_, MAX_POSITION)


def test_rows_with_offsets_do_not_shift_the_positions_of_rows_without():
    plain = [row("a"), row("b")]
    mixed = [row("a"), row("z", offset=0, log_file=FILE), row("b")]
    ids = list(line_ids(mixed))
    assert [ids[0], ids[2]] == list(line_ids(plain))


# --- line_ids with offsets: container, file, time and offset ---


def test_a_line_with_an_offset_gets_the_same_id_in_any_batch_at_any_position():
    lines = from_file(["x\n", "y\n", "y\n", "{\n"])
    alone = [next(line_ids([r])) for r in lines]
    assert list(line_ids(lines)) == alone
    assert list(line_ids(lines[::-1])) == alone[::-1]
    assert list(line_ids(lines[2:] + [row("other")] + lines[:2])) == alone[2:] + list(line_ids([row("other")])) + alone[:2]


def test_identical_lines_of_one_file_at_one_nanosecond_get_distinct_ids_in_file_order():
    ids = list(line_ids(from_file(["{\n"] * 1000)))
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000


def test_an_offset_id_depends_on_neither_the_text_nor_the_stream():
    a = row("x", stream="stdout", offset=7, log_file=FILE)
    b = row("something else", stream="stderr", offset=7, log_file=FILE)
    assert list(line_ids([a])) == list(line_ids([b]))


def test_an_offset_id_has_the_offset_flag_and_fits_a_non_negative_bigint():
    for offset in (0, 1, 2**OFFSET_BITS - 1, 2**OFFSET_BITS, 2**64 - 1):
        (line_id,) = line_ids([row(offset=offset, log_file=FILE)])
        assert 0 <= line_id < 2**63 and line_id & OFFSET_FLAG


def test_an_offset_id_holds_the_offset_above_the_path_hash():
    (line_id,) = line_ids([row(offset=12_345, log_file=FILE)])
    assert line_id == OFFSET_FLAG | 12_345 << PATH_BITS | path_hash(FILE)


def test_offsets_wrap_at_two_to_the_offset_bits():
    (low,) = line_ids([row(offset=5, log_file=FILE)])
    (wrapped,) = line_ids([row(offset=5 + 2**OFFSET_BITS, log_file=FILE)])
    assert low == wrapped


def test_the_same_offset_in_two_files_gets_two_ids():
    a, b = "/var/log/pods/default_web-1_0123/app/0.log", "/var/log/pods/default_web-1_0123/app/1.log"
    assert path_hash(a) != path_hash(b)
    assert len(set(line_ids([row(offset=0, log_file=a), row(offset=0, log_file=b)]))) == 2


def test_a_line_with_an_offset_and_no_file_has_a_path_hash_of_zero():
    (line_id,) = line_ids([row(offset=3)])
    assert line_id == OFFSET_FLAG | 3 << PATH_BITS


@given(st.lists(st.integers(0, 2**OFFSET_BITS - 1), unique=True, max_size=50))
def test_lines_of_one_file_at_one_nanosecond_order_by_offset(offsets):
    ids = list(line_ids([row("same", offset=o, log_file=FILE) for o in offsets]))
    assert sorted(ids) == [i for _, i in sorted(zip(offsets, ids))]
    assert len(set(ids)) == len(ids)


@given(st.lists(st.integers(0, 200), max_size=40), st.lists(st.integers(1, 5), max_size=10))
def test_any_cutting_of_a_files_lines_into_batches_yields_the_ids_of_the_whole(stamps, cuts):
    # Lines of one file (offsets rising), stamped coarsely so that many share a nanosecond.
    lines = [row("same", NOON * NS + stamp // 50, offset=n * 10, log_file=FILE) for n, stamp in enumerate(stamps)]
    whole = {(r.ts_ns, i) for r, i in zip(lines, line_ids(lines))}
    pieces, start = set(), 0
    for size in cuts + [len(lines)]:
        batch = lines[start:start + size]
        pieces |= {(r.ts_ns, i) for r, i in zip(batch, line_ids(batch))}
        start += size
    assert pieces == whole and len(whole) == len(lines)


def test_the_real_fluent_bit_offset_capture_gets_one_distinct_id_per_line_in_file_order():
    records = json.loads(fluent_bit_body("json_offset_key"))
    for r in records:  # as the kubernetes filter would add it
        r["kubernetes"] = kubernetes("default", "web-7d9f8-abcde", "nginx")
    rows = BatchDecoder(256 * 1024).decode(json.dumps(records).encode(), "application/json").rows
    same_instant = [LogRow(r.namespace, r.pod_name, r.container_name, NOON * NS, r.log, r.stream,
                           offset=r.offset, log_file=r.log_file) for r in rows]
    ids = list(line_ids(same_instant))
    assert len(set(ids)) == 50 and ids == sorted(ids)
    assert list(line_ids(same_instant[:20])) + list(line_ids(same_instant[20:])) == ids
