"""The identity of a line, end to end on the real Redis and Cassandra (README, "identity rule").

With fluent-bit's Offset_Key (and Path_Key) a line is (container, file, time, offset): however a
shipper cuts, re-cuts and re-sends its lines, each real line is stored exactly once. Without an
offset a line is (container, time, position among its batch's lines of that container and time,
stream, text): exact for re-sends of the same batch and for lines with a nanosecond of their own,
and blind, as documented, to re-cuts between lines that share a nanosecond.
"""

from __future__ import annotations

import pytest

from tests.integration.pipeline import build_pipeline, unique
from tests.store_reads import stored_columns
from tests.records import fluent_bit_record

pytestmark = pytest.mark.integration

STAMP = "2026-03-14T12:00:00.123456789Z"
FROM, TO = "2026-03-14T12:00:00Z", "2026-03-14T12:00:01Z"
BUCKET = 1_773_489_600  # the hour holding every line here (CASSANDRA_BUCKET_SECONDS 3600)
LOG_FILE = "/var/log/containers/web-7d9f8-abcde_default_nginx-0123.log"


@pytest.fixture(scope="module")
def pipeline(integration_settings, real_store):
    return build_pipeline(integration_settings, real_store)


@pytest.fixture
def pod():
    return unique("ns"), unique("pod")


def record(pod, log, *, time=STAMP, **place):
    """A line of container app in `pod` (namespace, name); `place`: its offset= and log_file=, if sent."""
    namespace, pod_name = pod
    return fluent_bit_record(namespace, pod_name, "app", time=time, log=log, **place)


def from_file(pod, lines, *, time=STAMP, log_file=LOG_FILE):
    """Records as fluent-bit's tail input gives them: each with its byte offset in the file."""
    records, offset = [], 0
    for log in lines:
        records.append(record(pod, log, time=time, offset=offset, log_file=log_file))
        offset += len(log.encode()) + 1
    return records


def post_all(pipeline, *batches):
    for batch in batches:
        response = pipeline.post(batch)
        assert response.status_code == 200, response.text
        assert response.json["accepted"] == len(batch)
    pipeline.drain()


def stored_logs(pipeline, pod, start=FROM, end=TO) -> list[str]:
    namespace, pod_name = pod
    response = pipeline.query(namespace, pod_name, "app", start, end)
    assert response.status_code == 200, response.text
    return [row["log"] for row in response.json["log_rows"]]


def stored_count(pipeline, pod) -> int:
    namespace, pod_name = pod
    return len(stored_columns(pipeline.store, pipeline.settings.cassandra_keyspace, namespace, pod_name, "app",
                              BUCKET))


# --- with offsets: exactly once ---


def test_a_resent_differently_cut_chunk_with_offsets_stores_each_line_once(pipeline, pod):
    x, y = from_file(pod, ["x", "y"])
    post_all(pipeline, [x, y], [y])
    assert stored_logs(pipeline, pod) == ["x", "y"]


def test_identical_lines_at_one_nanosecond_across_two_batches_with_offsets_are_all_kept(pipeline, pod):
    first, second, third = from_file(pod, ["{", "{", "{"])
    post_all(pipeline, [first, second], [third])
    assert stored_logs(pipeline, pod) == ["{", "{", "{"]


def test_a_batch_split_three_ways_and_resent_with_offsets_stores_every_line_exactly_once(pipeline, pod):
    # Coarse stamps (whole seconds, as `json_date_format epoch` gives): many lines share each one.
    lines = [f"line {n % 7}" for n in range(60)]  # identical texts again and again
    records = []
    for second in range(3):
        records += from_file(pod, lines[second * 20:(second + 1) * 20], time=f"2026-03-14T12:00:0{second}Z")
    offset = 0
    for r in records:  # one file: offsets run on across the seconds
        r["offset"], offset = offset, offset + len(r["log"]) + 1
    post_all(pipeline, records)
    post_all(pipeline, records[:17], records[17:41], records[41:])  # cut three ways
    post_all(pipeline, records[:5], records[5:50], records[50:], records[30:45])  # and otherwise, overlapping
    assert stored_logs(pipeline, pod, FROM, "2026-03-14T12:00:03Z") == lines
    assert stored_count(pipeline, pod) == 60


def test_the_same_offset_in_two_files_of_a_container_is_two_lines(pipeline, pod):
    # A restarted container writes 0.log, then 1.log: both start at offset 0.
    post_all(pipeline, from_file(pod, ["started"], log_file="/var/log/pods/p/app/0.log")
             + from_file(pod, ["started"], log_file="/var/log/pods/p/app/1.log"))
    assert stored_logs(pipeline, pod) == ["started", "started"]


# --- without offsets: today's rule, as documented ---


def test_without_offsets_a_resent_batch_cut_the_same_way_stores_each_line_once(pipeline, pod):
    batch = [record(pod, text) for text in ["a", "b", "a", "{", "{"]]
    post_all(pipeline, batch, batch)
    assert stored_logs(pipeline, pod) == ["a", "b", "a", "{", "{"]


def test_without_offsets_a_recut_between_lines_of_one_nanosecond_stores_the_later_one_again(pipeline, pod):
    x, y = record(pod, "x"), record(pod, "y")
    post_all(pipeline, [x, y], [y])  # y was second at its nanosecond, then first
    assert sorted(stored_logs(pipeline, pod)) == ["x", "y", "y"]


def test_without_offsets_identical_lines_of_one_nanosecond_in_two_batches_merge(pipeline, pod):
    post_all(pipeline, [record(pod, "{"), record(pod, "{")], [record(pod, "{")])
    assert stored_logs(pipeline, pod) == ["{", "{"]


def test_without_offsets_a_batch_split_three_ways_and_resent_keeps_lines_with_their_own_nanosecond_once(
        pipeline, pod):
    def at(n):
        return f"2026-03-14T12:00:00.{n:09d}Z"

    # Lines a, d, e have a nanosecond of their own; b and c share one; so do the two d's.
    records = [record(pod, "a", time=at(1)), record(pod, "b", time=at(2)), record(pod, "c", time=at(2)),
               record(pod, "d", time=at(3)), record(pod, "d", time=at(3)), record(pod, "e", time=at(4))]
    post_all(pipeline, records)
    post_all(pipeline, records[:2], records[2:4], records[4:])  # cut between b|c and between d|d
    # c moved from second to first at its nanosecond: stored again. The second d became first
    # at its nanosecond, which the first d already is: merged into it, so nothing new.
    assert sorted(stored_logs(pipeline, pod)) == ["a", "b", "c", "c", "d", "d", "e"]


def test_without_offsets_more_than_65535_identical_lines_of_one_nanosecond_in_one_batch_are_all_kept(
        pipeline, pod):
    count = 65_537
    post_all(pipeline, [record(pod, "same")] * count)
    assert stored_count(pipeline, pod) == count
