"""Bad input, generated (hypothesis): POST /write and GET /query never answer 5xx, always answer in
the documented shape, and every valid record of a mixed batch is queued, whatever its neighbours.

Records are drawn as valid (with the row they must become) or invalid for one named reason: wrong
types at every level, missing and empty required fields, numbers where strings belong, times far
in the past and future. Batches mix them and go out in every body form fluent-bit sends, gzipped
or not; raw bytes, invalid UTF-8, NUL bytes, deep nesting and huge label maps have tests of their own.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gzip
import json
import struct
import tracemalloc
import urllib.parse

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.queue import PAYLOAD_KEY_PREFIX, decode_payload
from common.records import MAX_REPORTED_ERRORS, TRUNCATION_MARK
from common.settings import Settings
from common.timestamps import MAX_NS, NS_PER_SECOND
from tests.records import fluent_bit_record, kubernetes, without
from tests.unit.api_harness import build

LIMIT = 128  # MAX_LINE_BYTES for these tests: small, so that overlong lines are cheap to draw
SETTINGS = Settings(max_line_bytes=LIMIT)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_MEDIA, NDJSON_MEDIA, MSGPACK_MEDIA = "application/json", "application/x-ndjson", "application/msgpack"
# Any character UTF-8 can carry (NUL and the other control characters included; no lone surrogates).
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
LONG_TEXT = st.text(st.characters(codec="utf-8"), min_size=LIMIT // 4, max_size=3 * LIMIT)
# Kubernetes names: at most 253 characters, not blank (a blank one could never be queried).
NAME = (st.text(st.characters(codec="utf-8"), min_size=1, max_size=16) | st.text(
    st.characters(codec="utf-8"), min_size=245, max_size=253)).filter(lambda name: not name.isspace())
INT64 = st.integers(-(2**63), 2**63 - 1)
NOT_A_STRING = st.one_of(INT64, st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                         st.lists(INT64, max_size=2), st.dictionaries(TEXT, INT64, max_size=2))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)
RECORD_KEYS = {"kubernetes", "log", "stream", "time", "date"}
MAX_SECOND = MAX_NS // NS_PER_SECOND - 1  # every nanosecond of this second is storable
FIRST_SECOND_OF_YEAR_1, LAST_SECOND_OF_YEAR_9999 = -62135596800, 253402300799
EPOCH = datetime.datetime(1970, 1, 1)


@functools.cache
def _shared_harness():
    return build(SETTINGS)


def harness():
    """One app for every example (building one per example is slow), with an empty Redis."""
    shared = _shared_harness()
    shared.redis.flushall()
    return shared


# --- times ---

def utc_text(second: int, separator: str = "T") -> str:
    """'YYYY-MM-DDThh:mm:ss' of a second since the epoch, for any year from 1 to 9999."""
    t = EPOCH + datetime.timedelta(seconds=second)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}{separator}{t.hour:02d}:{t.minute:02d}:{t.second:02d}"


@st.composite
def stamps(draw) -> tuple[dict, int, int]:
    """({"time": ...} or {"date": ...}, the ns it means, tolerance in ns), in every accepted form."""
    second = draw(st.integers(0, MAX_SECOND))
    digits = draw(st.text("0123456789", max_size=9))
    exact = second * NS_PER_SECOND + int(digits.ljust(9, "0") or "0")
    fraction = f".{digits}" if digits else ""
    form = draw(st.sampled_from(["time", "time_offset", "date_seconds", "date_ms", "date_iso",
                                 "date_java_sql", "date_float"]))
    if form == "time":
        return {"time": f"{utc_text(second)}{fraction}Z"}, exact, 0
    if form == "time_offset":
        minutes = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
        sign = "+" if minutes >= 0 else "-"
        local = utc_text(second + minutes * 60)
        return {"time": f"{local}{fraction}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"}, exact, 0
    if form == "date_iso":
        return {"date": f"{utc_text(second)}{fraction}Z"}, exact, 0
    micros = draw(st.integers(0, 999_999))
    if form == "date_java_sql":
        return {"date": f"{utc_text(second, ' ')}.{micros:06d}"}, second * NS_PER_SECOND + micros * 1000, 0
    if form == "date_seconds":
        return {"date": second}, second * NS_PER_SECOND, 0
    if form == "date_ms":
        ms = max(second * 1000 + micros // 1000, 10**11)
        return {"date": ms}, ms * 1_000_000, 0
    # A double holds ~16 significant digits: 2 µs covers its rounding up to year 2262.
    return {"date": second + micros / 1e6}, second * NS_PER_SECOND + micros * 1000, 2000


# --- records ---

@dataclasses.dataclass(frozen=True)
class Valid:
    value: dict
    ts_ns: int
    ts_tolerance_ns: int

    def check_row(self, row) -> None:
        k8s = self.value["kubernetes"]
        assert (row.namespace, row.pod_name, row.container_name) == (
            k8s["namespace_name"], k8s["pod_name"], k8s["container_name"])
        assert abs(row.ts_ns - self.ts_ns) <= self.ts_tolerance_ns
        assert_truncated_or_kept(self.value.get("log", ""), row.log)
        assert row.stream == self.value.get("stream")
        assert (row.host, row.pod_id, row.docker_id, row.labels) == (
            k8s.get("host"), k8s.get("pod_id"), k8s.get("docker_id"), k8s.get("labels"))


@dataclasses.dataclass(frozen=True)
class Invalid:
    value: object
    reason: str  # what makes it invalid, for a failing example's report


def assert_truncated_or_kept(sent: str, stored: str) -> None:
    """A line within MAX_LINE_BYTES is kept as sent; a longer one is cut to the limit, never inside
    a character, and marked."""
    if len(sent.encode()) <= LIMIT:
        assert stored == sent
        return
    assert stored.endswith(TRUNCATION_MARK)
    kept = stored[: -len(TRUNCATION_MARK)]
    assert sent.startswith(kept)
    assert len(stored.encode()) <= LIMIT
    assert len(kept.encode()) > LIMIT - len(TRUNCATION_MARK) - 4  # at most one character short


@st.composite
def valid_records(draw) -> Valid:
    stamp, ts_ns, tolerance = draw(stamps())
    k8s = kubernetes(draw(NAME), draw(NAME), draw(NAME))
    for key in ("host", "pod_id", "docker_id"):
        if draw(st.booleans()):
            k8s[key] = draw(TEXT)
    if draw(st.booleans()):
        k8s["labels"] = draw(st.dictionaries(TEXT, TEXT, max_size=5))
    value = {"kubernetes": k8s, **stamp}
    if draw(st.integers(0, 4)):  # `log` may be missing
        value["log"] = draw(st.one_of(TEXT, LONG_TEXT))
    if draw(st.booleans()):
        value["stream"] = draw(st.sampled_from(["stdout", "stderr"]) | TEXT)
    extras = draw(st.dictionaries(TEXT.filter(lambda key: key not in RECORD_KEYS), JSON_VALUES, max_size=3))
    return Valid({**extras, **value}, ts_ns, tolerance)


def _with_k8s(value: dict, **changes) -> dict:
    return {**value, "kubernetes": {**value["kubernetes"], **changes}}


def _untimed(value: dict, **changes) -> dict:
    return {**without(value, "time", "date"), **changes}


@st.composite
def invalid_records(draw) -> Invalid:
    value = draw(valid_records()).value
    name = draw(st.sampled_from(["namespace_name", "pod_name", "container_name"]))
    far_past = f"{draw(st.integers(1000, 1968))}-06-15T12:00:00Z"
    far_future = f"{draw(st.integers(2263, 9999))}-06-15T12:00:00Z"
    choices = {
        "not an object": lambda: draw(st.one_of(st.none(), st.booleans(), INT64, TEXT, st.lists(INT64, max_size=3))),
        "no kubernetes": lambda: without(value, "kubernetes"),
        "kubernetes not an object": lambda: {**value, "kubernetes": draw(st.one_of(st.none(), TEXT, INT64, st.lists(TEXT, max_size=2)))},
        "a name missing": lambda: {**value, "kubernetes": without(value["kubernetes"], name)},
        "a name empty": lambda: _with_k8s(value, **{name: ""}),
        "a name too long": lambda: _with_k8s(value, **{name: draw(st.text(st.characters(codec="utf-8"), min_size=254, max_size=300))}),
        "a name not a string": lambda: _with_k8s(value, **{name: draw(st.one_of(st.none(), NOT_A_STRING))}),
        "host not a string": lambda: _with_k8s(value, host=draw(NOT_A_STRING)),
        "labels not strings": lambda: _with_k8s(value, labels=draw(st.one_of(
            st.dictionaries(TEXT, NOT_A_STRING, min_size=1, max_size=3), st.lists(TEXT, max_size=2), TEXT, INT64))),
        "log not a string": lambda: {**value, "log": draw(st.one_of(st.none(), NOT_A_STRING))},
        "stream not a string": lambda: {**value, "stream": draw(NOT_A_STRING)},
        "time not a string": lambda: {**value, "time": draw(NOT_A_STRING)},
        "time not RFC 3339": lambda: {**value, "time": draw(st.sampled_from(
            ["yesterday", "", "2020-13-01T00:00:00Z", "2020-02-30T00:00:00Z", "2020-01-01T25:00:00Z",
             "2020-01-01", "1525349097", "2020-01-01T00:00:00.1234567890Z"]) | st.text("abcxyz :-."))},
        "time far in the past": lambda: {**value, "time": far_past},
        "time far in the future": lambda: {**value, "time": far_future},
        "date before 1970": lambda: _untimed(value, date=draw(st.one_of(
            st.integers(-(2**63), -1), st.floats(max_value=-1, allow_infinity=False), st.just(far_past)))),
        "date after 2262": lambda: _untimed(value, date=draw(st.one_of(
            st.integers(MAX_SECOND + 2, 10**11 - 1), st.integers(MAX_NS // 10**6 + 1, 2**63 - 1),
            st.floats(min_value=1e10, allow_infinity=False), st.just(far_future)))),
        "date not a number or string": lambda: _untimed(value, date=draw(st.one_of(
            st.booleans(), st.lists(INT64, max_size=2), st.dictionaries(TEXT, INT64, max_size=2)))),
        "neither time nor date": lambda: _untimed(value),
    }
    reason = draw(st.sampled_from(sorted(choices)))
    return Invalid(choices[reason](), reason)


MIXED_BATCHES = st.lists(st.one_of(valid_records(), invalid_records()), max_size=14)


# --- bodies ---

def event_time(seconds: int, nanoseconds: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanoseconds))


def body_forms(values: list) -> list[str]:
    """The body forms that carry exactly these values as records (a few value shapes mean
    something else in some forms: e.g. a 2-item list in a msgpack stream is a [time, record] event)."""
    forms = ["json", "ndjson"]
    if values and isinstance(values[0], dict):
        forms.append("json_stream")  # sniffed by its first "{"
    if not any(isinstance(value, list) for value in values):
        forms += ["msgpack_stream", "msgpack_events"]
        if not (len(values) == 2 and not isinstance(values[0], dict) and isinstance(values[1], dict)):
            forms.append("msgpack_array")
    return forms


def encode(values: list, form: str, ensure_ascii: bool) -> tuple[bytes, str]:
    def dump(value) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii)

    if form == "json":
        return dump(values).encode(), JSON_MEDIA
    if form == "ndjson":
        return "\n".join(dump(value) for value in values).encode(), NDJSON_MEDIA
    if form == "json_stream":  # back to back; a space only where two numbers would merge
        text = ""
        for value in values:
            text += (" " if text[-1:].isdigit() else "") + dump(value)
        return text.encode(), JSON_MEDIA
    if form == "msgpack_array":
        return msgpack.packb(values), MSGPACK_MEDIA
    if form == "msgpack_stream":
        return b"".join(msgpack.packb(value) for value in values), MSGPACK_MEDIA
    # fluent-bit's events: [[EventTime, metadata], record]
    return b"".join(msgpack.packb([[event_time(0, 0), {}], value]) for value in values), MSGPACK_MEDIA


def post(body: bytes, content_type: str | None, gzipped: bool = False):
    h = harness()
    headers = {"Content-Type": content_type} if content_type else {}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return h, h.client.simulate_post("/write", body=body, headers=headers)


def as_queued(records: list) -> list:
    """Valid records in the order the queue holds their lines: container by container (in the order
    the batch first names each), each container's lines in arrival order."""
    by_container: dict[tuple, list] = {}
    for record in records:
        k8s = record.value["kubernetes"]
        by_container.setdefault((k8s["namespace_name"], k8s["pod_name"], k8s["container_name"]), []).append(record)
    return [record for records_ in by_container.values() for record in records_]


