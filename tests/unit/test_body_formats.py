"""Every body fluent-bit's http output can send decodes to the same lines (real captured bodies)."""

from __future__ import annotations

import gzip
import json

import msgpack
import pytest

from common.records import BatchDecoder, InvalidBody
from tests.fixtures import fluent_bit_body, fluent_bit_headers

LIMIT = 256 * 1024
REFERENCE = json.loads(fluent_bit_body("json"))
CAPTURES_WITH_TIME = ["json", "json_lines", "json_stream", "msgpack", "notime_msgpack", "gzip_json", "iso_nodate"]
# Without `time`, fluent-bit's own timestamp is all there is, at the precision of its date format.
DATE_ONLY = {
    "notime_double": "date", "notime_iso8601": "date", "notime_epoch": "date",
    "notime_epoch_ms": "date", "notime_java_sql": "date", "notime_datekey_ts": "ts",
}


def decode_capture(name: str, date_key: str = "date"):
    headers = fluent_bit_headers(name)
    body = fluent_bit_body(name)
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return BatchDecoder(LIMIT, date_key).decode(body, headers["Content-Type"])


@pytest.mark.parametrize("capture", CAPTURES_WITH_TIME)
def test_each_format_yields_the_same_lines_with_nanosecond_times(capture):
    reference = BatchDecoder(LIMIT).decode(fluent_bit_body("json"), "application/json").rows
    assert decode_capture(capture).rows == reference


@pytest.mark.parametrize("capture, date_key", DATE_ONLY.items())
def test_each_date_format_stamps_every_line_from_fluent_bits_date(capture, date_key):
    batch = decode_capture(capture, date_key)
    assert batch.rejected == 0
    assert [r.log for r in batch.rows] == [r["log"] for r in REFERENCE]
    # 2026-03-14T12:00:00.123456789Z, cut to the date format's precision (epoch: whole seconds).
    assert abs(batch.rows[0].ts_ns - 1773489600123456789) < 10**9


def test_a_renamed_date_key_is_ignored_unless_configured():
    batch = decode_capture("notime_datekey_ts", "date")
    assert batch.rows == [] and batch.rejected == 50


def test_the_msgpack_event_time_stamps_records_without_time():
    batch = decode_capture("notime_msgpack")
    assert batch.rows[0].ts_ns == 1773489600123456789


def test_msgpack_plain_maps_in_one_array_are_accepted():
    records = [{"kubernetes": r["kubernetes"], "log": r["log"], "time": r["time"]} for r in REFERENCE[:3]]
    batch = BatchDecoder(LIMIT).decode(msgpack.packb(records), "application/msgpack")
    assert [r.log for r in batch.rows] == [r["log"] for r in REFERENCE[:3]]


def test_an_invalid_msgpack_record_costs_only_itself():
    records = [REFERENCE[0], {"log": "no kubernetes", "time": REFERENCE[0]["time"]}, REFERENCE[1]]
    body = b"".join(msgpack.packb(r) for r in records)
    batch = BatchDecoder(LIMIT).decode(body, "application/msgpack")
    assert (len(batch.rows), batch.rejected, batch.errors[0].index) == (2, 1, 1)


def test_an_invalid_json_lines_record_costs_only_itself():
    lines = [json.dumps(REFERENCE[0]), json.dumps({"log": "no kubernetes"}), json.dumps(REFERENCE[1])]
    batch = BatchDecoder(LIMIT).decode("\n".join(lines).encode(), "application/x-ndjson")
    assert (len(batch.rows), batch.rejected, batch.errors[0].index) == (2, 1, 1)


def test_records_with_merge_log_keys_keep_their_line():
    merged = {**REFERENCE[0], "level": "info", "msg": "parsed by Merge_Log", "nested": {"a": [1, 2]}}
    batch = BatchDecoder(LIMIT).decode(json.dumps([merged]).encode(), "application/json")
    assert batch.rows[0].log == REFERENCE[0]["log"]


@pytest.mark.parametrize("body, content_type", [
    (b"\xc1\xc1", "application/msgpack"),
    (json.dumps(REFERENCE[0]).encode() + b'{"b": ', "application/json"),
])
def test_a_corrupt_stream_is_an_invalid_body(body, content_type):
    with pytest.raises(InvalidBody):
        BatchDecoder(LIMIT).decode(body, content_type)


# --- Offset_Key and Path_Key (capture json_offset_key: no kubernetes map, so one is added) ---


def offset_capture_records() -> list[dict]:
    records = json.loads(fluent_bit_body("json_offset_key"))
    for r in records:  # as the kubernetes filter adds it
        r["kubernetes"] = REFERENCE[0]["kubernetes"]
    return records


def test_the_offset_capture_keeps_each_lines_offset_and_file():
    records = offset_capture_records()
    batch = BatchDecoder(LIMIT).decode(json.dumps(records).encode(), "application/json")
    assert batch.rejected == 0
    assert [(r.offset, r.log_file) for r in batch.rows] == [(r["offset"], r["log_file"]) for r in records]
    assert batch.rows[1].offset == 95 and batch.rows[0].log_file.startswith("/var/log/containers/")


def test_the_offset_capture_decodes_to_the_same_lines_as_the_plain_capture():
    batch = BatchDecoder(LIMIT).decode(json.dumps(offset_capture_records()).encode(), "application/json")
    reference = BatchDecoder(LIMIT).decode(fluent_bit_body("json"), "application/json").rows
    assert [(r.ts_ns, r.log, r.stream) for r in batch.rows] == [(r.ts_ns, r.log, r.stream) for r in reference]


def test_offsets_arrive_in_msgpack_bodies_too():
    records = offset_capture_records()[:3]
    batch = BatchDecoder(LIMIT).decode(msgpack.packb(records), "application/msgpack")
    assert [r.offset for r in batch.rows] == [r["offset"] for r in records]


def test_renamed_offset_and_path_keys_are_read_only_when_configured():
    records = [{**{k: v for k, v in r.items() if k not in ("offset", "log_file")}, "pos": r["offset"], "file": r["log_file"]}
               for r in offset_capture_records()]
    body = json.dumps(records).encode()
    assert {r.offset for r in BatchDecoder(LIMIT).decode(body, "application/json").rows} == {None}
    renamed = BatchDecoder(LIMIT, offset_key="pos", path_key="file").decode(body, "application/json").rows
    assert [(r.offset, r.log_file) for r in renamed] == [(r["pos"], r["file"]) for r in records]
