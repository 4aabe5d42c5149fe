"""The compiled fast paths (common._native, native/src/lib.rs) against their Python references.

`decode_json_batch` may decline any body (None: the Python decoder decides), but what it returns
must be exactly what the Python decoder makes of the same body; `content_hashes` must give the
digests of common.row_keys.content_hash, which every stored line id depends on."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import workload
from common.native import native
from common.records import BatchDecoder, InvalidBody
from common.row_keys import content_hash, python_content_hashes

FLUENT_BIT = Path(__file__).resolve().parents[1] / "data" / "fluent-bit"
MAX_LINE_BYTES = 200


@pytest.fixture(scope="module")
def compiled():
    module = native()
    assert module is not None, "common._native is not built: `make install` builds it (needs cargo)"
    return module


def decoders(max_line_bytes: int = MAX_LINE_BYTES) -> tuple[BatchDecoder, BatchDecoder]:
    return BatchDecoder(max_line_bytes), BatchDecoder(max_line_bytes, compiled=False)


def assert_same_as_python(compiled, body: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> bool:
    """The compiled decode equals the Python one wherever it takes the body; whether it took it."""
    fast, reference = decoders(max_line_bytes)
    taken = compiled.decode_json_batch(body, max_line_bytes) is not None
    try:
        expected = reference.decode(body, "application/json")
    except InvalidBody as error:
        assert not taken
        with pytest.raises(InvalidBody, match=re.escape(str(error))):
            fast.decode(body, "application/json")
        return False
    decoded = fast.decode(body, "application/json")
    assert decoded.rows.containers == expected.rows.containers
    assert (decoded.errors, decoded.rejected, decoded.truncated_lines) == (
        expected.errors, expected.rejected, expected.truncated_lines)
    return taken


@pytest.mark.parametrize("capture", ["json", "notime_double", "notime_epoch", "notime_epoch_ms", "iso_nodate"])
def test_fluent_bits_json_bodies_take_the_compiled_path_with_the_python_result(compiled, capture):
    assert assert_same_as_python(compiled, (FLUENT_BIT / capture / "body").read_bytes(), 16384)


@pytest.mark.parametrize("capture", ["notime_iso8601", "notime_java_sql", "json_offset_key"])
def test_string_dates_and_offsets_are_left_to_python(compiled, capture):
    assert not assert_same_as_python(compiled, (FLUENT_BIT / capture / "body").read_bytes(), 16384)


def test_the_bench_corpus_takes_the_compiled_path(compiled):
    for body in workload.bodies("ns", 2):
        assert assert_same_as_python(compiled, body, 16384)


def record(**fields) -> dict:
    base = {"log": "line\n", "stream": "stdout", "time": "2026-03-14T12:00:00.5Z",
            "kubernetes": {"namespace_name": "ns", "pod_name": "pod", "container_name": "app"}}
    return {**base, **fields}


@pytest.mark.parametrize("body", [
    json.dumps([record(kubernetes={"namespace_name": "ns", "pod_name": "  ", "container_name": "app"})]),
    json.dumps([record(time="2026-02-29T00:00:00Z")]),  # not a leap year
    json.dumps([record(time="2026-03-14T12:00:60Z")]),
    json.dumps([record(time="2026-03-14t12:00:00Z")]),
    json.dumps([record(time="2026-03-14T12:00:00+01:00")]),
    json.dumps([record(time="1969-12-31T23:59:59.9Z")]),
    json.dumps([record(log="x" * (MAX_LINE_BYTES + 1))]),  # truncated by Python
    json.dumps([record(log=None)]),
    json.dumps([record(offset=17, log_file="/var/log/pods/a.log")]),
    json.dumps([record(date=True)]),
    json.dumps([record(date=10**30)]),
    '[{"log": "a", "log": "b", "time": "2026-03-14T12:00:00Z", '
    '"kubernetes": {"namespace_name": "ns", "pod_name": "p", "container_name": "c"}}]',
    '[{"log": "a", "time": "2026-03-14T12:00:00Z", "extra": "\\ud800", '
    '"kubernetes": {"namespace_name": "ns", "pod_name": "p", "container_name": "c"}}]',
    '[{"log": "a", "time": "2026-03-14T12:00:00Z", "kubernetes": {"namespace_name": "ns", "pod_name": "p", '
    '"container_name": "c", "labels": {"a": "1", "a": "2"}}}]',
    '{"log": "not an array"}',
    "[1, 2]",
    "[",
])
def test_bodies_outside_the_fast_path_are_decided_by_python(compiled, body):
    assert not assert_same_as_python(compiled, body.encode())


VALID = '"log": "a", "time": "2026-03-14T12:00:00Z", "kubernetes": {"namespace_name": "n", "pod_name": "p", "container_name": "c"}'


@pytest.mark.parametrize("extra", [
    '"\\ud800"', '"\\udc00"', '"\\ud83d\\u0041"', '"\\\\ud800"', '"\\ud83d\\ude80"', '"\\uD83D\\uDE80"',
    '"a\tb"', '"\\x41"', '"\\u12"', "01", "1.", "-", "1e999", "-0", "1E5", "[" * 300 + "]" * 300,
    '{"a": 1,}', "[1,]", "nul", "NaN", "Infinity", '"\udcff"',
])
def test_malformed_or_odd_json_in_a_skipped_value_is_answered_as_python_answers(compiled, extra):
    assert_same_as_python(compiled, ('[{' + VALID + ', "extra": ' + extra + '}]').encode("utf-8", "surrogateescape"))


def test_a_body_of_only_valid_records_of_several_pods_keeps_their_order_and_metadata(compiled):
    labels_a, labels_b = {"app": "web", "tier": "1"}, {"tier": "1", "app": "web"}  # equal, in other orders
    body = json.dumps([
        record(log="1", kubernetes={"namespace_name": "ns", "pod_name": "b", "container_name": "app", "labels": labels_a}),
        record(log="2", time="2026-03-14T12:00:00Z",
               kubernetes={"namespace_name": "ns", "pod_name": "a", "container_name": "app", "host": "n1"}),
        record(log="3", stream=None, date=1773489600.25, time=None,
               kubernetes={"namespace_name": "ns", "pod_name": "b", "container_name": "app", "labels": labels_b}),
        record(log="4", time=None, date=1773489600123,
               kubernetes={"namespace_name": "ns", "pod_name": "b", "container_name": "app", "labels": None}),
    ]).encode()
    assert assert_same_as_python(compiled, body)


names = st.one_of(st.sampled_from(["ns", "web-1", "app", " ", "", "日本", "a" * 254, "\u2003x"]),
                  st.text(max_size=6))
times = st.one_of(
    st.sampled_from(["2026-03-14T12:00:00Z", "2026-03-14T12:00:00.000000001Z", "2024-02-29T23:59:59.9Z",
                     "2262-04-11T23:47:16Z", "1970-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                     "2026-03-14 12:00:00Z", "2026-03-14T12:00:00.1234567890Z", "２０２６-03-14T12:00:00Z"]),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    st.text(max_size=30), st.none(), st.integers())
dates = st.one_of(st.none(), st.integers(min_value=-(10**20), max_value=10**20),
                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans())
labels = st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
                   st.dictionaries(st.text(max_size=2), st.integers(), min_size=1, max_size=2))
kubernetes = st.fixed_dictionaries(
    {"namespace_name": names, "pod_name": st.sampled_from(["p1", "p2"]), "container_name": names},
    optional={"host": st.one_of(st.none(), st.sampled_from(["n1", "n2"]), st.integers()), "labels": labels,
              "pod_id": st.sampled_from(["id", None])})
records = st.fixed_dictionaries(
    {"kubernetes": kubernetes},
    optional={"log": st.one_of(st.text(max_size=60), st.none(), st.integers()), "time": times, "date": dates,
              "stream": st.one_of(st.sampled_from(["stdout", "stderr"]), st.none(), st.integers()),
              "offset": st.one_of(st.none(), st.integers(), st.text(max_size=2)),
              "extra": st.recursive(st.none() | st.integers() | st.text(max_size=3),
                                    lambda inner: st.lists(inner, max_size=2), max_leaves=4)})


def runtime_time(moment, digits: int) -> str:
    """Go's RFC3339Nano with `digits` of fraction, trailing zeros trimmed, as Docker and CRI write."""
    fraction = f"{moment.microsecond:06d}{moment.microsecond % 7:03d}"[:digits].rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


