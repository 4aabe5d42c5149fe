"""Loki's tail without a network: its frames, its parameters, where it starts, and how a session
writes the tail engine's events and ends (api/loki/tail.py, common/loki_tail.py)."""

from __future__ import annotations

import json

import pytest

from api.loki.tail import MAX_LINES_PER_FRAME, delay_for, run_session, tail_start
from api.tail import Control, Signal, TailFollower
from api.websocket import INTERNAL_ERROR, NORMAL
from common.errors import ParameterError
from common.log_store import LogLine
from common.logql import parse
from common.loki_labels import LokiLabelNames
from common.loki_read import Caps, SelectedLine
from common.loki_tail import Rendered, SelectionReader, frame, history_start
from common.settings import Settings
from common.timestamps import NS_PER_SECOND
from tests.unit.api_harness import FakeStore, build

S = NS_PER_SECOND
NOW = 1_800_000_000 * S
NAMES = LokiLabelNames.of(Settings())
CAPS = Caps(max_rows=1000, max_scan=10_000, timeout_seconds=10, bucket_seconds=3600)
WEB = {"namespace": "shop", "pod": "web-1", "container": "app", "stream": "stdout"}


# --- frames ---


def test_a_frame_groups_lines_by_label_set_in_the_order_sent():
    db = {"namespace": "shop", "pod": "db-0", "container": "pg"}
    message = json.loads(frame([(WEB, 1, "a"), (db, 2, "b"), (WEB, 3, "c")]))
    assert message == {"streams": [{"stream": WEB, "values": [["1", "a"], ["3", "c"]]},
                                   {"stream": db, "values": [["2", "b"]]}]}


def test_a_frame_has_no_dropped_entries_as_this_tail_never_drops_a_line():
    assert "dropped_entries" not in json.loads(frame([(WEB, 1, "a")]))


def test_nanosecond_times_are_strings_and_exact():
    ts = 1_800_000_000_123_456_789
    assert json.loads(frame([(WEB, ts, "a")]))["streams"][0]["values"] == [[str(ts), "a"]]


# --- parameters ---


def test_start_defaults_to_an_hour_ago_and_may_not_pass_the_range_cap():
    assert tail_start({}, NOW, 31 * 86400) == NOW - 3600 * S
    assert tail_start({}, NOW, 600) == NOW - 600 * S
    assert tail_start({"start": str(NOW - 5 * S)}, NOW, 600) == NOW - 5 * S
    with pytest.raises(ParameterError, match="QUERY_MAX_RANGE_SECONDS"):
        tail_start({"start": str(NOW - 601 * S)}, NOW, 600)


@pytest.mark.parametrize("text, seconds", [(None, 0), ("0", 0), ("5", 5)])
def test_delay_for_is_whole_seconds_up_to_five(text, seconds):
    assert delay_for({} if text is None else {"delay_for": text}) == seconds


@pytest.mark.parametrize("text", ["6", "-1", "1.5", "soon"])
def test_a_bad_delay_for_is_refused(text):
    with pytest.raises(ParameterError) as error:
        delay_for({"delay_for": text})
    assert error.value.param == "delay_for"


# --- what is read, and from where ---


def fill(store: FakeStore, count: int, start_ns: int, log=lambda i: f"line {i}") -> None:
    for i in range(count):
        store.add("shop", "web-1", "app", start_ns + i * S, log(i), "stdout")


def test_history_starts_after_the_line_before_the_newest_limit_kept_lines():
    store = FakeStore()
    fill(store, 10, NOW - 100 * S, log=lambda i: f"{'keep' if i % 2 else 'drop'} {i}")
    query = parse('{namespace="shop"} |= "keep"')
    reader = SelectionReader(store, query, NAMES, 3600)
    after = history_start(query, reader, NOW - 200 * S, NOW, 3, CAPS)
    assert after is not None and after.ts_ns == NOW - 100 * S + 3 * S  # "keep 3": then 5, 7, 9
    follower = TailFollower(reader, None, start_ns=NOW - 200 * S, lookback_seconds=5, max_rows=1000,
                            timeout_seconds=10, after=after)
    render = Rendered(query)
    sent = [render(item) for item in follower.poll(NOW)]
    assert [entry[2] for entry in sent if entry is not None] == ["keep 5", "keep 7", "keep 9"]


def test_fewer_kept_lines_than_the_limit_start_at_start():
    store = FakeStore()
    fill(store, 3, NOW - 100 * S)
    query = parse('{namespace="shop"}')
    assert history_start(query, SelectionReader(store, query, NAMES, 3600), NOW - 200 * S, NOW, 3, CAPS) is None


def test_lines_before_the_start_line_are_never_sent_though_inside_the_lookback():
    store = FakeStore()
    fill(store, 5, NOW - 10 * S)
    query = parse('{namespace="shop"}')
    reader = SelectionReader(store, query, NAMES, 3600)
    after = history_start(query, reader, NOW - 60 * S, NOW, 1, CAPS)
    follower = TailFollower(reader, None, start_ns=NOW - 60 * S, lookback_seconds=30, max_rows=1000,
                            timeout_seconds=10, after=after)
    assert [item.line.log for item in follower.poll(NOW)] == ["line 4"]
    fill(store, 1, NOW + S, log=lambda i: "new")
    assert [item.line.log for item in follower.poll(NOW + 2 * S)] == ["new"]


