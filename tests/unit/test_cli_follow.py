"""`query --follow`: the query's lines, then GET /tail's, reconnecting without printing a line twice;
and `query` of a whole pod. Against the real app on a real port (the `live` fixture), and against a
scripted stand-in for the connection drops."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import urllib.parse

import pytest

from cli import query_command
from cli.main import main
from common.settings import Settings
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns
from tests.unit.api_harness import FakeStore, build
from tests.unit.test_cli_client import closed_port_url, in_thread, live  # noqa: F401  (live is a fixture)
from tests.unit.waitress_server import waitress_serving
from tests.waiting import wait_for

POD = ["--namespace", "default", "--pod", "nginx-1"]
CONTAINER = [*POD, "--container", "nginx"]
NGINX_1 = ("default", "nginx-1", "nginx")
# The tail polls often and ends soon, so a follow against the real app ends by itself.
QUICK_TAIL = Settings(tail_poll_seconds=0.02, tail_max_seconds=1)


def when(condition, then, timeout: float = 5.0) -> threading.Thread:
    """Run `then` in a thread once `condition()` holds (polled), while the command runs in the test's."""

    def wait() -> None:
        try:
            wait_for(condition, timeout=timeout, interval=0.005)
        except AssertionError:
            return  # never held: the command's own assertions tell
        then()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def tail_has_read_from(store: FakeStore, since_ns: int):
    """True once a read starting at since_ns was made: the tail's, resuming after the query's lines."""
    return lambda: any(read[4][0] == since_ns for read in list(store.reads))


# --- against the real app ---


def test_follow_prints_the_querys_lines_then_new_ones_as_they_are_stored(live, capsys):
    old = now_ns() - 60 * NS_PER_SECOND
    store = FakeStore(container=NGINX_1, rows=[(old, "old 1\n"), (old + 1, "old 2\n")])
    api = live(store=store, settings=QUICK_TAIL)

    def store_new_lines():
        store.add(*NGINX_1, now_ns(), "new 1\n", "stdout")
        store.add(*NGINX_1, now_ns(), "new 2\n", "stdout")

    adder = when(tail_has_read_from(store, old + 1), store_new_lines)
    assert main(["query", *CONTAINER, "--since", "5m", "--follow", "--server", api.url]) == 0
    adder.join()
    captured = capsys.readouterr()
    assert captured.out == "old 1\nold 2\nnew 1\nnew 2\n"
    assert "the server ended the tail (max_duration)" in captured.err


def test_follow_reads_waitress_chunked_stream_to_its_end(capsys):
    """The production server sends the tail chunked (HTTP/1.1), not closed-delimited as wsgiref does."""
    old = now_ns() - 60 * NS_PER_SECOND
    store = FakeStore(container=NGINX_1, rows=[(old, "old\n")])
    harness = build(QUICK_TAIL, store)
    with waitress_serving(harness.client.app) as url:
        adder = when(tail_has_read_from(store, old), lambda: store.add(*NGINX_1, now_ns(), "new\n", "stdout"))
        assert main(["query", *CONTAINER, "--since", "5m", "--follow", "--server", url]) == 0
        adder.join()
    captured = capsys.readouterr()
    assert captured.out == "old\nnew\n"
    assert "reconnecting" not in captured.err and "ended the tail" in captured.err


def test_follow_of_a_whole_pod_prefixes_each_line_with_its_container_and_time(live, capsys):
    old = now_ns() - 60 * NS_PER_SECOND
    store = FakeStore(container=NGINX_1, rows=[(old, "old\n")])
    api = live(store=store, settings=QUICK_TAIL)
    new = now_ns()
    adder = when(tail_has_read_from(store, old), lambda: store.add("default", "nginx-1", "sidecar", new, "new\n"))
    assert main(["query", *POD, "--since", "5m", "--timestamps", "--follow", "--server", api.url]) == 0
    adder.join()
    assert capsys.readouterr().out == (f"[nginx] {format_rfc3339_ns(old)} old\n"
                                       f"[sidecar] {format_rfc3339_ns(new)} new\n")


def test_follow_with_json_prints_one_row_per_line(live, capsys):
    old = now_ns() - 60 * NS_PER_SECOND
    store = FakeStore(container=NGINX_1, rows=[(old, "old\n")])
    api = live(store=store, settings=QUICK_TAIL)
    new = now_ns()
    adder = when(tail_has_read_from(store, old), lambda: store.add(*NGINX_1, new, "new\n"))
    assert main(["query", *CONTAINER, "--since", "5m", "--json", "--follow", "--server", api.url]) == 0
    adder.join()
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"time": format_rfc3339_ns(old), "log": "old\n"}, {"time": format_rfc3339_ns(new), "log": "new\n"}]