def queued_rows(h) -> list:
    keys = h.redis.keys(PAYLOAD_KEY_PREFIX + "*")
    assert len(keys) <= 1, "a batch is queued as one payload"
    return decode_payload(h.redis.get(keys[0])).rows if keys else []


def assert_documented_answer(response) -> None:
    """2xx with the summary, or 4xx with {"message", "detail"}; never a 5xx."""
    assert response.status_code in (200, 400, 413), (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    document = response.json
    if response.status_code == 200:
        assert set(document) == {"accepted", "rejected", "truncated_lines", "errors"}
        assert len(document["errors"]) == min(document["rejected"], MAX_REPORTED_ERRORS)
        assert all(set(e) == {"index", "reason"} and e["reason"] for e in document["errors"])
    else:
        assert set(document) == {"message", "detail"}
        assert isinstance(document["message"], str) and isinstance(document["detail"], str)


# --- POST /write ---

@PROPERTY
@given(batch=MIXED_BATCHES, data=st.data(), ensure_ascii=st.booleans(), gzipped=st.booleans())
def test_every_valid_record_of_a_mixed_batch_is_queued_whatever_its_neighbours(batch, data, ensure_ascii, gzipped):
    values = [record.value for record in batch]
    forms = body_forms(values)
    if any(isinstance(record, Invalid) and record.reason == "neither time nor date" for record in batch):
        forms = [form for form in forms if form != "msgpack_events"]  # its time would make such a record valid
    form = data.draw(st.sampled_from(forms), label="form")
    h, response = post(*encode(values, form, ensure_ascii), gzipped=gzipped)
    assert_documented_answer(response)
    valid = [record for record in batch if isinstance(record, Valid)]
    invalid_at = [index for index, record in enumerate(batch) if isinstance(record, Invalid)]
    if not valid and invalid_at:
        assert response.status_code == 400
        assert queued_rows(h) == []
        return
    assert response.status_code == 200
    assert response.json["accepted"] == len(valid) and response.json["rejected"] == len(invalid_at)
    assert [e["index"] for e in response.json["errors"]] == invalid_at[:MAX_REPORTED_ERRORS]
    rows = queued_rows(h)
    assert len(rows) == len(valid)
    for record, row in zip(as_queued(valid), rows):
        record.check_row(row)
    overlong = sum(len(record.value.get("log", "").encode()) > LIMIT for record in valid)
    assert response.json["truncated_lines"] == overlong


@PROPERTY
@given(body=st.binary(max_size=600),
       content_type=st.sampled_from([JSON_MEDIA, NDJSON_MEDIA, MSGPACK_MEDIA, "text/plain", None]),
       gzipped=st.booleans())
def test_arbitrary_bytes_never_get_a_5xx_and_what_is_acknowledged_is_queued(body, content_type, gzipped):
    h, response = post(body, content_type, gzipped)
    assert_documented_answer(response)
    accepted = response.json["accepted"] if response.status_code == 200 else 0
    assert len(queued_rows(h)) == accepted


@PROPERTY
@given(head=st.sampled_from([b"", b"[", b"{", b'[{"kubernetes":', b'{"log":"', b"\x93"]), body=st.binary(max_size=300),
       content_type=st.sampled_from([JSON_MEDIA, NDJSON_MEDIA, MSGPACK_MEDIA]))
def test_bytes_after_a_plausible_start_never_get_a_5xx(head, body, content_type):
    assert_documented_answer(post(head + body, content_type)[1])


INVALID_UTF8 = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80",
                                b"ok\x80", b"\xf4\x90\x80\x80"])


