"""common.loki_push: Loki push bodies (fluent-bit's JSON, Promtail's snappy protobuf) become rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.loki_push import (
    BodyTooLarge,
    format_selector,
    LabelSyntaxError,
    LokiEntryError,
    LokiLabelNames,
    LokiPushDecoder,
    UnsupportedContentType,
    loki_rejection_message,
    parse_stream_selector,
)
from common.proto import push_pb2
from common.records import MAX_REPORTED_ERRORS, InvalidBody, LogRow
from common.timestamps import parse_rfc3339_ns

LOKI_DIR = Path(__file__).resolve().parents[1] / "data" / "loki-push"
SOURCE_LOG = Path(__file__).resolve().parents[1] / "data" / "fluent-bit" / "source-container.log"
LIMIT = 256 * 1024
BOUND = 1024 * 1024
POD_ID = "0f5225d5-4e9d-11e8-8b6b-02425d6e035a"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NGINX = '{namespace="default", pod="web-7d9f8-abcde", container="nginx"}'


def source_lines() -> list[dict]:
    """The 50 Docker log lines every capture was made from: the expected lines and times."""
    lines = [json.loads(line) for line in SOURCE_LOG.read_text().splitlines()]
    assert len(lines) == 50
    return lines


def capture(client: str, name: str) -> tuple[bytes, dict[str, str]]:
    folder = LOKI_DIR / client / name
    if not folder.is_dir():  # a missing capture is a failure, never a skip
        raise FileNotFoundError(f"Loki push capture not found: {folder}")
    headers = json.loads((folder / "headers.json").read_text())["headers"]
    body = (folder / "body").read_bytes()
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)  # as the HTTP layer does before decoding
    return body, headers


def decoder(**names) -> LokiPushDecoder:
    return LokiPushDecoder(LIMIT, BOUND, LokiLabelNames(**names))


def decode_capture(client: str, name: str):
    body, headers = capture(client, name)
    return decoder().decode(body, headers["Content-Type"])


def push(*streams: tuple[str, list]) -> bytes:
    """A snappy PushRequest; each stream is (labels, [(seconds, nanos, line[, metadata])...]),
    seconds None for an entry without a timestamp."""
    request = push_pb2.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for seconds, nanos, line, *metadata in entries:
            entry = stream.entries.add(line=line)
            if seconds is not None:
                entry.timestamp.seconds, entry.timestamp.nanos = seconds, nanos
            for name, value in (metadata[0] if metadata else {}).items():
                entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def json_push(*streams: tuple[dict, list]) -> bytes:
    return json.dumps({"streams": [{"stream": labels, "values": values} for labels, values in streams]}).encode()


NAMES = {"namespace": "default", "pod": "web-7d9f8-abcde", "container": "nginx"}


# --- the real captures ---


@pytest.mark.parametrize("name", ["raw", "raw_gzip", "structured_tenant"])
def test_fluent_bit_raw_lines_decode_exactly_with_nanosecond_times(name):
    batch = decode_capture("fluent-bit", name)
    expected = source_lines()
    assert (len(batch.rows), batch.rejected, batch.errors) == (50, 0, [])
    assert [row.log for row in batch.rows] == [line["log"] for line in expected]
    assert [row.ts_ns for row in batch.rows] == [parse_rfc3339_ns(line["time"]) for line in expected]
    assert [row.stream for row in batch.rows] == [line["stream"] for line in expected]
    assert {(r.namespace, r.pod_name, r.container_name) for r in batch.rows} == {("default", "web-7d9f8-abcde", "nginx")}


def test_fluent_bit_first_and_last_lines_keep_their_bytes_and_trailing_newline():
    rows = decode_capture("fluent-bit", "raw").rows
    assert rows[0].log.encode() == b"GET /index.html 200\n"
    assert rows[0].ts_ns == 1773489600123456789
    assert rows[-1].log.encode() == "ünïcödé ✓ 日本語 🚀\n".encode()
    assert rows[-1].ts_ns == 1773489604123456838


def test_fluent_bit_raw_has_no_other_labels():
    assert {row.labels for row in decode_capture("fluent-bit", "raw").rows} == {None}


def test_structured_metadata_is_kept_in_the_row_labels():
    rows = decode_capture("fluent-bit", "structured_tenant").rows
    assert all(row.labels == {"pod_id": POD_ID, "node": "node-1"} for row in rows)


def test_fluent_bit_json_line_format_keeps_the_whole_record_as_the_line_and_job_as_a_label():
    rows = decode_capture("fluent-bit", "json_line").rows
    expected = source_lines()
    assert len(rows) == 50
    assert [json.loads(row.log)["log"] for row in rows] == [line["log"] for line in expected]
    assert [row.ts_ns for row in rows] == [parse_rfc3339_ns(line["time"]) for line in expected]
    assert all(row.labels == {"job": "fluent-bit"} and row.stream is None for row in rows)


def test_fluent_bit_key_value_format_keeps_the_line_as_sent():
    rows = decode_capture("fluent-bit", "key_value").rows
    expected = source_lines()
    assert len(rows) == 50
    for row, line in zip(rows, expected):
        assert row.log == f'log="{line["log"]}" stream="{line["stream"]}" time="{line["time"]}"'
        assert (row.stream, row.labels) == (None, None)


def test_promtail_protobuf_capture_decodes_exactly():
    batch = decode_capture("promtail", "docker_stage")
    assert (len(batch.rows), batch.rejected) == (50, 0)
    # Promtail groups entries by stream: the stderr stream's entries, then stdout's.
    expected = sorted(source_lines(), key=lambda line: line["stream"] != "stderr")
    assert [(r.log, r.stream, r.ts_ns) for r in batch.rows] == [
        (line["log"], line["stream"], parse_rfc3339_ns(line["time"])) for line in expected
    ]
    assert batch.rows[0].log.encode() == b"GET /index.html 200\n"
    assert {(r.namespace, r.pod_name, r.container_name) for r in batch.rows} == {("default", "web-7d9f8-abcde", "nginx")}
    filename = "/var/log/containers/web-7d9f8-abcde_default_nginx-0123.log"
    assert all(r.labels == {"filename": filename, "job": "kubernetes-pods"} for r in batch.rows)


# --- protobuf ---


def test_every_stream_of_a_protobuf_push_becomes_rows_in_order():
    body = push(
        ('{namespace="a", pod="p1", container="c", stream="stdout"}', [(1, 5, "one\n"), (2, 0, "two\n")]),
        ('{namespace="b", pod="p2", container="c", app="web"}', [(3, 999_999_999, "three")]),
    )
    assert decoder().decode(body, PROTOBUF).rows == [
        LogRow("a", "p1", "c", 1_000_000_005, "one\n", "stdout"),
        LogRow("a", "p1", "c", 2_000_000_000, "two\n", "stdout"),
        LogRow("b", "p2", "c", 3_999_999_999, "three", None, labels={"app": "web"}),
    ]


def test_protobuf_structured_metadata_is_merged_into_the_labels():
    body = push(('{namespace="a", pod="p", container="c", app="web"}', [(1, 0, "x", {"trace_id": "abc"})]))
    assert decoder().decode(body, PROTOBUF).rows[0].labels == {"app": "web", "trace_id": "abc"}


def test_metadata_named_like_a_stream_label_is_kept_with_the_extracted_suffix():
    body = push(('{namespace="a", pod="p", container="c", app="web"}',
                 [(1, 0, "x", {"app": "api", "pod": "other"})]))
    row = decoder().decode(body, PROTOBUF).rows[0]
    assert (row.pod_name, row.labels) == ("p", {"app": "web", "app_extracted": "api", "pod_extracted": "other"})


def test_the_name_labels_are_settings():
    body = push(('{namespace_name="a", pod_name="p", container_name="c", source="stderr", pod="x"}', [(1, 0, "l")]))
    names = decoder(namespace="namespace_name", pod="pod_name", container="container_name", stream="source")
    assert names.decode(body, PROTOBUF).rows == [LogRow("a", "p", "c", 1_000_000_000, "l", "stderr", labels={"pod": "x"})]


@pytest.mark.parametrize("labels", [
    'namespace="a", pod="p", container="c"',  # no braces
    '{namespace=a, pod="p", container="c"}',  # unquoted value
    '{namespace=~"a", pod="p", container="c"}',  # not an equality matcher
    '{namespace!="a", pod="p", container="c"}',
    '{namespace="a", pod="p", container="c"} junk',
    '{namespace="a", pod="p", container="c",}',
    '{namespace="a", namespace="b", pod="p", container="c"}',
    '{namespace="a\\q", pod="p", container="c"}',  # unknown escape
    '{namespace="a\\xc3", pod="p", container="c"}',  # escapes that are not UTF-8
    '{namespace="a", 1pod="p", container="c"}',
    '{namespace="a, pod="p", container="c"}',
    '{namespace="a", pod="p", container="c"',
    "",
])
def test_a_malformed_label_string_rejects_that_stream_alone(labels):
    body = push((labels, [(1, 0, "bad"), (2, 0, "bad")]), ('{namespace="a", pod="p", container="c"}', [(3, 0, "good")]))
    batch = decoder().decode(body, PROTOBUF)
    assert [row.log for row in batch.rows] == ["good"]
    assert batch.rejected == 2
    (error,) = batch.errors
    assert (error.stream, error.entry, error.index) == (0, None, 0)
    assert error.reason.startswith(f"Error parsing labels '{labels}' with error: ")


@pytest.mark.parametrize("labels, missing", [
    ('{pod="p", container="c"}', "namespace"),
    ('{namespace="a", container="c"}', "pod"),
    ('{namespace="a", pod="p"}', "container"),
    ("{}", "namespace"),
])
def test_a_stream_without_a_name_label_is_rejected_alone(labels, missing):
    body = push(('{namespace="a", pod="p", container="c"}', [(1, 0, "good")]), (labels, [(2, 0, "x"), (3, 0, "y")]))
    batch = decoder().decode(body, PROTOBUF)
    assert ([row.log for row in batch.rows], batch.rejected) == (["good"], 2)
    (error,) = batch.errors
    assert (error.stream, error.entry, error.index, error.labels) == (1, None, 1, labels)
    assert f"has no `{missing}` label" in error.reason


@pytest.mark.parametrize("value", ["", "   ", "n" * 254])
def test_a_blank_or_too_long_name_rejects_the_stream(value):
    body = push((f'{{namespace="{value}", pod="p", container="c"}}', [(1, 0, "x")]))
    batch = decoder().decode(body, PROTOBUF)
    assert (batch.rows, batch.rejected) == ([], 1)
    assert "must be 1 to 253 characters, not blank" in batch.errors[0].reason


def test_a_name_of_253_characters_is_accepted():
    body = push((f'{{namespace="{"n" * 253}", pod="p", container="c"}}', [(1, 0, "x")]))
    assert decoder().decode(body, PROTOBUF).rows[0].namespace == "n" * 253


@pytest.mark.parametrize("seconds, nanos, reason", [
    (-1, 0, "timestamp outside"),
    (2**62, 0, "timestamp outside"),
    (9_223_372_036, 854_775_808, "timestamp outside"),  # one ns past int64
    (1, 1_000_000_000, "nanos must be 0 to 999999999"),
    (1, -1, "nanos must be 0 to 999999999"),
    (None, 0, "entry has no timestamp"),
])
def test_a_protobuf_entry_with_a_bad_timestamp_is_rejected_alone(seconds, nanos, reason):
    body = push((NGINX, [(1, 0, "before"), (seconds, nanos, "bad"), (2, 0, "after")]))
    batch = decoder().decode(body, PROTOBUF)
    assert ([row.log for row in batch.rows], batch.rejected) == (["before", "after"], 1)
    (error,) = batch.errors
    assert isinstance(error, LokiEntryError)
    assert (error.stream, error.entry, error.index, error.labels) == (0, 1, 1, NGINX)
    assert reason in error.reason


def test_the_last_storable_nanosecond_is_accepted():
    body = push((NGINX, [(9_223_372_036, 854_775_807, "last")]))
    assert decoder().decode(body, PROTOBUF).rows[0].ts_ns == 2**63 - 1


def test_a_body_without_content_type_is_taken_as_protobuf_like_loki_does():
    assert len(decoder().decode(push((NGINX, [(1, 0, "x")])), None).rows) == 1


def test_an_empty_push_request_has_no_rows():
    batch = decoder().decode(bytes(cramjam.snappy.compress_raw(b"")), PROTOBUF)
    assert (batch.rows, batch.rejected) == ([], 0)


@pytest.mark.parametrize("body, message", [
    (b"\xff\xff\xff\xff\xff\xff", "not snappy block format"),
    (b"\x05abc", "not snappy block format"),  # declares 5 bytes, holds a broken block
    (bytes(cramjam.snappy.compress_raw(b"\x0a\x05{}")), "not a valid logproto.PushRequest"),  # truncated field
    (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), "not a valid logproto.PushRequest"),
    (bytes(cramjam.snappy.compress(push_pb2.PushRequest().SerializeToString() + b"x" * 10)), "snappy framed format"),
])
def test_a_protobuf_body_that_is_not_snappy_or_not_a_push_request_is_an_invalid_body(body, message):
    with pytest.raises(InvalidBody, match=message):
        decoder().decode(body, PROTOBUF)


def test_a_snappy_body_declaring_more_than_the_bound_is_refused_without_decompressing(monkeypatch):
    body = bytes(cramjam.snappy.compress_raw(b"\0" * (BOUND + 1)))
    assert len(body) < BOUND // 20  # a bomb: small body, large declared size

    def never(*_):
        raise AssertionError("decompressed a body over the bound")

    monkeypatch.setattr(cramjam.snappy, "decompress_raw", never)
    with pytest.raises(BodyTooLarge, match=f"declares {BOUND + 1} decompressed bytes, more than {BOUND}"):
        decoder().decode(body, PROTOBUF)


def test_a_snappy_header_declaring_4_gib_is_refused():
    with pytest.raises(BodyTooLarge):
        decoder().decode(b"\xff\xff\xff\xff\x0f" + b"\0" * 16, PROTOBUF)


def test_a_snappy_body_of_exactly_the_bound_is_decoded():
    line = "x" * BOUND
    for _ in range(2):  # the line shrinks by the framing around it
        request = push_pb2.PushRequest()
        request.streams.add(labels=NGINX).entries.add(line=line).timestamp.seconds = 1
        line = line[: len(line) - (len(request.SerializeToString()) - BOUND)]
    payload = request.SerializeToString()
    assert len(payload) == BOUND
    batch = LokiPushDecoder(BOUND, BOUND).decode(bytes(cramjam.snappy.compress_raw(payload)), PROTOBUF)
    assert len(batch.rows) == 1


def test_body_too_large_is_an_invalid_body_for_a_caller_that_only_knows_invalid_body():
    assert issubclass(BodyTooLarge, InvalidBody)


# --- JSON ---


def test_json_entries_of_two_and_three_elements_are_read():
    body = json_push(({**NAMES, "stream": "stderr"}, [["1", "a"], ["2", "b", {"trace_id": "t"}]]))
    assert decoder().decode(body, JSON).rows == [
        LogRow("default", "web-7d9f8-abcde", "nginx", 1, "a", "stderr"),
        LogRow("default", "web-7d9f8-abcde", "nginx", 2, "b", "stderr", labels={"trace_id": "t"}),
    ]


def test_a_json_content_type_with_parameters_is_json():
    body = json_push((NAMES, [["1", "a"]]))
    assert len(decoder().decode(body, "application/json; charset=utf-8").rows) == 1


@pytest.mark.parametrize("entry, reason", [
    ([1773489600123456789, "line"], "Expected `str`, got `int`"),
    (["1", "a", {"k": "v"}, "extra"], "at most length 3"),
    (["1"], "at least length 2"),
    (["1", "a", {"k": 5}], "Expected `str`, got `int`"),
    ("1 line", "Expected `array`"),
    (["1.5", "a"], "integer nanoseconds"),
    (["", "a"], "integer nanoseconds"),
    ([" 1", "a"], "integer nanoseconds"),
    (["+1", "a"], "integer nanoseconds"),
    (["1_000", "a"], "integer nanoseconds"),
    (["1e9", "a"], "integer nanoseconds"),
    (["-1", "a"], "timestamp outside"),
    (["9223372036854775808", "a"], "timestamp outside"),
    (["1" * 5000, "a"], "timestamp outside"),
])
def test_a_bad_json_entry_is_rejected_alone(entry, reason):
    body = json_push((NAMES, [["1", "before"], entry, ["2", "after"]]))
    batch = decoder().decode(body, JSON)
    assert ([row.log for row in batch.rows], batch.rejected) == (["before", "after"], 1)
    (error,) = batch.errors
    assert (error.stream, error.entry, error.index) == (0, 1, 1)
    assert error.labels == '{container="nginx", namespace="default", pod="web-7d9f8-abcde"}'  # as Loki sorts them
    assert reason in error.reason


def test_the_largest_json_timestamp_is_accepted():
    body = json_push((NAMES, [[str(2**63 - 1), "last"]]))
    assert decoder().decode(body, JSON).rows[0].ts_ns == 2**63 - 1


@pytest.mark.parametrize("labels, reason", [
    ({**NAMES, "n": 5}, "`stream` must be an object of string labels"),
    ({**NAMES, "bad-name": "x"}, "Error parsing labels"),
    ({"pod": "p", "container": "c"}, "has no `namespace` label"),
    ({}, "has no `namespace` label"),
])
def test_a_bad_json_stream_rejects_its_entries_alone(labels, reason):
    body = json_push((labels, [["1", "x"], ["2", "y"]]), (NAMES, [["3", "good"]]))
    batch = decoder().decode(body, JSON)
    assert ([row.log for row in batch.rows], batch.rejected) == (["good"], 2)
    (error,) = batch.errors
    assert (error.stream, error.entry, error.index) == (0, None, 0)
    assert reason in error.reason


def test_a_json_stream_that_is_no_stream_counts_as_one_rejected_entry():
    body = b'{"streams": [5, {"stream": {"namespace": "a", "pod": "p", "container": "c"}, "values": [["1", "x"]]}]}'
    batch = decoder().decode(body, JSON)
    assert ([row.log for row in batch.rows], batch.rejected) == (["x"], 1)
    assert batch.errors[0].reason.startswith('a stream must be {"stream": {labels}, "values": [entries]}')


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"streams": 5}', b'{"stream": []}', b'{"streams": [', b"[" * 10_000])
def test_a_json_body_that_is_no_push_request_is_an_invalid_body(body):
    with pytest.raises(InvalidBody, match="body"):
        decoder().decode(body, JSON)


def test_a_json_push_with_no_streams_has_no_rows():
    batch = decoder().decode(b'{"streams": []}', JSON)
    assert (batch.rows, batch.rejected) == ([], 0)


def test_an_unknown_content_type_is_refused_naming_the_two_accepted():
    with pytest.raises(UnsupportedContentType, match="application/json or application/x-protobuf"):
        decoder().decode(b"{}", "text/plain")


def test_a_line_longer_than_the_limit_is_truncated_and_counted():
    batch = LokiPushDecoder(100, BOUND).decode(json_push((NAMES, [["1", "é" * 200], ["2", "short"]])), JSON)
    assert batch.truncated_lines == 1
    assert len(batch.rows[0].log.encode()) <= 100 and batch.rows[0].log.endswith("[truncated by kube-insight-logserver]")
    assert batch.rows[1].log == "short"


def test_only_the_first_errors_are_reported_but_every_rejection_is_counted():
    body = json_push((NAMES, [["x", "bad"]] * 25 + [["1", "good"]]))
    batch = decoder().decode(body, JSON)
    assert (len(batch.rows), batch.rejected, len(batch.errors)) == (1, 25, MAX_REPORTED_ERRORS)
    assert [error.index for error in batch.errors] == list(range(MAX_REPORTED_ERRORS))


# --- the label string ---


def test_a_selector_reads_go_escapes_and_raw_strings():
    text = r'{a="q\"b\\s\n\t\u00e9\U0001F680\xc3\xa9\101", b=`raw\n`, c=""}'
    assert parse_stream_selector(text) == {"a": 'q"b\\s\n\té🚀éA', "b": "raw\\n", "c": ""}


def test_a_selector_allows_whitespace_between_tokens():
    assert parse_stream_selector(' { a = "1" ,\n\tb="2" } ') == {"a": "1", "b": "2"}


def test_an_empty_selector_has_no_labels():
    assert parse_stream_selector("{}") == {}


@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",)))))
def test_a_selector_as_loki_writes_it_reads_back_as_the_same_labels(labels):
    assert parse_stream_selector(format_selector(labels)) == labels


@pytest.mark.parametrize("text", [
    '{a="\\ud800"}',  # a surrogate is no character
    '{a="\\U00110000"}',
    '{a="\\400"}',  # octal above 255
    "{a='x'}",
    '{a="x\ny"}',
    '{a="\\\'"}',  # \' is a rune-literal escape only
])
def test_a_selector_value_that_is_no_go_string_is_refused(text):
    with pytest.raises(LabelSyntaxError):
        parse_stream_selector(text)


# --- the answer ---


def test_the_rejection_message_is_worded_like_lokis():
    body = push(
        (NGINX, [(1773489600, 123456789, "ok"), (-1, 0, "old")]),
        ('{pod="p", container="c"}', [(1, 0, "x"), (2, 0, "y")]),
    )
    batch = decoder().decode(body, PROTOBUF)
    assert loki_rejection_message(batch) == (
        "entry with timestamp 1969-12-31 23:59:59 +0000 UTC ignored, reason: "
        "'timestamp outside 1970-01-01T00:00:00Z .. 2262-04-11T23:47:16Z' for stream: " + NGINX + ",\n"
        "stream '{pod=\"p\", container=\"c\"}' has no `namespace` label: every stream needs the labels `namespace`, "
        "`pod`, `container` (LOKI_NAMESPACE_LABEL, LOKI_POD_LABEL, LOKI_CONTAINER_LABEL),\n"
        "total ignored: 3 out of 4"
    )


def test_the_rejection_message_gives_go_times_with_nanoseconds():
    batch = decoder().decode(push((NGINX, [(-1, 5, "old")])), PROTOBUF)
    assert loki_rejection_message(batch).startswith("entry with timestamp 1969-12-31 23:59:59.000000005 +0000 UTC ignored")


# --- the inline common case and add() agree (each entry below leaves the inline path) ---


@pytest.mark.parametrize("line, metadata", [
    ("é" * 200, None),  # truncated
    ("x", {"app": "api", "trace_id": "t"}),  # metadata meets a stream label
    ("x", {"namespace": "n"}),  # metadata meets a name label
])
def test_json_and_protobuf_give_the_same_row_for_an_unusual_entry(line, metadata):
    labels = {**NAMES, "app": "web"}
    selector = format_selector(labels)
    as_json = json_push((labels, [["5", line, *([metadata] if metadata else [])]]))
    as_protobuf = push((selector, [(0, 5, line, *([metadata] if metadata else []))]))
    from_json = LokiPushDecoder(100, BOUND).decode(as_json, JSON)
    from_protobuf = LokiPushDecoder(100, BOUND).decode(as_protobuf, PROTOBUF)
    assert from_json == from_protobuf
    assert len(from_json.rows) == 1 and from_json.rows[0].labels["app"] == "web"


def test_protobuf_metadata_naming_one_name_twice_keeps_both_values():
    request = push_pb2.PushRequest()
    entry = request.streams.add(labels=format_selector(NAMES)).entries.add(line="x")
    entry.timestamp.seconds = 1
    entry.structuredMetadata.add(name="trace_id", value="a")
    entry.structuredMetadata.add(name="trace_id", value="b")
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    assert decoder().decode(body, PROTOBUF).rows[0].labels == {"trace_id": "a", "trace_id_extracted": "b"}


def test_a_protobuf_time_past_int64_nanoseconds_is_rejected_alone():
    body = push((format_selector(NAMES), [(2**62, 0, "far"), (1, 0, "kept")]))
    batch = decoder().decode(body, PROTOBUF)
    assert [row.log for row in batch.rows] == ["kept"] and batch.rejected == 1