def test_a_query_without_container_prints_the_whole_pod_with_container_prefixes(live, capsys):
    old = now_ns() - 60 * NS_PER_SECOND
    store = FakeStore(container=NGINX_1, rows=[(old, "from nginx\n")])
    store.add("default", "nginx-1", "sidecar", old + 1, "from the sidecar\n")
    api = live(store=store)
    assert main(["query", *POD, "--since", "5m", "--server", api.url]) == 0
    assert capsys.readouterr().out == "[nginx] from nginx\n[sidecar] from the sidecar\n"


def test_follow_with_an_end_time_is_refused_before_asking_the_server(capsys):
    status = main(["query", *CONTAINER, "--start-time", "2018-05-07T00:00:00Z", "--end-time",
                   "2018-05-07T01:00:00Z", "--follow", "--server", closed_port_url()])
    assert status == 2
    assert "--follow" in capsys.readouterr().err


# --- against a scripted server: drops, refusals, Ctrl-C ---

T1, T2, T3 = "2018-05-07T00:00:01Z", "2018-05-07T00:00:02Z", "2018-05-07T00:00:03Z"
END = {"end": {"reason": "max_duration", "detail": "done"}}


def row(time_text: str, log: str) -> dict:
    return {"time": time_text, "log": log + "\n"}


@contextlib.contextmanager
def scripted_tail(query_rows: list[dict], *tails: tuple[int, dict, list[dict]]):
    """GET /query answers query_rows; each GET /tail answers the next (status, headers, objects)
    (the last one repeats), then closes the connection. Yields (url, the since= of each tail)."""
    sinces: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/query":
                self._answer(200, {}, [{"log_rows": query_rows}])
                return
            sinces.append(urllib.parse.parse_qs(url.query)["since"][0])
            self._answer(*tails[min(len(sinces), len(tails)) - 1])

        def _answer(self, status, headers, objects):
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/x-ndjson"}.items():
                self.send_header(name, value)
            self.end_headers()
            for item in objects:
                self.wfile.write(json.dumps(item).encode() + b"\n\n")  # each with a heartbeat after it

        def log_message(self, format, *args):
            pass

    with in_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, sinces


@pytest.fixture
def delays(monkeypatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(query_command, "_sleep", waited.append)
    return waited


def test_a_dropped_tail_is_resumed_from_the_newest_line_without_printing_any_twice(capsys, delays):
    same = row(T2, "same text")
    first = (200, {}, [row(T1, "a"), row(T2, "b"), same, same])  # then the connection drops
    second = (200, {}, [row(T2, "b"), same, same, same, row(T3, "e"), END])  # resumed at T2: a third "same" is new
    with scripted_tail([row(T1, "a")], first, second) as (url, sinces):
        assert main(["query", *CONTAINER, "--since", "1h", "--follow", "--server", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "a\nb\nsame text\nsame text\nsame text\ne\n"
    assert sinces == [T1, T2]
    assert delays == [0.5]
    assert "the server closed the connection; reconnecting in 0.5s" in captured.err


def test_reconnections_back_off_until_a_connection_delivers_and_honour_retry_after(capsys, delays):
    dropped = (200, {}, [])
    delivered = (200, {}, [row(T1, "a")])
    busy = (429, {"Retry-After": "7"}, [{"message": "Too many tails", "detail": "retry later"}])
    with scripted_tail([], dropped, dropped, dropped, delivered, dropped, busy, (200, {}, [END])) as (url, sinces):
        assert main(["query", *CONTAINER, "--since", "1h", "--follow", "--server", url]) == 0
    assert delays == [0.5, 1.0, 2.0, 0.5, 1.0, 7.0]


def test_an_error_line_is_a_warning_and_the_tail_goes_on(capsys, delays):
    outage = {"error": {"message": "Cassandra unavailable", "detail": "no host available"}}
    with scripted_tail([], (200, {}, [outage, row(T1, "after the outage"), END])) as (url, sinces):
        assert main(["query", *CONTAINER, "--since", "1h", "--follow", "--server", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "after the outage\n"
    assert "warning: Cassandra unavailable: no host available" in captured.err


def test_a_tail_refused_for_good_exits_1_with_the_servers_message(capsys, delays):
    refused = (400, {}, [{"message": "Invalid parameter 'since'", "detail": "too old"}])
    with scripted_tail([], refused) as (url, sinces):
        assert main(["query", *CONTAINER, "--since", "1h", "--follow", "--server", url]) == 1
    assert "HTTP 400 Invalid parameter 'since': too old" in capsys.readouterr().err
    assert delays == []


def test_ctrl_c_while_following_exits_0_quietly(capsys, monkeypatch):
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(query_command, "_sleep", interrupted)
    with scripted_tail([row(T1, "a")], (200, {}, [])) as (url, sinces):
        assert main(["query", *CONTAINER, "--since", "1h", "--follow", "--server", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "a\n" and "Traceback" not in captured.err