@FEW
@given(batch=st.lists(valid_records(), min_size=2, max_size=5), data=st.data(), bad=INVALID_UTF8,
       form=st.sampled_from(["json", "ndjson"]))
def test_a_record_holding_invalid_utf8_is_rejected_alone(batch, data, bad, form):
    spoiled = data.draw(st.integers(0, len(batch) - 1), label="spoiled")
    placeholder = "\x01SPOILED\x01"
    values = [record.value for record in batch]
    values[spoiled] = {**values[spoiled], "log": placeholder}
    body, content_type = encode(values, form, ensure_ascii=True)
    body = body.replace(json.dumps(placeholder).encode(), b'"' + bad + b'"')
    h, response = post(body, content_type)
    assert_documented_answer(response)
    assert response.status_code == 200
    assert [error["index"] for error in response.json["errors"]] == [spoiled]
    assert "not valid UTF-8" in response.json["errors"][0]["reason"]
    kept = [record for index, record in enumerate(batch) if index != spoiled]
    for record, row in zip(as_queued(kept), queued_rows(h), strict=True):
        record.check_row(row)


@PROPERTY
@given(record=valid_records(), raw=st.sampled_from([b"\x00", b"\x01", b"\x1f", b"\n", b"\t"]),
       form=st.sampled_from(["json", "ndjson"]))
