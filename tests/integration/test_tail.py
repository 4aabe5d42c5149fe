"""GET /tail on the real Redis and Cassandra: the app (create_app, real queue and store) served by
waitress on a real port, lines posted to POST /write after the tail started, a worker writing them,
and the tail's stream read as a client reads it."""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest

from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns
from tests.integration.pipeline import build_pipeline, unique
from tests.records import fluent_bit_record
from tests.unit.waitress_server import waitress_serving

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 20.0


@pytest.fixture(scope="module")
def pipeline(integration_settings, real_store):
    return build_pipeline(integration_settings, real_store)


@pytest.fixture(scope="module")
def server(pipeline):
    with waitress_serving(pipeline.client.app) as url:
        yield url


def post(url, records) -> None:
    request = urllib.request.Request(url + "/write", data=json.dumps(records).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["accepted"] == len(records)


@dataclasses.dataclass
class Tail:
    """An open GET /tail read by a thread: each object arrives on `received` with the moment it came."""

    sock: socket.socket
    received: queue.Queue

    def next_object(self, deadline: float) -> tuple[float, dict]:
        """The next row or control object (heartbeats skipped), or fail at the deadline."""
        while True:
            try:
                arrived, item = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the tail sent nothing more before the deadline")
            if item is not None:
                return arrived, item

    def logs_until(self, last_log: str) -> list[tuple[float, str]]:
        """(arrival, log) of every line up to and including `last_log`."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        seen = []
        while True:
            arrived, item = self.next_object(deadline)
            assert "log" in item, item
            seen.append((arrived, item["log"]))
            if item["log"] == last_log:
                return seen

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # the reader thread is blocked on it: wake it, tell the server
        self.sock.close()


def open_tail(url, **params) -> Tail:
    """GET /tail; returns once the server has answered (the tail has started, so every line stored
    from now on is after its starting point)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=30)
    connection.request("GET", "/tail?" + urllib.parse.urlencode(params))
    sock = connection.sock
    response = connection.getresponse()
    assert response.status == 200, response.read()
    received: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            while raw := response.readline():
                received.put((time.monotonic(), json.loads(raw) if raw.strip() else None))
        except (OSError, http.client.HTTPException, ValueError):
            pass

    threading.Thread(target=read, daemon=True).start()
    return Tail(sock, received)


def test_a_tail_shows_exactly_the_lines_stored_after_it_started_in_order(pipeline, server):
    namespace, pod = unique("tail"), "web-1"
    tail = open_tail(server, namespace=namespace, pod_name=pod)
    try:
        start = now_ns()
        lines = [fluent_bit_record(namespace, pod, "nginx" if i % 2 else "sidecar", time=start + i * 1000,
                                   log=f"line {i}") for i in range(6)]
        posted = time.monotonic()
        post(server, lines[:3])
        post(server, lines[3:])
        pipeline.drain()
        drained = time.monotonic()
        seen = tail.logs_until("line 5")
        assert [log for _, log in seen] == [f"line {i}" for i in range(6)]

        # A sentinel stored later: anything sent twice by the polls in between would come before it.
        post(server, [fluent_bit_record(namespace, pod, "nginx", time=now_ns(), log="sentinel")])
        pipeline.drain()
        assert [log for _, log in tail.logs_until("sentinel")] == ["sentinel"]
    finally:
        tail.close()
    print(f"\nPOST -> on the tail: {seen[-1][0] - posted:.3f} s (worker drain {drained - posted:.3f} s, "
          f"drain end -> on the tail {seen[-1][0] - drained:.3f} s, TAIL_POLL_SECONDS={pipeline.settings.tail_poll_seconds:g})")


def test_a_late_line_within_the_lookback_shows_once_and_an_older_one_never(pipeline, server):
    namespace, pod = unique("tail"), "web-1"
    # Started a minute back, so both late lines are after the tail's starting point.
    tail = open_tail(server, namespace=namespace, pod_name=pod, container_name="nginx",
                     since=format_rfc3339_ns(now_ns() - 60 * NS_PER_SECOND))
    try:
        newest = now_ns()
        post(server, [fluent_bit_record(namespace, pod, "nginx", time=newest, log="newest")])
        pipeline.drain()
        assert [log for _, log in tail.logs_until("newest")] == ["newest"]

        lookback = pipeline.settings.tail_lookback_seconds
        post(server, [
            fluent_bit_record(namespace, pod, "nginx", time=newest - (lookback + 20) * NS_PER_SECOND, log="too late"),
            fluent_bit_record(namespace, pod, "nginx", time=newest - 2 * NS_PER_SECOND, log="2 s late"),
        ])
        pipeline.drain()
        post(server, [fluent_bit_record(namespace, pod, "nginx", time=now_ns(), log="sentinel")])
        pipeline.drain()
        assert [log for _, log in tail.logs_until("sentinel")] == ["2 s late", "sentinel"]
    finally:
        tail.close()


def test_a_tail_from_since_catches_up_then_follows(pipeline, server):
    namespace, pod = unique("tail"), "web-1"
    earlier = now_ns() - 120 * NS_PER_SECOND
    post(server, [fluent_bit_record(namespace, pod, "nginx", time=earlier + i, log=f"stored {i}") for i in range(3)])
    pipeline.drain()
    tail = open_tail(server, namespace=namespace, pod_name=pod, since=format_rfc3339_ns(earlier + 1))
    try:
        assert [log for _, log in tail.logs_until("stored 2")] == ["stored 1", "stored 2"]
        post(server, [fluent_bit_record(namespace, pod, "nginx", time=now_ns(), log="new")])
        pipeline.drain()
        assert [log for _, log in tail.logs_until("new")] == ["new"]
    finally:
        tail.close()
