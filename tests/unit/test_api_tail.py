"""GET /tail: new lines as they are stored, each once, late ones within the lookback, heartbeats,
a clean end, and polling that stops with the client. Time is a fake clock that moves only when
the tail sleeps, so minutes of tailing run in milliseconds."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import falcon
import falcon.testing
import pytest

from api.errors import register_error_handlers, serialize_error
from api.read_slots import ReadSlots
from api.tail import TailFollower, TailResource, scope_reader
from common.log_search import Scope
from common.settings import Settings
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns
from tests.unit.api_harness import FakeStore, build
from tests.unit.waitress_server import waitress_serving
from tests.waiting import wait_for

T0 = 1525651200 * NS_PER_SECOND  # 2018-05-07T00:00:00Z: the fake clock's start
POD = ("default", "nginx-1")
NGINX = (*POD, "nginx")
SIDECAR = (*POD, "sidecar")
SETTINGS = Settings(tail_poll_seconds=1.0, tail_lookback_seconds=5, tail_max_seconds=30)
CONTAINER_PARAMS = {"namespace": "default", "pod_name": "nginx-1", "container_name": "nginx"}


class FakeClock:
    """Starts at T0 and moves only when slept on; `at(seconds, action)` runs the action once the
    clock has reached that many seconds."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self._actions: list[tuple[float, object]] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now_ns(self) -> int:
        return T0 + round(self.elapsed * NS_PER_SECOND)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        while self._actions and self._actions[0][0] <= self.elapsed:
            _, action = self._actions.pop(0)
            action()

    def at(self, seconds: float, action) -> None:
        self._actions.append((seconds, action))
        self._actions.sort(key=lambda item: item[0])


class PollRecordingStore(FakeStore):
    """A FakeStore that also notes the clock's time of every read attempt, failed ones too."""

    clock: FakeClock | None = None
    attempts: list[float]

    def read_range(self, partition, low, high, *, direction, page_size, first_page_size=None):
        self.attempts.append(self.clock.elapsed)
        return super().read_range(partition, low, high, direction=direction, page_size=page_size,
                                   first_page_size=first_page_size)


def tail_client(store, clock, settings=SETTINGS, **options):
    """A client of the tail alone, behind the reads' slots as in the app: (client, slots)."""
    slots = ReadSlots(settings, ["/tail"])
    app = falcon.App(middleware=[slots])
    app.set_error_serializer(serialize_error)
    register_error_handlers(app, settings.retry_after_seconds)
    app.add_route("/tail", TailResource(settings, store, clock=clock, **options))
    return falcon.testing.TestClient(app), slots


def tail(store, clock, settings=SETTINGS, headers=None, **params):
    client, _ = tail_client(store, clock, settings)
    params = {**CONTAINER_PARAMS, **params}
    return client.simulate_get("/tail", params={k: v for k, v in params.items() if v is not None},
                               headers=headers)


def ndjson(response) -> list:
    """Each line of the body: None for a heartbeat, else the decoded object."""
    return [json.loads(line) if line else None for line in response.text.split("\n")[:-1]]


def rows(response) -> list[dict]:
    return [item for item in ndjson(response) if item is not None and "time" in item]


def logs(response) -> list[str]:
    return [row["log"] for row in rows(response)]


def add_now(store, clock, log, container=NGINX, stream="stdout", behind_seconds=0.0):
    store.add(*container, clock.now_ns() - round(behind_seconds * NS_PER_SECOND), log, stream)


# --- what is sent ---


def test_lines_stored_after_the_tail_started_are_streamed_each_once():
    store, clock = FakeStore(), FakeClock()
    clock.at(2.5, lambda: add_now(store, clock, "first"))
    clock.at(4.5, lambda: add_now(store, clock, "second"))
    clock.at(4.6, lambda: add_now(store, clock, "third"))
    response = tail(store, clock)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert logs(response) == ["first", "second", "third"]


