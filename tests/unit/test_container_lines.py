"""common.container_lines: a batch queued as its containers' columns, with the same line identities."""

from __future__ import annotations

import json

import msgspec
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from common.container_lines import QueuedLines, containers_of, group_rows
from common.queue import decode_payload, encode_payload
from common.records import BatchDecoder, LogRow
from common.row_keys import container_line_ids, line_ids

NOON_NS = 1_773_489_600 * 10**9
POD = ("node-1", "p-1", "d-1", {"app": "web"})


def row(pod: str, ts: int, log: str, stream: str | None = "stdout", offset: int | None = None,
        log_file: str | None = None, labels: dict | None = None) -> LogRow:
    return LogRow("ns", pod, "app", NOON_NS + ts, log, stream, "node-1", labels=labels, offset=offset,
                  log_file=log_file)


rows_strategy = st.lists(
    st.builds(row, st.sampled_from(["web-1", "web-2"]), st.integers(0, 3), st.sampled_from(["a", "b", "ü"]),
              st.sampled_from(["stdout", "stderr", None]), st.one_of(st.none(), st.integers(0, 5)),
              st.sampled_from([None, "/var/log/containers/a.log"]), st.sampled_from([None, {"app": "web"}])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(rows_strategy)
def test_every_line_keeps_the_identity_its_batch_gives_it(rows):
    expected = {}
    for r, line_id in zip(rows, line_ids(rows)):
        expected.setdefault(r.pod_name, []).append(line_id)
    assert {c.pod_name: container_line_ids(c) for c in group_rows(rows)} == expected


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_a_container_s_lines_keep_their_order_and_every_field(rows):
    by_pod: dict[str, list[LogRow]] = {}
    for r in rows:
        by_pod.setdefault(r.pod_name, []).append(r)
    assert [list(c.rows()) for c in group_rows(rows)] == list(by_pod.values())


def test_containers_come_in_the_order_the_batch_first_names_them():
    rows = [row("web-2", 0, "x"), row("web-1", 0, "y"), row("web-2", 1, "z")]
    assert [(c.pod_name, c.logs) for c in group_rows(rows)] == [("web-2", ["x", "z"]), ("web-1", ["y"])]


def test_metadata_is_kept_once_per_distinct_value():
    rows = [row("web-1", i, "x", labels={"app": "web"}) for i in range(3)] + [row("web-1", 3, "y", labels=None)]
    (container,) = group_rows(rows)
    assert container.metas == [("node-1", None, None, {"app": "web"}), ("node-1", None, None, None)]
    assert container.meta_of == [0, 0, 0, 1]


def test_offsets_are_columns_only_when_some_line_has_one():
    assert group_rows([row("web-1", 0, "x")])[0].offsets is None
    (container,) = group_rows([row("web-1", 0, "x"), row("web-1", 1, "y", offset=7, log_file="/f")])
    assert container.offsets == [None, 7] and container.log_files == [None, "/f"]


def test_a_queued_batch_decodes_to_its_lines_by_container():
    rows = [row("web-1", 0, "a"), row("web-2", 0, "b"), row("web-1", 1, "c", offset=3, log_file="/f")]
    batch = decode_payload(encode_payload(rows, 42))
    assert batch.enqueued_at_ns == 42 and len(batch.lines) == 3
    assert batch.rows == [rows[0], rows[2], rows[1]]
    assert [c.pod_name for c in containers_of(batch.lines)] == ["web-1", "web-2"]


class _EarlierPayload(msgspec.Struct, array_like=True):
    enqueued_at_ns: int
    rows: list[LogRow]


def test_a_payload_queued_by_an_earlier_version_still_decodes():
    rows = [row("web-1", 0, "a"), row("web-2", 0, "b")]
    earlier = zstandard.compress(msgspec.msgpack.encode(_EarlierPayload(7, rows)), 1)
    batch = decode_payload(earlier)
    assert batch.enqueued_at_ns == 7 and batch.rows == rows
    assert [c.pod_name for c in batch.lines.containers] == ["web-1", "web-2"]


def test_queued_lines_are_a_sequence_of_rows():
    rows = [row("web-1", 0, "a"), row("web-1", 1, "b")]
    lines = QueuedLines(group_rows(rows))
    assert len(lines) == 2 and list(lines) == rows and lines[1] == rows[1] and lines == rows
    assert containers_of(rows)[0].logs == ["a", "b"]


def test_a_fluent_bit_body_decodes_straight_into_its_containers_columns():
    records = [{"time": "2026-03-14T12:00:00.5Z", "log": log, "stream": "stdout",
                "kubernetes": {"namespace_name": "ns", "pod_name": pod, "container_name": "app", "host": "node-1"}}
               for pod, log in [("web-1", "a"), ("web-2", "b"), ("web-1", "c")]]
    batch = BatchDecoder(1000).decode(json.dumps(records).encode(), "application/json")
    assert [(c.pod_name, c.logs, c.metas) for c in containers_of(batch.rows)] == [
        ("web-1", ["a", "c"], [("node-1", None, None, None)]), ("web-2", ["b"], [("node-1", None, None, None)])]
    assert [row.log for row in batch.rows] == ["a", "c", "b"]


def test_a_pod_s_kubernetes_map_written_two_ways_is_one_container_with_one_metadata_entry():
    body = (b'[{"time": "2026-03-14T12:00:00.5Z", "log": "a", "kubernetes": {"namespace_name": "ns", '
            b'"pod_name": "web-1", "container_name": "app", "host": "node-1"}},'
            b'{"time": "2026-03-14T12:00:00.6Z", "log": "b", "kubernetes": {"host": "node-1", '
            b'"container_name": "app", "pod_name": "web-1", "namespace_name": "ns"}}]')
    (container,) = containers_of(BatchDecoder(1000).decode(body, "application/json").rows)
    assert container.logs == ["a", "b"] and container.metas == [("node-1", None, None, None)]
    assert container.meta_of == [0, 0]


def test_an_invalid_kubernetes_map_rejects_each_record_carrying_it_with_the_field_named():
    bad = {"namespace_name": "ns", "pod_name": 7, "container_name": "app"}
    records = [{"time": "2026-03-14T12:00:00.5Z", "log": str(n), "kubernetes": bad} for n in range(2)]
    batch = BatchDecoder(1000).decode(json.dumps(records).encode(), "application/json")
    assert batch.rejected == 2 and [e.index for e in batch.errors] == [0, 1]
    assert batch.errors[0].reason == "Expected `str`, got `int` - at `kubernetes.pod_name`"


def test_containers_come_in_the_order_of_their_first_valid_line():
    def record(pod, time):
        return {"time": time, "log": pod, "kubernetes": {"namespace_name": "ns", "pod_name": pod, "container_name": "c"}}
    records = [record("web-2", "not a time"), record("web-1", "2026-03-14T12:00:00.5Z"),
               record("web-2", "2026-03-14T12:00:00.6Z")]
    batch = BatchDecoder(1000).decode(json.dumps(records).encode(), "application/json")
    assert [c.pod_name for c in containers_of(batch.rows)] == ["web-1", "web-2"] and batch.rejected == 1