def test_a_raw_control_byte_inside_a_string_is_not_json_and_gets_400(record, raw, form):
    """JSON carries NUL and the other control characters only escaped (\\u0000, kept as sent)."""
    body, content_type = encode([{**record.value, "log": "\x02HERE\x02"}], form, ensure_ascii=True)
    body = body.replace(json.dumps("\x02HERE\x02").encode(), b'"a' + raw + b'b"')
    response = post(body, content_type)[1]
    assert_documented_answer(response)
    assert response.status_code == 400
    assert "not valid JSON" in response.json["detail"]


def nested(depth: int, container: str) -> str:
    return ("[" * depth + "]" * depth) if container == "array" else ('{"a":' * depth + "0" + "}" * depth)


@FEW
@given(neighbours=st.lists(valid_records(), min_size=2, max_size=2), deep=valid_records(),
       depth=st.one_of(st.integers(1, 200), st.integers(200, 100_000)), container=st.sampled_from(["array", "object"]),
       form=st.sampled_from(["json", "ndjson", "json_stream"]))
def test_deep_nesting_never_gets_a_5xx_and_costs_at_most_its_own_line(neighbours, deep, depth, container, form):
    values = [neighbours[0].value, {**deep.value, "nested": "\x02DEEP\x02"}, neighbours[1].value]
    body, content_type = encode(values, form, ensure_ascii=True)
    body = body.replace(json.dumps("\x02DEEP\x02").encode(), nested(depth, container).encode())
    h, response = post(body, content_type)
    assert_documented_answer(response)
    rows = queued_rows(h)
    if depth <= 200:  # deeper than any log line merged by fluent-bit's Merge_Log, in an ignored key
        assert response.status_code == 200 and len(rows) == 3
    if form == "ndjson":  # a line is a record: only the deep one may be lost
        assert response.status_code == 200
    if response.status_code == 200:
        assert len(rows) in (2, 3)
        kept = [neighbours[0], deep, neighbours[1]] if len(rows) == 3 else neighbours
        for record, row in zip(as_queued(kept), rows):
            record.check_row(row)
    else:
        assert "nested too deeply" in response.json["detail"]