def test_rows_have_the_query_row_shape_with_nanosecond_times():
    store, clock = FakeStore(), FakeClock()
    clock.at(2.0, lambda: store.add(*NGINX, T0 + 2 * NS_PER_SECOND + 123, "first", "stdout"))
    assert rows(tail(store, clock)) == [{"time": "2018-05-07T00:00:02.000000123Z", "log": "first"}]


def test_lines_stored_before_the_tail_started_are_not_sent_without_since():
    store, clock = FakeStore(), FakeClock()
    store.add(*NGINX, T0 - NS_PER_SECOND, "before", "stdout")
    clock.at(1.5, lambda: add_now(store, clock, "after"))
    assert logs(tail(store, clock)) == ["after"]


def test_since_sends_the_stored_lines_from_there_first_then_new_ones():
    store, clock = FakeStore(), FakeClock()
    for seconds, log in ((-60, "too old"), (-30, "at since"), (-10, "recent")):
        store.add(*NGINX, T0 + seconds * NS_PER_SECOND, log, "stdout")
    clock.at(1.5, lambda: add_now(store, clock, "new"))
    response = tail(store, clock, since=format_rfc3339_ns(T0 - 30 * NS_PER_SECOND))
    assert logs(response) == ["at since", "recent", "new"]


def test_a_late_line_within_the_lookback_shows_once_and_an_older_one_never():
    store, clock = FakeStore(), FakeClock()
    clock.at(10.5, lambda: add_now(store, clock, "newest"))
    clock.at(12.5, lambda: add_now(store, clock, "3 s late", behind_seconds=5))  # 3 s behind the newest
    clock.at(13.5, lambda: add_now(store, clock, "8 s late", behind_seconds=11))  # 8 s behind: past the lookback
    assert logs(tail(store, clock)) == ["newest", "3 s late"]


def test_a_catch_up_longer_than_one_poll_sends_every_line_once_in_order_without_waiting():
    store, clock = FakeStore(), FakeClock()
    for i in range(10):
        store.add(*NGINX, T0 - 100 * NS_PER_SECOND + i, f"line {i}", "stdout")
    # One second allows one poll after the first, unless a cut poll goes on at once: 3 + 3 + 3 + 1.
    client, _ = tail_client(store, clock, settings=Settings(tail_max_seconds=1), max_rows_per_poll=3)
    response = client.simulate_get("/tail", params={**CONTAINER_PARAMS, "since": format_rfc3339_ns(T0 - 100 * NS_PER_SECOND)})
    assert logs(response) == [f"line {i}" for i in range(10)]


def test_a_whole_pod_tail_names_each_lines_container():
    store, clock = FakeStore(), FakeClock()
    clock.at(1.5, lambda: add_now(store, clock, "from nginx"))
    clock.at(2.5, lambda: add_now(store, clock, "from the sidecar", container=SIDECAR))
    response = tail(store, clock, container_name=None)
    assert [(row["container"], row["log"]) for row in rows(response)] == [
        ("nginx", "from nginx"), ("sidecar", "from the sidecar")]


@pytest.mark.parametrize("params, kept", [
    ({"contains": "error"}, ["an error", "error again"]),
    ({"regex": "^an? "}, ["a line", "an error"]),
    ({"stream": "stderr"}, ["error again"]),
])
def test_filters_apply_to_the_tail(params, kept):
    store, clock = FakeStore(), FakeClock()
    clock.at(1.5, lambda: add_now(store, clock, "a line"))
    clock.at(2.5, lambda: add_now(store, clock, "an error"))
    clock.at(3.5, lambda: add_now(store, clock, "error again", stream="stderr"))
    assert logs(tail(store, clock, **params)) == kept


def test_only_the_sent_lines_inside_the_lookback_window_are_remembered():
    store = FakeStore()
    follower = TailFollower(scope_reader(store, Scope(*NGINX), 3600), None, start_ns=T0, lookback_seconds=5,
                            max_rows=5000, timeout_seconds=10)
    for second in range(60):
        store.add(*NGINX, T0 + second * NS_PER_SECOND, f"line {second}", "stdout")
        assert [line.log for line in follower.poll(T0 + second * NS_PER_SECOND)] == [f"line {second}"]
    assert follower.remembered == 6  # seconds 54 to 59: the newest and the 5 s before it


