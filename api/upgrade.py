"""HTTP upgrades (WebSocket) on waitress's own connections, on the API's host and port.

waitress has no upgrade of its own, and does not hand the socket to the app: a connection belongs to
its main loop (which reads it and sends what a request's thread queued with `write_soon`). So this
module gives the app a way to take the connection over *through* waitress rather than around it:
`create_server` (api/server.py) makes every listener use UpgradableChannel, and a request's WSGI
environ then has UPGRADE_KEY, a function `upgrade(head) -> Upgraded`.

After the app has called it:
- The head (the 101 answer, made by the WebSocket library) is queued as is, and everything the app
  writes goes out through the same `write_soon`: waitress's high-water mark holds a fast writer
  back, and the cut of api/server.py (READER_STALL_SECONDS) frees a client that stopped reading,
  exactly as for a streamed HTTP answer (the blocked write raises ClientDisconnected).
- Bytes the main loop reads on the connection are no longer parsed as HTTP: they go to
  `Upgraded.read`, which the request's thread calls (the client's frames: pings, close).
- waitress writes nothing of its own any more (its status line and headers would corrupt the
  stream), and closes the connection once the app has returned and the last bytes are sent.
- When the connection is gone (client hung up, the stall cut, server shutdown), `read` returns None
  and a write raises waitress's ClientDisconnected.

A request thread that upgraded keeps its thread (and its read slot, api/read_slots.py) until the
app returns.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from waitress.channel import HTTPChannel
from waitress.task import WSGITask

UPGRADE_KEY = "kube_insight.upgrade"


class Upgraded:
    """An upgraded connection as the request's thread sees it."""

    def __init__(self, channel: HTTPChannel):
        self._channel = channel
        self._received: deque[bytes] = deque()
        self._ended = False
        self._arrived = threading.Condition()

    # --- the main loop's side ---

    def feed(self, data: bytes | None) -> None:
        """Bytes read from the client; None: the connection is gone."""
        with self._arrived:
            if data is None:
                self._ended = True
            else:
                self._received.append(data)
            self._arrived.notify_all()

    # --- the request thread's side ---

    def read(self, timeout: float) -> bytes | None:
        """What the client sent since the last read, waiting at most `timeout` seconds for
        something (b"" when nothing came); None once the connection is gone."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not self._received and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._arrived.wait(left)
            if self._received:
                data = b"".join(self._received)
                self._received.clear()
                return data
            return None

    def write(self, data: bytes) -> None:
        """Queue bytes for the client and wake the main loop to send them now (waitress would
        otherwise wait for its next pass: up to a second for a small frame). Blocks while the
        connection has more than outbuf_high_watermark bytes unsent; raises ClientDisconnected
        once it is gone."""
        self._channel.write_soon(data)
        self._channel.server.pull_trigger()

    @property
    def connected(self) -> bool:
        return self._channel.connected


class UpgradableTask(WSGITask):
    upgraded = False

    def get_environment(self):
        environ = super().get_environment()
        environ[UPGRADE_KEY] = self._upgrade
        return environ

    def _upgrade(self, head: bytes) -> Upgraded:
        channel = self.channel
        upgraded = Upgraded(channel)
        self.upgraded = True
        self.close_on_finish = True  # the connection ends with the app: no HTTP request follows
        channel.upgraded = upgraded  # set before the head goes out: the client sends nothing until it has it
        upgraded.write(head)
        return upgraded

    def write(self, data: bytes) -> None:
        if not self.upgraded:
            super().write(data)


class UpgradableChannel(HTTPChannel):
    task_class = UpgradableTask
    upgraded: Upgraded | None = None

    def received(self, data: bytes) -> bool:
        if self.upgraded is not None:
            if data:
                self.upgraded.feed(data)
            return bool(data)
        return super().received(data)

    def readable(self) -> bool:
        if self.upgraded is not None:
            # Read while the app runs, even with bytes unsent: the client's close and pings.
            return not (self.will_close or self.close_when_flushed)
        return super().readable()

    def handle_close(self) -> None:
        super().handle_close()
        if self.upgraded is not None:
            self.upgraded.feed(None)