@FEW
@given(depth=st.integers(1, 100_000))
def test_deep_msgpack_nesting_never_gets_a_5xx(depth):
    assert_documented_answer(post(b"\x91" * depth + b"\xc0", MSGPACK_MEDIA)[1])


@FEW
@given(record=valid_records(), size=st.integers(0, 20_000),
       form=st.sampled_from(["json", "ndjson", "msgpack_stream"]))
def test_a_huge_label_map_is_kept_whole(record, size, form):
    labels = {f"app.kubernetes.io/label-{i}": f"value-{i}" for i in range(size)}
    value = _with_k8s(record.value, labels=labels)
    h, response = post(*encode([value], form, ensure_ascii=True))
    assert response.status_code == 200, response.text
    assert queued_rows(h)[0].labels == labels


@PROPERTY
@given(second=st.integers(FIRST_SECOND_OF_YEAR_1, LAST_SECOND_OF_YEAR_9999), digits=st.text("0123456789", max_size=9))
def test_a_time_is_accepted_exactly_when_it_lies_in_1970_to_2262(second, digits):
    ns = second * NS_PER_SECOND + int(digits.ljust(9, "0") or "0")
    record = {"kubernetes": kubernetes("n", "p", "c"), "time": f"{utc_text(second)}{'.' + digits if digits else ''}Z"}
    h, response = post(*encode([record], "json", ensure_ascii=True))
    assert_documented_answer(response)
    if 0 <= ns <= MAX_NS:
        assert response.status_code == 200 and queued_rows(h)[0].ts_ns == ns
    else:
        assert response.status_code == 400 and "timestamp outside" in response.json["detail"]