# --- heartbeats and the end ---


def test_a_quiet_tail_sends_a_heartbeat_at_once_and_every_ten_seconds_then_ends():
    store, clock = FakeStore(), FakeClock()
    response = tail(store, clock, settings=Settings(tail_max_seconds=25))
    items = ndjson(response)
    assert items[:3] == [None, None, None]  # at 0 s (the headers go out), 10 s and 20 s
    assert list(items[3]) == ["end"] and len(items) == 4


def test_the_tail_ends_cleanly_after_tail_max_seconds_with_an_end_line():
    store, clock = FakeStore(), FakeClock()
    clock.at(1.5, lambda: add_now(store, clock, "a line"))
    response = tail(store, clock)
    assert response.status_code == 200
    assert ndjson(response)[-1]["end"]["reason"] == "max_duration"
    assert "TAIL_MAX_SECONDS=30" in ndjson(response)[-1]["end"]["detail"]
    assert clock.elapsed == pytest.approx(30.0)


def test_server_sent_events_when_the_client_asks_for_them():
    store, clock = FakeStore(), FakeClock()
    clock.at(1.5, lambda: store.add(*NGINX, T0 + NS_PER_SECOND, "first", "stdout"))
    response = tail(store, clock, settings=Settings(tail_max_seconds=13), headers={"Accept": "text/event-stream"})
    assert response.headers["content-type"] == "text/event-stream"
    events = response.text.split("\n\n")
    assert events[0] == ": keepalive"
    assert events[1] == 'event: line\ndata: {"time":"2018-05-07T00:00:01Z","log":"first"}'
    assert events[2] == ": keepalive"  # 10 s after the line
    assert events[3].startswith('event: end\ndata: {"reason":"max_duration"')


# --- Cassandra ---


def test_cassandra_down_when_the_tail_starts_gets_503():
    response = tail(FakeStore(down="no host available"), FakeClock())
    assert response.status_code == 503
    assert response.json["message"] == "Cassandra unavailable"
    assert "Retry-After" in response.headers


def test_cassandra_down_mid_stream_sends_one_error_line_then_the_lines_once_it_is_back():
    store, clock = PollRecordingStore(), FakeClock()
    store.clock, store.attempts = clock, []

    def go_down():
        store.down = "no host available"
        add_now(store, clock, "stored while unreadable")

    clock.at(2.5, go_down)
    clock.at(12.5, lambda: setattr(store, "down", None))
    response = tail(store, clock)
    items = [item for item in ndjson(response) if item is not None]
    assert items[0]["error"]["message"] == "Cassandra unavailable"
    assert "no host available" in items[0]["error"]["detail"]
    assert [item.get("log") for item in items[1:-1]] == ["stored while unreadable"]
    failed = [at for at in store.attempts if 2.5 <= at <= 12.5]  # polls back off: 1 s, 2 s, 4 s
    assert [later - earlier for earlier, later in zip(failed, failed[1:])] == [1.0, 2.0, 4.0]


# --- parameters ---


@pytest.mark.parametrize("params, bad", [
    ({"namespace": None}, "namespace"),
    ({"pod_name": None, "container_name": None}, "pod_name"),
    ({"pod_name": None}, "pod_name"),
    ({"since": "yesterday"}, "since"),
    ({"since": format_rfc3339_ns(T0 - 32 * 86400 * NS_PER_SECOND)}, "since"),
    ({"regex": "(unclosed"}, "regex"),
    ({"stream": "stdin"}, "stream"),
    ({"contains": ""}, "contains"),
])
def test_a_bad_parameter_gets_400_naming_it(params, bad):
    response = tail(FakeStore(), FakeClock(), **params)
    assert response.status_code == 400
    assert bad in response.json["message"]
    assert set(response.json) == {"message", "detail"}


