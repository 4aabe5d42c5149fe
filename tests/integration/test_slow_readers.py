"""A slow reader never stops ingest: 16 clients ask GET /query for NDJSON over a container with
40,000 long lines (10 MB, far more than a connection's buffers hold) and never read (receive
buffer 4 KiB), while a sender POSTs batches. The app is served by api.server.create_server, as in
production, on the real Redis and Cassandra.

The scenario runs once (module fixture); each test checks one thing it must have shown."""

from __future__ import annotations

import dataclasses
import http.client
import json
import select
import socket
import time
import urllib.parse

import pytest

from api.app import build_app
from api.server import create_server
from common.records import LogRow
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns
from tests.conftest import with_changes
from tests.integration.pipeline import build_pipeline, unique
from tests.records import fluent_bit_record
from tests.unit.waitress_server import running
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PORTS = range(18100, 18200)  # a range of its own: other servers on this machine use theirs
LINES = 40_000
LOG = "x" * 200
READERS = 16
API_THREADS = 8  # the shipped default
READ_SLOTS = API_THREADS // 2
STALL_SECONDS = 3
CUT_WITHIN = STALL_SECONDS + 3  # README: READER_STALL_SECONDS + up to 2 s, + 1 s for the buffers to fill
ANSWER_WITHIN = 1.0
BATCH = 50


def free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


@dataclasses.dataclass
class Served:
    port: int
    server: object
    namespace: str
    start_time: str

    def query_path(self, **params: str) -> str:
        return "/query?" + urllib.parse.urlencode({
            "namespace": self.namespace, "pod_name": "big", "container_name": "app",
            "start_time": self.start_time, **params})


@pytest.fixture(scope="module")
def served(integration_settings, real_store):
    settings = with_changes(integration_settings, queue_name=unique("slow-readers"), api_threads=API_THREADS,
                            reader_stall_seconds=STALL_SECONDS)
    namespace = unique("slow")
    first_ns = now_ns() - 1800 * NS_PER_SECOND
    rows = [LogRow(namespace, "big", "app", first_ns + i * 1000, LOG) for i in range(LINES)]
    for first in range(0, LINES, 5000):
        real_store.write(rows[first:first + 5000])
    app, store = build_app(settings)
    port = free_port_in(PORTS)
    server = create_server(app, settings, host="127.0.0.1", port=port)
    with running(server):
        yield Served(port, server, namespace, format_rfc3339_ns(first_ns - NS_PER_SECOND))
    store.close()
    build_pipeline(settings, real_store).drain()  # the batches posted are written, not left queued


# --- the clients ---


# The streamed outputs of GET /query. A JSON document smaller than waitress's output buffer
# (outbuf_high_watermark, 16 MiB) frees its thread at once, whoever reads it; one larger holds its
# slot like a stream (tests/unit/test_api_read_slots.py).
OUTPUTS = ("application/x-ndjson", "text/plain")


def stalled_reader(served: Served, accept: str) -> socket.socket:
    """A client that asks for the whole container and never reads the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", served.port))
    sock.sendall(f"GET {served.query_path()} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Accept: {accept}\r\n\r\n".encode())
    return sock


@dataclasses.dataclass
class Head:
    status: int
    headers: dict[str, str]
    body: bytes


def peek_heads(readers: list[socket.socket], timeout: float) -> dict[socket.socket, Head]:
    """Each reader's status, headers and (for a short answer) body, seen with MSG_PEEK: nothing
    is taken from the receive buffer."""
    heads: dict[socket.socket, Head] = {}
    deadline = time.monotonic() + timeout
    while len(heads) < len(readers) and time.monotonic() < deadline:
        waiting = [r for r in readers if r not in heads]
        readable, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for reader in readable:
            data = reader.recv(4096, socket.MSG_PEEK)
            if b"\r\n\r\n" not in data:
                continue
            head, _, body = data.partition(b"\r\n\r\n")
            status_line, *lines = head.decode().split("\r\n")
            headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
            length = int(headers.get("content-length", -1))
            status = int(status_line.split()[1])
            if status != 200 and length >= 0 and len(body) < length:
                continue  # the rest of a short answer (a 429) is on its way
            heads[reader] = Head(status, headers, body)
    return heads


def timed(method: str, port: int, path: str, body: bytes | None = None) -> tuple[float, int | None]:
    """(seconds, status) of one request on a new connection; status None when it got no answer
    within ANSWER_WITHIN (+ 1 s of grace)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN + 1)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return time.monotonic() - started, response.status
    except (TimeoutError, OSError):
        return time.monotonic() - started, None
    finally:
        connection.close()


def read_to_the_end(reader: socket.socket) -> str:
    """Reads what is left: 'reset' or 'closed after N bytes' once the server has cut the
    connection, 'open' if it is still sending after 10 s."""
    reader.settimeout(10)
    received = 0
    try:
        while data := reader.recv(2**16):
            received += len(data)
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"
    return f"closed after {received} bytes"