@PROPERTY
@given(seconds=st.one_of(st.floats(allow_nan=False, allow_infinity=False), INT64))
def test_a_numeric_date_anywhere_on_the_number_line_is_accepted_only_in_range(seconds):
    record = {"kubernetes": kubernetes("n", "p", "c"), "date": seconds}
    h, response = post(*encode([record], "json", ensure_ascii=True))
    assert_documented_answer(response)
    as_ns = seconds * 1_000_000 if isinstance(seconds, int) and abs(seconds) >= 10**11 else seconds * NS_PER_SECOND
    if 1 <= as_ns <= MAX_NS - NS_PER_SECOND:  # clear of the bounds, where float rounding decides
        assert response.status_code == 200
    elif as_ns < -NS_PER_SECOND or as_ns > MAX_NS + NS_PER_SECOND:
        assert response.status_code == 400


# --- GET /query ---

QUERY_NAMES = ["namespace", "pod_name", "container_name", "start_time", "end_time", "limit", "direction",
               "cursor", "contains", "regex", "stream", "timestamps"]
ACCEPTS = st.sampled_from([None, "application/json", "application/x-ndjson", "text/plain", "*/*", "text/*",
                           "garbage", "text/plain;q=abc", "application/json;q=0, text/plain"])
RESULT_TYPES = ("application/json", "application/x-ndjson", "text/plain")
START, END = "2018-05-07T00:00:00Z", "2018-05-07T01:00:00Z"


def get_query(items: list[tuple[str, str]], accept: str | None):
    headers = {"Accept": accept} if accept else {}
    return harness().client.simulate_get("/query", query_string=urllib.parse.urlencode(items), headers=headers)


def assert_documented_query_answer(response) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code == 400:
        assert response.headers["content-type"] == "application/json"
        assert set(response.json) == {"message", "detail"}
        assert response.json["message"].startswith("Invalid parameter '")
    else:
        assert response.headers["content-type"].split(";")[0] in RESULT_TYPES


