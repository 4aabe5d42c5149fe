"""Scenario 7: oversized bodies against a real API process (waitress) with a 1 MiB MAX_BODY_BYTES.

A declared Content-Length above the limit is refused before the body is sent, a chunked body is
cut off at the limit, and a gzip bomb stops inflating at the limit: the API's memory stays flat.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time

import pytest

from tests.conftest import with_changes
from tests.faults import processes
from tests.integration.pipeline import unique
from tests.integration.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LIMIT = 2**20
FLOOD_BYTES = 200 * 2**20
CHUNK = 64 * 1024
RSS_GROWTH_LIMIT_MB = 8  # a few times the 1 MiB limit, far below the 200 MB sent


class Api:
    def __init__(self, process, port: int):
        self.process, self.port = process, port

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def rss_mb(self) -> float:
        return processes.rss_mb(self.process.pid)


@pytest.fixture(scope="module")
def api(integration_settings, tmp_path_factory):
    settings = with_changes(integration_settings, queue_name=unique("oversized"))
    port = free_port()
    process = processes.start_api(settings, tmp_path_factory.mktemp("oversized") / "api.log", port,
                                  MAX_BODY_BYTES=str(LIMIT))
    yield Api(process, port)
    processes.stop(process)


class PeakRss:
    """The largest RSS of a process while the block runs, sampled every 10 ms."""

    def __init__(self, api: Api):
        self._api, self._stop = api, threading.Event()
        self.before = self.peak = api.rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._api.rss_mb())

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._api.rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.before


def head(length_header: str) -> bytes:
    return (f"POST /write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{length_header}\r\n\r\n").encode()


def read_status(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed without an answer")
        answer += data
    return int(answer.split(b" ", 2)[1])


def post(api: Api, body: bytes, **headers: str) -> int:
    with api.connect() as sock:
        extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        sock.sendall(head(f"{extra}Content-Length: {len(body)}") + body)
        return read_status(sock)


def test_a_declared_length_above_the_limit_gets_413_before_the_body_is_sent(api):
    with api.connect() as sock:
        started = time.monotonic()
        sock.sendall(head(f"Content-Length: {FLOOD_BYTES}") + b"[" + b" " * CHUNK)
        status = read_status(sock)
        elapsed = time.monotonic() - started
    print(f"\n[scenario 7] declared {FLOOD_BYTES} bytes, sent {CHUNK + 1}: {status} after {elapsed * 1000:.0f} ms")
    assert status == 413
    assert elapsed < 2


def test_a_chunked_body_is_cut_off_at_the_limit_without_being_buffered(api):
    chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
    sent = 0
    with PeakRss(api) as rss, api.connect() as sock:
        sock.sendall(head("Transfer-Encoding: chunked"))
        try:
            while sent < FLOOD_BYTES:
                sock.sendall(chunk)
                sent += CHUNK
        except OSError:
            pass  # the server closed the connection: it stopped reading
        try:
            status = read_status(sock)
        except OSError:
            status = None  # reset before the answer could be read: refused all the same
    print(f"\n[scenario 7] chunked: sent {sent / 2**20:.1f} of {FLOOD_BYTES / 2**20:.0f} MiB before the server "
          f"closed, answer {status}, API RSS {rss.before:.1f} -> peak {rss.peak:.1f} MB")
    assert status in (413, None)
    assert sent < FLOOD_BYTES / 10, "the server stopped reading near the limit"
    assert rss.growth_mb < RSS_GROWTH_LIMIT_MB


def test_a_gzip_bomb_stops_inflating_at_the_limit(api):
    bomb = gzip.compress(b"[" + b" " * (200 * 2**20) + b"]")  # 200 MiB of JSON in ~200 KiB
    assert len(bomb) < LIMIT
    with PeakRss(api) as rss:
        status = post(api, bomb, Content_Encoding="gzip")
    print(f"\n[scenario 7] gzip bomb: {len(bomb) / 1024:.0f} KiB inflating to 200 MiB: {status}, "
          f"API RSS {rss.before:.1f} -> peak {rss.peak:.1f} MB")
    assert status == 413
    assert rss.growth_mb < RSS_GROWTH_LIMIT_MB


def test_a_body_of_exactly_the_limit_is_read_not_refused(api):
    assert post(api, b"{" * LIMIT) == 400  # read and decoded (not JSON), not refused for its size


def test_the_api_still_answers_after_the_oversized_bodies(api):
    assert post(api, b"[]") == 200  # an empty batch: nothing queued