def test_delay_for_keeps_each_poll_that_far_behind_now():
    store = FakeStore()
    fill(store, 5, NOW - 4 * S)  # at now-4 s ... now
    query = parse('{namespace="shop"}')
    reader = SelectionReader(store, query, NAMES, 3600, delay_for_seconds=2)
    assert [item.line.log for item in reader(NOW - 60 * S, NOW, None, 100)] == ["line 0", "line 1", "line 2"]


def test_a_container_that_appears_during_the_tail_is_followed():
    store = FakeStore()
    query = parse('{namespace="shop"}')
    reader = SelectionReader(store, query, NAMES, 3600)
    assert list(reader(NOW - 60 * S, NOW, None, 100)) == []
    store.add("shop", "new-pod", "app", NOW + S, "hello", "stdout")
    assert [item.line.log for item in reader(NOW - 60 * S, NOW + 2 * S, None, 100)] == ["hello"]


# --- the session ---


class FakeSocket:
    def __init__(self, close_after_frames: int | None = None):
        self.sent: list[tuple[str, object]] = []
        self._close_after = close_after_frames

    @property
    def closed(self) -> bool:
        frames = sum(1 for kind, _ in self.sent if kind == "text")
        return any(kind == "close" for kind, _ in self.sent) or (
            self._close_after is not None and frames >= self._close_after)

    def send_text(self, text: str) -> None:
        self.sent.append(("text", json.loads(text)))

    def ping(self) -> None:
        self.sent.append(("ping", None))

    def close(self, code: int, reason: str = "") -> None:
        self.sent.append(("close", (code, reason)))


class Events:
    """An engine's events, noting whether the session closed them."""

    def __init__(self, events):
        self._events = iter(events)
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._events)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


def line(i: int) -> SelectedLine:
    return SelectedLine(LogLine(NOW + i, "web-1", "app", i, f"line {i}", "stdout"), {"stdout": WEB})


RENDER = Rendered(parse('{namespace="shop"}'))


def test_each_polls_lines_go_out_as_one_frame_and_quiet_as_pings():
    socket = FakeSocket()
    events = Events([line(1), line(2), Signal.POLLED, Signal.HEARTBEAT, Signal.POLLED, line(3), Signal.POLLED])
    run_session(socket, events, RENDER)
    assert [kind for kind, _ in socket.sent] == ["text", "ping", "text"]
    assert socket.sent[0][1]["streams"][0]["values"] == [[str(NOW + 1), "line 1"], [str(NOW + 2), "line 2"]]
    assert events.closed


def test_a_frame_holds_at_most_max_lines_per_frame():
    socket = FakeSocket()
    run_session(socket, Events([*(line(i) for i in range(MAX_LINES_PER_FRAME + 1)), Signal.POLLED]), RENDER)
    sizes = [len(body["streams"][0]["values"]) for kind, body in socket.sent if kind == "text"]
    assert sizes == [MAX_LINES_PER_FRAME, 1]


def test_tail_max_seconds_ends_with_a_normal_close_naming_the_reason():
    socket = FakeSocket()
    run_session(socket, Events([Control("end", {"reason": "max_duration", "detail": "TAIL_MAX_SECONDS=1"})]), RENDER)
    assert socket.sent == [("close", (NORMAL, "max_duration: TAIL_MAX_SECONDS=1"))]


def test_an_outage_notice_sends_nothing_and_the_tail_goes_on():
    socket = FakeSocket()
    run_session(socket, Events([Control("error", {"message": "Cassandra unavailable", "detail": "x"}), line(1),
                                Signal.POLLED]), RENDER)
    assert [kind for kind, _ in socket.sent] == ["text"]


@pytest.mark.parametrize("error, reason", [
    (ParameterError("query", "the selector matches only some label sets"), "the selector matches only some label sets"),
    (RuntimeError("boom"), "internal error; see the server log"),
])
def test_an_error_mid_tail_closes_with_1011_and_its_reason(error, reason):
    socket = FakeSocket()
    events = Events([line(1), Signal.POLLED, error])
    run_session(socket, events, RENDER)
    assert socket.sent[-1] == ("close", (INTERNAL_ERROR, reason)) and events.closed


def test_the_session_stops_once_the_client_has_gone():
    socket = FakeSocket(close_after_frames=1)
    events = Events([line(1), Signal.POLLED, line(2), Signal.POLLED])
    run_session(socket, events, RENDER)
    assert [kind for kind, _ in socket.sent] == ["text"] and events.closed


# --- refused before any upgrade (no waitress here) ---


@pytest.mark.parametrize("query, status, message", [
    ('count_over_time({namespace="shop"}[1m])', 400, "Invalid parameter 'query'"),
    ('{namespace="shop"}', 400, "Not a WebSocket request"),
])
def test_refusals_are_http_before_the_upgrade(query, status, message):
    response = build().client.simulate_get("/loki/api/v1/tail", params={"query": query})
    assert response.status_code == status and response.json["message"] == message


def test_an_upgrade_outside_the_upgradable_server_is_refused_not_half_done():
    response = build().client.simulate_get("/loki/api/v1/tail", params={"query": '{namespace="shop"}'}, headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 400 and response.json["message"] == "WebSocket unavailable"
