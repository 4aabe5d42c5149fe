"""A server WebSocket over an upgraded waitress connection (api/upgrade.py): wsproto (sans-I/O)
checks the handshake and makes every frame; this module only moves its bytes.

- Handshake: the request waitress parsed is given to wsproto as the bytes it was; a request that is
  not a valid WebSocket upgrade (no `Upgrade: websocket`, no key, another version) is refused with
  400 before anything is written, as Loki refuses it. wsproto writes the 101.
- Out: text messages, pings (`ping`), and one close frame with a code and a reason (`close`).
- In (read only while the app waits, `wait`): a ping gets its pong; a close frame gets the answering
  close frame and ends the session; text and binary messages are ignored.
- A connection that is gone (the client hung up without a close frame, the server's stall cut,
  server shutdown) ends the session too: `closed` is then true, and writes are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import falcon
from waitress.channel import ClientDisconnected
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage
from wsproto.utilities import RemoteProtocolError

from api.upgrade import UPGRADE_KEY, Upgraded

log = logging.getLogger(__name__)

# Close codes (RFC 6455, 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


def is_upgrade_request(req: falcon.Request) -> bool:
    return (req.get_header("Upgrade") or "").lower() == "websocket"


def request_head(environ: Mapping[str, str]) -> bytes:
    """The request line and headers as the client sent them (near enough for the handshake)."""
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    if "?" not in target and environ.get("QUERY_STRING"):
        target += "?" + environ["QUERY_STRING"]
    lines = [f"{environ.get('REQUEST_METHOD', 'GET')} {target} HTTP/1.1"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append(f"{key[5:].replace('_', '-').title()}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


class WebSocket:
    def __init__(self, connection: Upgraded, ws: WSConnection):
        self._connection = connection
        self._ws = ws
        self._gone = False

    @classmethod
    def accept(cls, req: falcon.Request) -> WebSocket:
        """Answer the handshake with 101: the connection is a WebSocket from here on. Raises
        falcon.HTTPBadRequest (nothing written) for a request that is not a valid upgrade."""
        upgrade: Callable[[bytes], Upgraded] | None = req.env.get(UPGRADE_KEY)
        if upgrade is None:
            raise falcon.HTTPBadRequest(
                title="WebSocket unavailable",
                description="this server was not started with upgrades (api/server.py create_server)")
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.receive_data(request_head(req.env))
            requests = [event for event in ws.events() if isinstance(event, Request)]
        except RemoteProtocolError as error:
            raise falcon.HTTPBadRequest(title="Bad WebSocket handshake", description=str(error)) from None
        if not requests:
            raise falcon.HTTPBadRequest(title="Bad WebSocket handshake", description="not a WebSocket upgrade request")
        return cls(upgrade(ws.send(AcceptConnection())), ws)

    @property
    def closed(self) -> bool:
        """The session is over: a close frame went either way, or the connection is gone."""
        return self._gone or self._ws.state is not ConnectionState.OPEN

    def send_text(self, text: str) -> None:
        self._send(TextMessage(data=text))

    def ping(self) -> None:
        self._send(Ping())

    def close(self, code: int, reason: str = "") -> None:
        """Send the close frame (once); the connection closes when the app returns."""
        if self._gone or self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return
        # A close frame's payload is at most 125 bytes: the code and at most 123 of reason.
        self._send(CloseConnection(code=code, reason=reason.encode()[:123].decode(errors="ignore")))

    def wait(self, seconds: float) -> None:
        """Wait up to `seconds`, answering what the client sends; returns early when it closes."""
        deadline = time.monotonic() + seconds
        while not self.closed:
            data = self._connection.read(max(0.0, deadline - time.monotonic()))
            if data is None:
                self._gone = True
                return
            if data:
                self._receive(data)
            if time.monotonic() >= deadline:
                return

    def _receive(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, Ping):
                self._send(event.response())
            elif isinstance(event, CloseConnection):
                # The client's close (answered), the answer to ours, or wsproto's for a frame it
                # could not parse (1002 and the like: answered with the same code).
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._send(event.response())
                elif self._ws.state is ConnectionState.OPEN:
                    self.close(event.code, event.reason or "")
                log.info("event=websocket_closed_by_client code=%s", event.code)
                self._gone = True

    def _send(self, event) -> None:
        if self._gone:
            return
        try:
            self._connection.write(self._ws.send(event))
        except ClientDisconnected:
            self._gone = True
