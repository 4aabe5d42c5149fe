"""api.server.create_server: the production waitress server cuts a client that stops reading after
READER_STALL_SECONDS (within the ~2 s of its maintenance pass), and never one that reads."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

import falcon

from api.server import RECV_BYTES, create_server
from common.settings import Settings
from tests.unit.waitress_server import running
from tests.waiting import wait_for

STALL_SECONDS = 0.3
CUT_WITHIN = STALL_SECONDS + 2 + 1  # the pass every second, the main loop's 1 s poll, slack


class Endless:
    """A streamed answer that never ends; `closed` is set once waitress closes its body."""

    def __init__(self):
        self.closed = threading.Event()

    def on_get(self, req, resp):
        def chunks():
            try:
                while True:
                    yield b"x" * 65536
            finally:
                self.closed.set()

        resp.stream = chunks()


class Whole:
    """An 8 MB answer built whole (as a JSON /query answer is)."""

    def on_get(self, req, resp):
        resp.data = b"x" * 8 * 2**20


def server_of(app, stall_seconds=STALL_SECONDS):
    return create_server(app, Settings(api_threads=2, reader_stall_seconds=stall_seconds), host="127.0.0.1", port=0)


def reader(url: str, path: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", urllib.parse.urlsplit(url).port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def is_reset(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        while sock.recv(2**16):
            pass
    except ConnectionResetError:
        return True
    return False


def test_a_client_that_stops_reading_is_reset_and_its_thread_freed():
    endless = Endless()
    app = falcon.App()
    app.add_route("/stream", endless)
    with running(server_of(app)) as url:
        sock = reader(url, "/stream")
        started = time.monotonic()
        wait_for(endless.closed.is_set, timeout=CUT_WITHIN, what="the stalled answer's body closed")
        assert time.monotonic() - started >= STALL_SECONDS
        assert is_reset(sock)
        sock.close()


def test_a_client_that_reads_slowly_but_steadily_is_not_cut():
    endless = Endless()
    app = falcon.App()
    app.add_route("/stream", endless)
    with running(server_of(app, stall_seconds=0.5)) as url:
        sock = reader(url, "/stream")
        until = time.monotonic() + 2.5  # past two maintenance passes after the bound
        received = 0
        while time.monotonic() < until:
            received += len(sock.recv(4096))
            time.sleep(0.1)  # the slow reader's pace: 4 KiB per 0.1 s
        assert received > 0 and not endless.closed.is_set()
        sock.close()
        wait_for(endless.closed.is_set, timeout=5, what="the body closed once the client left")


def test_an_unread_answer_built_whole_is_dropped_after_the_bound():
    app = falcon.App()
    app.add_route("/whole", Whole())
    server = server_of(app)
    with running(server) as url:
        sock = reader(url, "/whole")
        wait_for(lambda: server.active_channels, timeout=2, what="the connection accepted")
        wait_for(lambda: not server.active_channels, timeout=CUT_WITHIN, what="the unread connection dropped")
        assert is_reset(sock)
        sock.close()


class Echo:
    def on_post(self, req, resp):
        resp.data = req.bounded_stream.read()


def test_a_body_many_socket_reads_long_arrives_whole():
    app = falcon.App()
    app.add_route("/echo", Echo())
    server = server_of(app)
    assert server.adj.recv_bytes == RECV_BYTES  # a batch takes a few recv() calls, not one per 8 KiB
    body = bytes(range(256)) * (5 * RECV_BYTES // 256 + 7)
    with running(server) as url:
        sock = socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(url).port))
        sock.sendall(f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        answer = b""
        while chunk := sock.recv(2**16):
            answer += chunk
        sock.close()
    assert answer.split(b"\r\n\r\n", 1)[1] == body