valid_times = st.builds(runtime_time, st.datetimes(min_value=datetime.datetime(1970, 1, 1),
                                                   max_value=datetime.datetime(2261, 12, 31)),
                        st.integers(0, 9))
valid_dates = st.one_of(st.floats(0, 9.2e9, allow_nan=False), st.integers(0, 9 * 10**12))
valid_records = st.fixed_dictionaries(
    {"kubernetes": st.fixed_dictionaries(
        {"namespace_name": st.sampled_from(["ns", "kube-system"]), "pod_name": st.sampled_from(["p1", "p2", "p3"]),
         "container_name": st.sampled_from(["app", "sidecar"])},
        optional={"host": st.sampled_from(["n1", "n2", None]), "pod_id": st.sampled_from(["u1", None]),
                  "labels": st.one_of(st.none(), st.dictionaries(st.sampled_from(["app", "tier", "v"]),
                                                                 st.sampled_from(["web", "1", "ü"]), max_size=3))}),
     "log": st.text(max_size=45),  # at most 180 bytes: none is truncated
     "stamp": st.one_of(st.fixed_dictionaries({"time": valid_times}), st.fixed_dictionaries({"date": valid_dates}),
                        st.fixed_dictionaries({"time": valid_times, "date": valid_dates}))},
    optional={"stream": st.sampled_from(["stdout", "stderr", None])},
).map(lambda r: {**{k: v for k, v in r.items() if k != "stamp"}, **r["stamp"]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=6), st.booleans())
def test_any_array_of_records_decodes_as_python_decodes_it(compiled, batch, ascii_only):
    assert_same_as_python(compiled, json.dumps(batch, ensure_ascii=ascii_only).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_records, max_size=12), st.booleans())
def test_any_array_of_valid_records_decodes_as_python_decodes_it(compiled, batch, ascii_only):
    assert_same_as_python(compiled, json.dumps(batch, ensure_ascii=ascii_only).encode())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=8)), st.text(max_size=300)), max_size=20))
def test_compiled_content_hashes_are_the_stored_line_hashes(compiled, lines):
    streams, logs = [s for s, _ in lines], [log for _, log in lines]
    # Lone surrogates cannot be stored (the decoders refuse them): both raise alike.
    try:
        expected = [content_hash(stream, log) for stream, log in lines]
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            compiled.content_hashes(streams, logs)
        return
    assert compiled.content_hashes(streams, logs) == expected == python_content_hashes(streams, logs)