def batch(namespace: str, number: int) -> bytes:
    ts_ns = now_ns()
    return json.dumps([fluent_bit_record(namespace, "sender", "app", time=ts_ns + i, log=f"batch {number} line {i}",
                                         stream=None)
                       for i in range(BATCH)]).encode()


# --- the scenario ---


@dataclasses.dataclass
class Observed:
    heads: list[Head]
    posts: list[tuple[float, int | None]]
    probes: dict[str, list[tuple[float, int | None]]]
    freed_after: float | None  # seconds from the stall until a new reader was admitted
    threads_busy_after: int  # waitress threads still busy once it was
    admitted_ends: list[str]  # how each admitted reader's connection ended, read once it was cut


@pytest.fixture(scope="module")
def observed(served) -> Observed:
    readers = [stalled_reader(served, OUTPUTS[n % len(OUTPUTS)]) for n in range(READERS)]
    try:
        heads = peek_heads(readers, timeout=10)
        stalled_at = time.monotonic()
        posts: list[tuple[float, int | None]] = []
        probes: dict[str, list[tuple[float, int | None]]] = {"/ready": [], "/metrics": []}
        freed_after = None
        number = 0
        while time.monotonic() - stalled_at < CUT_WITHIN + 5:
            posts.append(timed("POST", served.port, "/write", batch(served.namespace, number)))
            number += 1
            for path, answers in probes.items():
                answers.append(timed("GET", served.port, path))
            _, status = timed("GET", served.port, served.query_path(limit="1"))
            if status == 200:
                freed_after = time.monotonic() - stalled_at
                break
            time.sleep(0.05)  # a sender's pace, not a wait for a condition
        if freed_after is not None:
            # The freed threads are idle once the probe's own request has finished.
            dispatcher = served.server.task_dispatcher
            wait_for(lambda: dispatcher.active_count == 0, timeout=2, what="every waitress thread idle")
        busy = served.server.task_dispatcher.active_count
        ends = [read_to_the_end(reader) for reader in readers if reader in heads and heads[reader].status == 200]
    finally:
        for reader in readers:
            reader.close()
    print(f"\n[slow readers] {len(posts)} POSTs, slowest {max(s for s, _ in posts) * 1000:.0f} ms; "
          f"/ready slowest {max(s for s, _ in probes['/ready']) * 1000:.0f} ms, "
          f"/metrics slowest {max(s for s, _ in probes['/metrics']) * 1000:.0f} ms; "
          f"statuses of the {READERS} readers: {sorted(h.status for h in heads.values())}; "
          f"a new reader admitted {freed_after if freed_after is None else round(freed_after, 2)} s "
          f"after the stall began (READER_STALL_SECONDS={STALL_SECONDS})")
    print(f"[slow readers] the admitted readers' connections: {ends}")
    return Observed([heads[r] for r in readers if r in heads], posts, probes, freed_after, busy, ends)


def test_every_post_answers_2xx_within_a_second_while_readers_stall(observed):
    assert observed.posts
    slow = [(round(seconds, 2), status) for seconds, status in observed.posts
            if status is None or not 200 <= status < 300 or seconds > ANSWER_WITHIN]
    assert slow == [], f"{len(slow)} of {len(observed.posts)} POSTs slow or failed: {slow[:5]}"


@pytest.mark.parametrize("path", ["/ready", "/metrics"])
def test_the_probe_and_the_metrics_answer_within_a_second(observed, path):
    slow = [(round(seconds, 2), status) for seconds, status in observed.probes[path]
            if status != 200 or seconds > ANSWER_WITHIN]
    assert slow == []


def test_readers_get_half_the_threads_and_the_surplus_gets_429_with_retry_after(observed):
    assert len(observed.heads) == READERS, "every reader got an answer"
    admitted = [head for head in observed.heads if head.status == 200]
    refused = [head for head in observed.heads if head.status == 429]
    assert (len(admitted), len(refused)) == (READ_SLOTS, READERS - READ_SLOTS)
    for head in refused:
        assert int(head.headers["retry-after"]) > 0
        error = json.loads(head.body)
        assert set(error) == {"message", "detail"} and f"API_THREADS={API_THREADS}" in error["detail"]


def test_the_stalled_readers_are_cut_and_their_threads_freed_within_the_bound(observed):
    assert observed.freed_after is not None, f"no reader admitted within {CUT_WITHIN + 5} s"
    assert STALL_SECONDS - 0.5 <= observed.freed_after <= CUT_WITHIN  # never before the bound
    assert observed.threads_busy_after == 0
    assert observed.admitted_ends == ["reset"] * READ_SLOTS
