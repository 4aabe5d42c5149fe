"""The compiled Loki JSON decode (common._native `decode_loki_json`, native/src/loki.rs) against
the Python decoder (common.loki_push), which stays the rule.

The compiled decode may decline any body (None: the Python decoder decides), but what it returns
must be what the Python decoder queues for the same body: the same containers, metadata, times,
lines and streams (its rows grouped as encode_payload groups them), with nothing rejected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import workload
from common.container_lines import group_rows
from common.loki_labels import LokiLabelNames
from common.loki_push import LokiPushDecoder
from common.native import native
from common.records import InvalidBody

LOKI_DIR = Path(__file__).resolve().parents[1] / "data" / "loki-push" / "fluent-bit"
JSON = "application/json"
MAX_LINE_BYTES = 40
BOUND = 1 << 24


@pytest.fixture(scope="module")
def compiled():
    module = native()
    assert module is not None, "common._native is not built: `make install` builds it (needs cargo)"
    return module


def assert_same_as_python(compiled, body: bytes, max_line_bytes: int = MAX_LINE_BYTES,
                          names: LokiLabelNames = LokiLabelNames()) -> bool:
    """The compiled decode equals the Python one wherever it takes the body; whether it took it."""
    fast = LokiPushDecoder(max_line_bytes, BOUND, names)
    reference = LokiPushDecoder(max_line_bytes, BOUND, names, compiled=False)
    taken = compiled.decode_loki_json(body, [names.namespace, names.pod, names.container, names.stream],
                                      max_line_bytes) is not None
    try:
        expected = reference.decode(body, JSON)
    except InvalidBody as error:
        assert not taken
        with pytest.raises(InvalidBody, match=str(error)[:40].replace("(", r"\(").replace("[", r"\[")):
            fast.decode(body, JSON)
        return False
    decoded = fast.decode(body, JSON)
    assert (decoded.errors, decoded.rejected, decoded.truncated_lines) == (
        expected.errors, expected.rejected, expected.truncated_lines)
    if taken:
        assert (expected.rejected, expected.truncated_lines) == (0, 0)
        assert decoded.rows.containers == group_rows(expected.rows)
    else:
        assert list(decoded.rows) == list(expected.rows)
    return taken


@pytest.mark.parametrize("capture", ["raw", "raw_gzip", "json_line", "key_value", "structured_tenant"])
def test_fluent_bits_loki_bodies_take_the_compiled_path_with_the_python_result(compiled, capture):
    folder = LOKI_DIR / capture
    body = (folder / "body").read_bytes()
    if json.loads((folder / "headers.json").read_text())["headers"].get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert assert_same_as_python(compiled, body, 16384)


def test_the_bench_corpus_takes_the_compiled_path(compiled):
    for records in workload.batches("ns", 2):
        assert assert_same_as_python(compiled, workload.loki_json_body(records), 16384)


def test_other_label_names_are_read_as_configured(compiled):
    body = json.dumps({"streams": [{"stream": {"k8s_ns": "n", "k8s_pod": "p", "c": "app", "s": "stderr", "x": "1"},
                                    "values": [["5", "line"]]}]}).encode()
    names = LokiLabelNames("k8s_ns", "k8s_pod", "c", "s")
    assert assert_same_as_python(compiled, body, names=names)
    [(namespace, pod, container, metas, ts, logs, streams, meta_of)] = compiled.decode_loki_json(
        body, ["k8s_ns", "k8s_pod", "c", "s"], MAX_LINE_BYTES)
    assert (namespace, pod, container, metas, ts, logs, streams, meta_of) == (
        "n", "p", "app", [(None, None, None, {"x": "1"})], [5], ["line"], ["stderr"], [0])


def stream(labels=None, values=None) -> dict:
    return {"stream": {"namespace": "ns", "pod": "p", "container": "c", "stream": "stdout"} if labels is None else labels,
            "values": [["1000", "line"]] if values is None else values}


@pytest.mark.parametrize("push", [
    {"streams": [stream(labels={"namespace": "ns", "pod": "p"})]},  # no container label
    {"streams": [stream(labels={"namespace": "ns", "pod": " ", "container": "c"})]},
    {"streams": [stream(labels={"namespace": "ns", "pod": "p", "container": "c", "bad-name": "x"})]},
    {"streams": [stream(values=[["-5", "line"]])]},
    {"streams": [stream(values=[["", "line"]])]},
    {"streams": [stream(values=[["99999999999999999999", "line"]])]},
    {"streams": [stream(values=[["1.5", "line"]])]},
    {"streams": [stream(values=[["١٢", "line"]])]},  # non-ASCII digits
    {"streams": [stream(values=[["1", "x" * (MAX_LINE_BYTES + 1)]])]},  # truncated by Python
    {"streams": [stream(values=[["1", "line", {"pod": "meets a stream label"}]])]},
    {"streams": [stream(values=[["1", "line", {"a": "b"}, "extra"]])]},
    {"streams": [stream(values=[["1"]])]},
    {"streams": [stream(values=[[1, "line"]])]},
    {"streams": [stream(values=[["1", "line", {"a": 1}]])]},
    {"streams": [stream(), {"stream": "not an object", "values": []}]},
    {"streams": "none"},
    {"nostreams": []},
])
def test_bodies_outside_the_fast_path_are_decided_by_python(compiled, push):
    assert not assert_same_as_python(compiled, json.dumps(push).encode())


@pytest.mark.parametrize("body", [
    b'{"streams": [{"stream": {"namespace": "a", "namespace": "b", "pod": "p", "container": "c"}, "values": []}]}',
    b'{"streams": [{"stream": {"namespace": "n", "pod": "p", "container": "c"}, "values": [["1", "\\ud800"]]}]}',
    b'{"streams": [], "streams": []}',
    b'{"streams": [',
    b'\xff',
])
def test_odd_json_is_decided_by_python(compiled, body):
    assert not assert_same_as_python(compiled, body)


def test_streams_without_entries_place_no_container(compiled):
    push = {"streams": [stream(labels={"namespace": "ns", "pod": "first", "container": "c"}, values=[]),
                        stream(labels={"namespace": "ns", "pod": "second", "container": "c"}),
                        stream(labels={"namespace": "ns", "pod": "first", "container": "c"})]}
    assert assert_same_as_python(compiled, json.dumps(push).encode())
    assert [c[1] for c in compiled.decode_loki_json(json.dumps(push).encode(), ["namespace", "pod", "container", "stream"],
                                                    MAX_LINE_BYTES)] == ["second", "first"]


names = st.sampled_from(["ns", "p", "c", "ü", " ", ""])
label_sets = st.fixed_dictionaries(
    {}, optional={"namespace": names, "pod": names, "container": names, "stream": st.sampled_from(["stdout", "stderr"]),
                  "app": st.sampled_from(["web", "db"]), "bad-name": st.just("x")})
metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(["trace_id", "node", "pod", "app"]),
                                                st.sampled_from(["a", "b"]), max_size=2))
timestamps = st.sampled_from(["0", "1", "1773489600000000000", "9223372036854775807", "9223372036854775808",
                              "-1", "", "12a", "0001"])
lines = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=15)
entries = st.one_of(st.tuples(timestamps, lines).map(list),
                    st.tuples(timestamps, lines, metadata).map(list))
streams = st.fixed_dictionaries({"stream": label_sets, "values": st.lists(entries, max_size=4)})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(streams, max_size=5), st.booleans())
def test_any_push_decodes_as_python_decodes_it(compiled, push_streams, ascii_only):
    assert_same_as_python(compiled, json.dumps({"streams": push_streams}, ensure_ascii=ascii_only).encode())


valid_streams = st.fixed_dictionaries(
    {"stream": st.fixed_dictionaries({"namespace": st.sampled_from(["ns", "other"]), "pod": st.sampled_from(["a", "b"]),
                                      "container": st.just("c")},
                                     optional={"stream": st.sampled_from(["stdout", "stderr"]),
                                               "app": st.sampled_from(["web", "db"])}),
     "values": st.lists(st.one_of(st.tuples(st.sampled_from(["1", "2", "3"]), lines).map(list),
                                  st.tuples(st.sampled_from(["1", "2"]), lines,
                                            st.dictionaries(st.sampled_from(["trace_id", "node"]),
                                                            st.sampled_from(["a", "b"]), max_size=2)).map(list)),
                        max_size=4)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_streams, min_size=1, max_size=6), st.booleans())
def test_any_plain_push_takes_the_compiled_path(compiled, push_streams, ascii_only):
    body = json.dumps({"streams": push_streams}, ensure_ascii=ascii_only).encode()
    taken = assert_same_as_python(compiled, body, 1000)
    assert taken or not any(stream["values"] for stream in push_streams)