def test_a_since_older_than_the_query_range_cap_says_which_setting():
    response = tail(FakeStore(), FakeClock(), since=format_rfc3339_ns(T0 - 32 * 86400 * NS_PER_SECOND))
    assert "QUERY_MAX_RANGE_SECONDS" in response.json["detail"]


def test_a_repeated_parameter_gets_400():
    client, _ = tail_client(FakeStore(), FakeClock())
    response = client.simulate_get("/tail", query_string="namespace=default&pod_name=a&pod_name=b")
    assert response.status_code == 400


def test_the_route_is_served_by_the_app_and_needs_the_query_token():
    harness = build(Settings(query_token="secret"))
    assert harness.client.simulate_get("/tail", params=CONTAINER_PARAMS).status_code == 401
    authorized = harness.client.simulate_get("/tail", params={"namespace": "default"},
                                             headers={"Authorization": "Bearer secret"})
    assert authorized.status_code == 400 and "pod_name" in authorized.json["message"]


# --- the client going away, and capacity ---


def open_body(app, params=CONTAINER_PARAMS):
    """Call the WSGI app as a server does: (status, body iterable)."""
    answer = {}
    environ = falcon.testing.create_environ(path="/tail", query_string=urllib.parse.urlencode(params))
    body = app(environ, lambda status, headers, exc_info=None: answer.setdefault("status", status))
    return answer["status"], body


def test_closing_the_body_stops_the_polling_and_frees_the_tails_read_slot():
    store, clock = FakeStore(), FakeClock()
    client, slots = tail_client(store, clock)
    status, body = open_body(client.app)
    assert status.startswith("200") and next(body) == b"\n"
    assert slots.open == 1
    body.close()
    reads, sleeps = len(store.reads), len(clock.sleeps)
    with pytest.raises(StopIteration):
        next(body)
    assert (len(store.reads), len(clock.sleeps)) == (reads, sleeps)
    assert slots.open == 0


def test_the_tail_stops_once_waitress_says_the_client_disconnected():
    store, clock = FakeStore(), FakeClock()
    gone = []
    clock.at(3.5, lambda: gone.append(True))
    client, slots = tail_client(store, clock)
    response = client.simulate_get("/tail", params=CONTAINER_PARAMS,
                                   extras={"waitress.client_disconnected": lambda: bool(gone)})
    assert clock.elapsed == pytest.approx(4.0)  # the next poll, due at 4 s, never happened
    assert "end" not in response.text and slots.open == 0


def test_one_tail_more_than_half_the_api_threads_gets_429_until_one_closes():
    store, clock = FakeStore(), FakeClock()
    client, _ = tail_client(store, clock, settings=Settings(api_threads=2, tail_max_seconds=5))
    _, first = open_body(client.app)
    refused = client.simulate_get("/tail", params=CONTAINER_PARAMS)
    assert refused.status_code == 429 and "API_THREADS=2" in refused.json["detail"]
    assert "Retry-After" in refused.headers
    first.close()
    assert client.simulate_get("/tail", params=CONTAINER_PARAMS).status_code == 200


def test_under_waitress_a_client_that_goes_away_ends_the_tail():
    """Real sockets and the real clock: waitress notices on a heartbeat's write and closes the body."""
    settings = Settings(tail_poll_seconds=0.05)
    slots = ReadSlots(settings, ["/tail"])
    app = falcon.App(middleware=[slots])
    app.add_route("/tail", TailResource(settings, FakeStore(), heartbeat_seconds=0.05))
    with waitress_serving(app) as url:
        connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=5)
        connection.request("GET", "/tail?" + urllib.parse.urlencode(CONTAINER_PARAMS))
        response = connection.getresponse()
        assert response.status == 200 and response.readline() == b"\n"
        assert slots.open == 1
        response.close()
        connection.close()
        wait_for(lambda: slots.open == 0, timeout=5, what="the tail's read slot given back")
