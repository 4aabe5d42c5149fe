"""common.records.decode_json_batch: fluent-bit `Format json` bodies in, validated rows out.

The real captures in tests/fixtures.py are the main inputs; small hand-made records pin down one
rule each.
"""

from __future__ import annotations

import json
from datetime import datetime

import msgspec
import zstandard

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.queue import decode_payload, encode_payload
from common.records import (
    MAX_OFFSET,
    MAX_REPORTED_ERRORS,
    TRUNCATION_MARK,
    InvalidBody,
    LogRow,
    decode_json_batch,
    truncate_line,
)
from tests.fixtures import fluent_bit_body
from tests.records import fluent_bit_record, without

LIMIT = 256 * 1024  # the default max_line_bytes
NOON_NS = 1_773_489_600 * 1_000_000_000  # 2026-03-14T12:00:00Z
K8S = {"namespace_name": "default", "pod_name": "web-1", "container_name": "app"}


# The valid record these tests vary: keyword arguments replace or add fields (`without` removes one).
record = fluent_bit_record


def body_of(*records) -> bytes:
    return json.dumps(list(records)).encode()


def ns_from_rfc3339_utc(text: str) -> int:
    """Independent oracle for `...THH:MM:SS.fffffffffZ`: datetime for the seconds, digits for the rest."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


# --- the real fluent-bit `Format json` capture ---


def test_the_real_fluent_bit_json_body_decodes_to_fifty_rows_without_errors():
    batch = decode_json_batch(fluent_bit_body("json"), LIMIT)
    assert len(batch.rows) == 50
    assert batch.errors == []
    assert batch.rejected == 0
    assert batch.received == 50
    assert batch.truncated_lines == 0


def test_every_row_of_the_real_body_carries_the_kubernetes_metadata():
    batch = decode_json_batch(fluent_bit_body("json"), LIMIT)
    assert {(r.namespace, r.pod_name, r.container_name) for r in batch.rows} == {
        ("default", "web-7d9f8-abcde", "nginx")
    }
    assert {(r.host, r.pod_id, r.docker_id, r.labels) for r in batch.rows} == {
        ("node-1", "0f5225d5-4e9d-11e8-8b6b-02425d6e035a", "0123456789abcdef", None)
    }


def test_the_real_body_keeps_each_line_text_stream_and_order_including_the_trailing_newline():
    body = fluent_bit_body("json")
    sent = json.loads(body)
    batch = decode_json_batch(body, LIMIT)
    assert [r.log for r in batch.rows] == [r["log"] for r in sent]
    assert [r.stream for r in batch.rows] == [r["stream"] for r in sent]
    assert batch.rows[0].log == "GET /index.html 200\n"
    assert batch.rows[1].log == "ünïcödé ✓ 日本語 🚀\n"
    assert all(r.log.endswith("\n") for r in batch.rows)


def test_the_real_body_rows_take_their_nanosecond_from_time_not_from_date():
    body = fluent_bit_body("json")
    sent = json.loads(body)
    batch = decode_json_batch(body, LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS + 123_456_789  # "2026-03-14T12:00:00.123456789Z"
    assert [r.ts_ns for r in batch.rows] == [ns_from_rfc3339_utc(r["time"]) for r in sent]


def test_the_real_notime_double_body_takes_its_nanosecond_from_the_float_date():
    body = fluent_bit_body("notime_double")
    sent = json.loads(body)
    assert all("time" not in r for r in sent)
    batch = decode_json_batch(body, LIMIT)
    assert len(batch.rows) == 50 and batch.rejected == 0
    assert batch.rows[0].ts_ns == NOON_NS + 123_457_000  # date 1773489600.123457
    assert [r.ts_ns for r in batch.rows] == [round(r["date"] * 1e6) * 1000 for r in sent]


def test_the_real_iso_date_body_decodes_because_time_wins_over_a_string_date():
    body = fluent_bit_body("iso_nodate")
    sent = json.loads(body)
    assert all(isinstance(r["date"], str) and "time" in r for r in sent)
    batch = decode_json_batch(body, LIMIT)
    assert batch.errors == []
    assert len(batch.rows) == 50
    assert [r.ts_ns for r in batch.rows] == [ns_from_rfc3339_utc(r["time"]) for r in sent]


@pytest.mark.parametrize(
    "capture, first_ns",
    [
        ("notime_iso8601", NOON_NS + 123_456_000),  # "2026-03-14T12:00:00.123456Z"
        ("notime_java_sql", NOON_NS + 123_456_000),  # "2026-03-14 12:00:00.123456", taken as UTC
        ("notime_epoch", NOON_NS),  # 1773489600
        ("notime_epoch_ms", NOON_NS + 123_000_000),  # 1773489600123
    ],
)
def test_real_bodies_with_only_date_decode_in_every_json_date_format(capture, first_ns):
    sent = json.loads(fluent_bit_body(capture))
    assert all("time" not in r for r in sent)
    batch = decode_json_batch(fluent_bit_body(capture), LIMIT)
    assert len(batch.rows) == 50 and batch.errors == []
    assert batch.rows[0].ts_ns == first_ns
    assert [r.log for r in batch.rows] == [r["log"] for r in sent]


def test_one_broken_record_in_a_real_body_costs_only_itself():
    sent = json.loads(fluent_bit_body("json"))
    del sent[7]["kubernetes"]["pod_name"]
    batch = decode_json_batch(json.dumps(sent).encode(), LIMIT)
    assert len(batch.rows) == 49
    assert batch.rejected == 1
    assert [e.index for e in batch.errors] == [7]
    assert [r.log for r in batch.rows] == [r["log"] for i, r in enumerate(sent) if i != 7]


# --- bodies that can never succeed ---


@pytest.mark.parametrize("body", [b"", b"not json", b"[{", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_an_invalid_body(body):
    with pytest.raises(InvalidBody, match="not valid JSON"):
        decode_json_batch(body, LIMIT)


@pytest.mark.parametrize("body", [b'[{"log": "x"}', b"[1, 2] trailing", b'[{"log": "x"}, {"log": "y"'])
def test_malformed_json_after_an_invalid_record_is_still_an_invalid_body(body):
    # The whole-batch decode stops at the bad record; the one-by-one pass then finds the syntax error.
    with pytest.raises(InvalidBody, match="malformed|truncated"):
        decode_json_batch(body, LIMIT)


@pytest.mark.parametrize("body", [b'"text"', b"42", b"null"])
def test_json_that_is_neither_an_array_nor_objects_is_an_invalid_body(body):
    with pytest.raises(InvalidBody, match="must be a JSON array"):
        decode_json_batch(body, LIMIT)


def test_invalid_body_is_a_value_error():
    assert issubclass(InvalidBody, ValueError)


def test_an_empty_array_is_an_empty_batch():
    batch = decode_json_batch(b"[]", LIMIT)
    assert (batch.rows, batch.errors, batch.rejected, batch.received) == ([], [], 0, 0)


# --- one bad record: rejected with its index and reason, neighbours kept ---


def test_a_record_without_pod_name_is_rejected_with_its_index():
    bad = record(kubernetes=without(K8S, "pod_name"))
    batch = decode_json_batch(body_of(record(), bad, record()), LIMIT)
    assert len(batch.rows) == 2
    assert batch.rejected == 1
    assert batch.errors[0].index == 1
    assert "pod_name" in batch.errors[0].reason
    assert "kubernetes" in batch.errors[0].reason


@pytest.mark.parametrize("field", ["namespace_name", "pod_name", "container_name"])
def test_a_record_missing_a_required_kubernetes_name_is_rejected_naming_it(field):
    batch = decode_json_batch(body_of(record(kubernetes=without(K8S, field))), LIMIT)
    assert batch.rows == []
    assert [e.index for e in batch.errors] == [0]
    assert f"`{field}`" in batch.errors[0].reason


@pytest.mark.parametrize("name", ["", "  ", "\t"], ids=["empty", "spaces", "tab"])
@pytest.mark.parametrize("field", ["namespace_name", "pod_name", "container_name"])
def test_a_record_with_an_empty_or_blank_kubernetes_name_is_rejected_naming_it(field, name):
    batch = decode_json_batch(body_of(record(kubernetes={**K8S, field: name})), LIMIT)
    assert batch.rows == []
    assert f"kubernetes.{field}" in batch.errors[0].reason


def test_a_kubernetes_name_longer_than_253_characters_is_rejected():
    batch = decode_json_batch(body_of(record(kubernetes={**K8S, "pod_name": "p" * 254})), LIMIT)
    assert batch.rows == [] and batch.rejected == 1
    assert "kubernetes.pod_name" in batch.errors[0].reason


def test_a_kubernetes_name_of_exactly_253_characters_is_accepted():
    batch = decode_json_batch(body_of(record(kubernetes={**K8S, "pod_name": "p" * 253})), LIMIT)
    assert [r.pod_name for r in batch.rows] == ["p" * 253]


def test_a_record_without_kubernetes_metadata_is_rejected():
    batch = decode_json_batch(body_of(without(record(), "kubernetes")), LIMIT)
    assert batch.rows == []
    assert "`kubernetes`" in batch.errors[0].reason


def test_reasons_name_fields_relative_to_the_record_not_as_json_paths():
    batch = decode_json_batch(body_of(record(kubernetes={**K8S, "pod_name": ""})), LIMIT)
    assert "$" not in batch.errors[0].reason


def test_array_elements_that_are_not_objects_are_rejected_one_by_one():
    batch = decode_json_batch(json.dumps([1, record(), None]).encode(), LIMIT)
    assert len(batch.rows) == 1
    assert [e.index for e in batch.errors] == [0, 2]
    assert all("object" in e.reason for e in batch.errors)


def test_a_record_whose_time_is_not_rfc_3339_is_rejected_with_its_index_and_a_reason_naming_time():
    batch = decode_json_batch(body_of(record(), record(time="yesterday"), record()), LIMIT)
    assert len(batch.rows) == 2
    assert [e.index for e in batch.errors] == [1]
    assert batch.errors[0].reason.startswith("`time`")


def test_a_record_whose_date_is_out_of_range_is_rejected_with_a_reason_naming_date():
    batch = decode_json_batch(body_of(without(record(), "time") | {"date": -1.0}), LIMIT)
    assert batch.rows == []
    assert batch.errors[0].reason.startswith("`date`")


def test_a_record_with_neither_time_nor_date_is_rejected():
    batch = decode_json_batch(body_of(without(record(), "time")), LIMIT)
    assert batch.rows == []
    assert "neither `time`" in batch.errors[0].reason


def test_a_record_whose_date_is_neither_a_number_nor_text_is_rejected():
    batch = decode_json_batch(body_of(without(record(), "time") | {"date": True}), LIMIT)
    assert batch.rows == []
    assert "date" in batch.errors[0].reason


def test_only_the_first_errors_are_reported_but_every_rejection_is_counted():
    bad = record(kubernetes=without(K8S, "pod_name"))
    records = [bad] * (MAX_REPORTED_ERRORS + 15) + [record()]
    batch = decode_json_batch(body_of(*records), LIMIT)
    assert batch.rejected == MAX_REPORTED_ERRORS + 15
    assert [e.index for e in batch.errors] == list(range(MAX_REPORTED_ERRORS))
    assert len(batch.rows) == 1
    assert batch.received == len(records)


# --- `time` versus `date` ---


def test_time_wins_over_date_when_both_are_present():
    batch = decode_json_batch(body_of(record(time="2026-03-14T12:00:00.000000007Z", date=1.5)), LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS + 7


def test_a_bad_time_is_not_rescued_by_a_good_date():
    batch = decode_json_batch(body_of(record(time="noon", date=1773489600.5)), LIMIT)
    assert batch.rows == []
    assert batch.errors[0].reason.startswith("`time`")


def test_a_null_time_falls_back_to_date():
    batch = decode_json_batch(body_of(record(date=1773489600.25) | {"time": None}), LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS + 250_000_000


def test_an_integer_date_is_read_as_whole_seconds():
    batch = decode_json_batch(body_of(without(record(), "time") | {"date": 1773489600}), LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS


def test_a_string_date_is_read_as_rfc_3339_when_there_is_no_time():
    batch = decode_json_batch(body_of(without(record(), "time") | {"date": "2026-03-14T12:00:00.5Z"}), LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS + 500_000_000


def test_a_string_date_that_is_not_a_timestamp_is_rejected_with_a_reason_naming_date():
    batch = decode_json_batch(body_of(without(record(), "time") | {"date": "1773489600"}), LIMIT)
    assert batch.rows == []
    assert batch.errors[0].reason.startswith("`date`")


def test_a_time_with_an_offset_is_stored_in_utc():
    batch = decode_json_batch(body_of(record(time="2026-03-14T13:00:00+01:00")), LIMIT)
    assert batch.rows[0].ts_ns == NOON_NS


# --- optional fields ---


def test_a_record_without_log_or_stream_gets_an_empty_line_and_no_stream():
    batch = decode_json_batch(body_of(without(record(), "log", "stream")), LIMIT)
    assert batch.rows[0].log == ""
    assert batch.rows[0].stream is None


def test_unknown_fields_are_ignored_and_labels_are_kept():
    meta = {**K8S, "labels": {"app": "web"}, "annotations": {"a": "b"}, "container_image": "nginx:1"}
    batch = decode_json_batch(body_of(record(kubernetes=meta, extra={"x": 1})), LIMIT)
    assert batch.rows[0].labels == {"app": "web"}
    assert batch.rows[0].namespace == "default"


def test_a_row_is_built_in_the_queued_field_order():
    batch = decode_json_batch(body_of(record()), LIMIT)
    assert batch.rows == [LogRow("default", "web-1", "app", NOON_NS, "hello\n", "stdout")]


# --- long lines ---


def test_a_line_of_exactly_max_line_bytes_is_kept_whole():
    line = "x" * 100
    batch = decode_json_batch(body_of(record(log=line)), 100)
    assert batch.rows[0].log == line
    assert batch.truncated_lines == 0


def test_a_line_one_byte_over_max_line_bytes_is_cut_marked_and_counted():
    line = "x" * 101
    batch = decode_json_batch(body_of(record(log=line)), 100)
    assert batch.rows[0].log == "x" * (100 - len(TRUNCATION_MARK)) + TRUNCATION_MARK
    assert len(batch.rows[0].log.encode()) == 100
    assert batch.truncated_lines == 1


def test_the_limit_counts_utf8_bytes_not_characters():
    line = "é" * 60  # 60 characters, 120 bytes
    batch = decode_json_batch(body_of(record(log=line)), 100)
    assert batch.truncated_lines == 1
    assert len(batch.rows[0].log.encode()) <= 100


def test_only_the_long_lines_of_a_batch_are_truncated():
    batch = decode_json_batch(body_of(record(log="short"), record(log="y" * 500), record(log="z")), 100)
    assert [r.log for r in batch.rows][0::2] == ["short", "z"]
    assert batch.rows[1].log.endswith(TRUNCATION_MARK)
    assert batch.truncated_lines == 1


def test_truncation_never_splits_a_three_byte_character():
    # 64 - 38 (mark) = 26 bytes of budget: eight "€" are 24 bytes, a ninth would need 27.
    assert len(TRUNCATION_MARK.encode()) == 38
    assert truncate_line("€" * 100, 64) == "€" * 8 + TRUNCATION_MARK


def test_truncation_never_splits_a_four_byte_character():
    # 26 bytes of budget: six rockets are 24 bytes, a seventh would need 28.
    assert truncate_line("🚀" * 100, 64) == "🚀" * 6 + TRUNCATION_MARK


def test_truncation_respects_a_limit_smaller_than_the_mark():
    assert len(truncate_line("x" * 100, 10).encode()) <= 10


@given(text=st.text(), limit=st.integers(min_value=64, max_value=2048))
def test_truncate_line_output_fits_the_limit_is_valid_utf8_and_keeps_a_prefix(text, limit):
    cut = truncate_line(text, limit)
    encoded = cut.encode("utf-8")  # raises if a character was split into a lone surrogate
    assert len(encoded) <= limit
    assert encoded.decode("utf-8") == cut
    assert cut.endswith(TRUNCATION_MARK)
    assert text.startswith(cut[: -len(TRUNCATION_MARK)])


@given(line=st.text(), limit=st.integers(min_value=64, max_value=512))
def test_decoded_lines_never_exceed_max_line_bytes_and_short_lines_are_untouched(line, limit):
    batch = decode_json_batch(body_of(record(log=line)), limit)
    (row,) = batch.rows
    assert len(row.log.encode()) <= limit
    if len(line.encode()) <= limit:
        assert row.log == line and batch.truncated_lines == 0
    else:
        assert row.log.endswith(TRUNCATION_MARK) and batch.truncated_lines == 1


# --- the line's offset and file (FLUENT_BIT_OFFSET_KEY, FLUENT_BIT_PATH_KEY) ---

FILE = "/var/log/containers/web-1_default_app-0123.log"


def test_a_records_offset_and_file_are_kept():
    (row,) = decode_json_batch(json.dumps([record(offset=1234, log_file=FILE)]).encode(), LIMIT).rows
    assert (row.offset, row.log_file) == (1234, FILE)


def test_a_record_without_an_offset_has_none():
    (row,) = decode_json_batch(json.dumps([record()]).encode(), LIMIT).rows
    assert (row.offset, row.log_file) == (None, None)


@pytest.mark.parametrize("value", ["1234", -1, 12.0, True, None, [1], {"a": 1}, MAX_OFFSET + 1])
def test_a_value_that_is_no_offset_is_ignored_and_the_line_kept(value):
    # Merge_Log can put an application's own `offset` key at the top of the record.
    batch = decode_json_batch(json.dumps([record(offset=value, log_file=FILE)]).encode(), LIMIT)
    assert batch.rejected == 0
    assert (batch.rows[0].offset, batch.rows[0].log_file) == (None, None)


def test_the_largest_offset_fluent_bit_can_send_is_kept():
    (row,) = decode_json_batch(json.dumps([record(offset=MAX_OFFSET)]).encode(), LIMIT).rows
    assert row.offset == MAX_OFFSET


def test_a_file_that_is_no_string_is_ignored_but_the_offset_kept():
    (row,) = decode_json_batch(json.dumps([record(offset=7, log_file=["x"])]).encode(), LIMIT).rows
    assert (row.offset, row.log_file) == (7, None)


def test_a_file_without_an_offset_is_not_kept():
    (row,) = decode_json_batch(json.dumps([record(log_file=FILE)]).encode(), LIMIT).rows
    assert row.log_file is None


def test_a_payload_queued_by_a_version_without_offsets_still_decodes():
    # Rows of earlier versions: arrays of the first ten LogRow fields.
    old_row = ["default", "web-1", "app", NOON_NS, "hello\n", "stdout", "node-1", "uid-1", "docker-1", {"app": "web"}]
    payload = zstandard.compress(msgspec.msgpack.encode([NOON_NS, [old_row, old_row[:6]]]))
    rows = decode_payload(payload).rows
    assert rows[0] == LogRow(*old_row)
    assert rows[1] == LogRow(*old_row[:6])
    assert (rows[0].offset, rows[0].log_file) == (None, None)


def test_a_queued_row_keeps_its_offset_and_file():
    row = LogRow("default", "web-1", "app", NOON_NS, "hello\n", "stdout", offset=MAX_OFFSET, log_file=FILE)
    assert decode_payload(encode_payload([row], NOON_NS)).rows == [row]
