"""Serving the app with waitress, and cutting readers that stop reading.

Why the cut is needed: a streamed answer's thread blocks in waitress's `write_soon` once the
connection has `outbuf_high_watermark` bytes unsent, until the client takes some. A client that
never reads would hold that thread for as long as it keeps the connection open, and waitress's own
inactivity timeout (`channel_timeout`) skips a connection while a request on it is being served.

How: waitress runs a maintenance pass in its main loop every `cleanup_interval` (1 s here); ours
also finds each connection that has bytes unsent and has made no progress (see StalledReaderCut) for
READER_STALL_SECONDS. It shuts the socket down (the main loop then finds it writable, the send
fails, and waitress closes the connection as it does for a client that went away: the blocked
thread wakes with ClientDisconnected, the body is closed and its read slot given back) and sets
SO_LINGER 0 so the close resets the connection instead of keeping the unsent bytes in the kernel.
The socket is not closed in the pass itself: the main loop still polls the file descriptors it
listed before the pass, and a closed one would make select() fail.

The same cut frees a WebSocket (GET /loki/api/v1/tail) whose client stopped reading: its frames go
out through the same connection and `write_soon` (api/upgrade.py).
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios

import waitress
from waitress.server import BaseWSGIServer

from api.app import build_app
from api.upgrade import UpgradableChannel
from common.gc_tuning import tune_for_service
from common.settings import Settings

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 2**10


def create_server(app, settings: Settings, *, host: str | None = None, port: int | None = None,
                  sockets: list[socket.socket] | None = None):
    """The waitress server for `app` as production runs it, on `sockets` already listening (an API
    process under the supervisor) or else on `host`/`port` (default: the settings');
    `.run()` serves until the process ends."""
    where = {"sockets": sockets} if sockets else {"host": settings.ip if host is None else host,
                                                  "port": settings.port if port is None else port}
    server = waitress.create_server(
        app,
        **where,
        threads=settings.api_threads,
        # waitress answers 413 itself for a declared Content-Length above the limit, before
        # reading the body, and cuts a chunked body off at the limit; larger bodies are never
        # buffered whole. waitress refuses a body *of* its limit, hence + 1.
        max_request_body_size=settings.max_body_bytes + 1,
        # Bodies up to 4 MiB stay in memory; waitress's default (512 KiB) sent a typical
        # fluent-bit batch through a temporary file.
        inbuf_overflow=4 * 2**20,
        # Read the socket in RECV_BYTES pieces, not waitress's 8 KiB: a 300 KiB batch then takes a
        # few recv() calls and buffer appends instead of ~40 (bench/ab.py: 9.5 -> 8.5 CPU ms per batch).
        recv_bytes=RECV_BYTES,
        # A streamed answer (NDJSON, text, /tail) waits for a slow client once 1 MiB is
        # unsent, instead of piling up waitress's default 16 MiB per connection.
        outbuf_high_watermark=2**20,
        # Read ahead one request, so an open /tail learns at once that its client hung up.
        channel_request_lookahead=1,
        # The maintenance pass (below) every second, so a stalled reader is cut at most ~2 s after
        # READER_STALL_SECONDS (1 s between passes, up to 1 s more for the main loop to get there).
        cleanup_interval=1,
        ident="kube-insight-logserver",
    )
    listeners = [server] if isinstance(server, BaseWSGIServer) else [
        dispatcher for dispatcher in server.map.values() if isinstance(dispatcher, BaseWSGIServer)]
    for listener in listeners:
        listener.channel_class = UpgradableChannel  # WebSocket on the same port (api/upgrade.py)
        listener.maintenance = StalledReaderCut(listener, settings.reader_stall_seconds)
    return server


_ABORT_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


class StalledReaderCut:
    """A listener's maintenance pass: waitress's own, then every connection that has had unsent
    bytes and made no progress for `stall_seconds` is cut.

    Progress is waitress sending bytes (its `last_activity`) or the kernel's send queue changing
    (the client acknowledged some). The second matters: a slow but steady reader drains the
    kernel's buffer long before that buffer has room enough for waitress to send again."""

    def __init__(self, listener: BaseWSGIServer, stall_seconds: float):
        self._listener = listener
        self._waitress_maintenance = listener.maintenance
        self._stall_seconds = stall_seconds
        self._kernel_queue: dict[object, tuple[int | None, float]] = {}  # channel -> (queued bytes, since)

    def __call__(self, now: float) -> None:
        self._waitress_maintenance(now)
        cutoff = now - self._stall_seconds
        channels = list(self._listener.active_channels.values())
        seen = self._kernel_queue
        self._kernel_queue = {}
        for channel in channels:
            queued = _kernel_queued(channel.socket)
            previous = seen.get(channel)
            self._kernel_queue[channel] = (queued, now) if previous is None or previous[0] != queued else previous
            progress_at = max(channel.last_activity, self._kernel_queue[channel][1])
            if channel.total_outbufs_len and progress_at < cutoff:
                self._cut(channel, now - progress_at)

    @staticmethod
    def _cut(channel, stalled_seconds: float) -> None:
        requests = channel.requests
        log.warning("event=slow_reader_cut client=%s path=%s unsent_bytes=%d stalled_seconds=%.1f",
                    channel.addr[0] if channel.addr else "-", requests[0].path if requests else "-",
                    channel.total_outbufs_len, stalled_seconds)
        channel.will_close = True
        try:
            channel.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT_ON_CLOSE)
            channel.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone: waitress closes it on its next send


def _kernel_queued(sock: socket.socket) -> int | None:
    """Bytes in the socket's send queue not yet acknowledged by the client (Linux; None elsewhere)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError):
        return None


def run_api(settings: Settings) -> None:
    """One API process on IP:PORT (API_PROCESSES > 1: api/supervisor.py, started by the CLI)."""
    serve(settings)


def serve(settings: Settings, sockets: list[socket.socket] | None = None, metrics_dir: str | None = None) -> None:
    """Build the app (its Redis and Cassandra clients: after any fork) and serve until the process ends."""
    app, store = build_app(settings, metrics_dir)
    tune_for_service()
    server = create_server(app, settings, sockets=sockets)
    log.info("event=api_listening ip=%s port=%d threads=%d", settings.ip, settings.port, settings.api_threads)
    try:
        server.run()
    finally:
        store.close()