@PROPERTY
@given(items=st.lists(st.tuples(st.sampled_from(QUERY_NAMES) | TEXT, TEXT), max_size=8), accept=ACCEPTS)
def test_any_query_parameters_get_200_or_a_400_naming_the_parameter(items, accept):
    assert_documented_query_answer(get_query(items, accept))


@PROPERTY
@given(query_string=st.text(st.characters(codec="utf-8"), max_size=200).map(lambda text: text.lstrip("?")))
def test_any_raw_query_string_gets_200_or_400(query_string):
    response = harness().client.simulate_get("/query", query_string=query_string)
    assert_documented_query_answer(response)


QUERY_NAME = NAME.filter(str.strip)  # a parameter blank after stripping counts as missing


@st.composite
def good_queries(draw) -> dict[str, str]:
    query = {"namespace": draw(QUERY_NAME), "start_time": START, "end_time": END}
    if draw(st.booleans()):
        query["pod_name"] = draw(QUERY_NAME)
        if draw(st.booleans()):
            query["container_name"] = draw(QUERY_NAME)
    optional = {
        "limit": st.integers(1, 10**6).map(str),
        "direction": st.sampled_from(["forward", "backward"]),
        "contains": st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
        "regex": st.sampled_from(["a", "^x", "(?i)error|panic", "[0-9]+$", r"\d{2,}"]),
        "stream": st.sampled_from(["stdout", "stderr"]),
        "timestamps": st.sampled_from(["true", "false", "1", "0"]),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            query[name] = draw(values)
    return query


@PROPERTY
@given(query=good_queries(), accept=ACCEPTS)
def test_a_well_formed_query_gets_200(query, accept):
    response = get_query(list(query.items()), accept)
    assert response.status_code == 200, response.text
    assert_documented_query_answer(response)


BAD_VALUES = {
    "namespace": ["", " "],
    "start_time": ["", "yesterday", "2018-13-01T00:00:00Z", "1525651200", "2018-05-07T02:00:00Z"],
    "end_time": ["tomorrow", "2018-06-30T00:00:00Z"],
    "limit": ["0", "-1", "x", "1.5", "١"],
    "direction": ["up", "FORWARD "],
    "cursor": ["not-a-cursor", "AAAA", "%"],
    "contains": [""],
    "regex": ["(", "a{2,1}", "(?<=a)b", "x" * 257, ""],
    "stream": ["stdin", "both"],
    "timestamps": ["maybe", "2"],
    "pod_name": [""],
}


@PROPERTY
@given(query=good_queries(), data=st.data(), accept=ACCEPTS)
def test_one_bad_parameter_gets_400_naming_it(query, data, accept):
    name = data.draw(st.sampled_from(sorted(BAD_VALUES)), label="name")
    query = {**query, name: data.draw(st.sampled_from(BAD_VALUES[name]), label="value")}
    response = get_query(list(query.items()), accept)
    assert response.status_code == 400, response.text
    assert_documented_query_answer(response)
    assert response.json["message"] == f"Invalid parameter '{name}'"


@PROPERTY
@given(query=good_queries(), data=st.data())
def test_a_parameter_given_twice_gets_400_naming_it(query, data):
    name = data.draw(st.sampled_from(sorted(query)), label="name")
    response = get_query([*query.items(), (name, query[name])], None)
    assert response.status_code == 400
    assert response.json["message"] == f"Invalid parameter '{name}'"


@PROPERTY
@given(query=good_queries())
def test_a_container_without_its_pod_gets_400_naming_pod_name(query):
    query = {**without(query, "pod_name"), "container_name": "app"}
    response = get_query(list(query.items()), None)
    assert response.status_code == 400
    assert response.json["message"] == "Invalid parameter 'pod_name'"


# --- bugs the generated input found (each was a 500, or a valid record lost) ---

K8S = kubernetes("shop", "web", "app")
GOOD = fluent_bit_record("shop", "web", "app", time="2026-03-14T12:00:00Z", log="kept", stream=None)


def test_invalid_utf8_inside_a_json_string_costs_only_its_record():
    spoiled = json.dumps({**GOOD, "log": "\x01"}).encode().replace(b"\\u0001", b"\xff")
    for body, content_type in (
        (b"[" + json.dumps(GOOD).encode() + b", " + spoiled + b"]", JSON_MEDIA),
        (spoiled + b"\n" + json.dumps(GOOD).encode(), NDJSON_MEDIA),
    ):
        h, response = post(body, content_type)
        assert response.status_code == 200, response.text
        assert "not valid UTF-8" in response.json["errors"][0]["reason"]
        assert [row.log for row in queued_rows(h)] == ["kept"]


def test_json_nested_deeper_than_the_decoder_goes_is_a_400_not_a_500():
    deep = "[" * 5000 + "]" * 5000
    response = post(f'[{json.dumps(GOOD)}, {{"x": {deep}}}]'.encode(), JSON_MEDIA)[1]
    assert response.status_code == 400
    assert "nested too deeply" in response.json["detail"]
    h, response = post(f'{{"x": {deep}}}\n{json.dumps(GOOD)}'.encode(), NDJSON_MEDIA)
    assert response.status_code == 200 and response.json["errors"][0]["reason"] == "nested too deeply"
    assert len(queued_rows(h)) == 1


def test_a_date_too_large_for_a_float_times_a_million_is_out_of_range_not_a_500():
    response = post(json.dumps([{"kubernetes": K8S, "date": 1e303}]).encode(), JSON_MEDIA)[1]
    assert response.status_code == 400
    assert "timestamp outside" in response.json["detail"]


def test_a_lone_surrogate_escape_in_a_json_stream_costs_only_its_record():
    spoiled = json.dumps({**GOOD, "log": "\ud800"})  # Python's json accepts it; no UTF-8 can hold it
    h, response = post((json.dumps(GOOD) + spoiled).encode(), JSON_MEDIA)
    assert response.status_code == 200 and response.json["rejected"] == 1
    assert [row.log for row in queued_rows(h)] == ["kept"]


def test_a_json_stream_whose_first_record_is_invalid_keeps_the_others():
    h, response = post((json.dumps({"log": "no kubernetes"}) + json.dumps(GOOD) * 2).encode(), JSON_MEDIA)
    assert response.status_code == 200
    assert (response.json["accepted"], response.json["rejected"]) == (2, 1)
    assert len(queued_rows(h)) == 2


def test_json_lines_whose_first_line_is_no_object_keep_the_others():
    h, response = post(b"42\n" + json.dumps(GOOD).encode(), NDJSON_MEDIA)
    assert response.status_code == 200 and response.json["errors"][0]["index"] == 0
    assert len(queued_rows(h)) == 1


def test_one_msgpack_array_of_two_records_is_two_records_not_a_time_record_pair():
    h, response = post(msgpack.packb([GOOD, {**GOOD, "log": "second"}]), MSGPACK_MEDIA)
    assert response.json["accepted"] == 2
    assert [row.log for row in queued_rows(h)] == ["kept", "second"]


def test_a_msgpack_map_keyed_by_a_list_is_a_400_not_a_500():
    body = b"\x81\x91\x01\x02"  # {[1]: 2}: no Python dict can hold it
    response = post(body, MSGPACK_MEDIA)[1]
    assert response.status_code == 400
    assert "not valid msgpack" in response.json["detail"]


def test_an_event_stamped_with_bytes_is_rejected_without_multiplying_them():
    """The stamp used to be multiplied by 10**6: 200 bytes became a 200 MB allocation."""
    untimed = {"kubernetes": K8S, "log": "no time"}
    body = msgpack.packb([b"x" * 200, untimed], use_bin_type=True)
    tracemalloc.start()
    try:
        response = post(body, MSGPACK_MEDIA)[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 400 and "neither `time`" in response.json["detail"]
    assert peak < 20 * 1024 * 1024
