"""GET /loki/api/v1/tail: Loki's live tail over WebSocket (Grafana Live, `logcli query --tail`), on
the API's own host and port. The tail engine of GET /tail (api/tail.py: TailFollower and `follow`)
with a LogQL selection as what it reads (common/loki_tail.py); this module is only its front.

Parameters, as Loki's: `query` (a log query: a selector and any pipeline; a metric query is 400),
`start` (ns, seconds or RFC 3339; default an hour ago, at most QUERY_MAX_RANGE_SECONDS ago),
`limit` (default 100, at most QUERY_MAX_ROWS: how many of the lines already stored since `start`
come first, the newest ones, oldest first) and `delay_for` (0 to 5 seconds: how far behind now each
poll reads, for lines that land late).

Everything that can be refused is refused before the upgrade, as HTTP with {"message", "detail"}:
a bad parameter or LogQL query 400, a request that is not a WebSocket upgrade 400, no or a wrong
token 401 and a wrong X-Scope-OrgID 401/403 (api/auth.py, api/tenancy.py), no read slot free 429
with Retry-After (api/read_slots.py), Cassandra unreachable 503. Then 101, and the session:

- a text message per poll that found lines: {"streams": [...]} (common.loki_tail.frame), at most
  MAX_LINES_PER_FRAME lines each; every line once, in the global order;
- a ping when nothing else was sent for HEARTBEAT_SECONDS (the client's pongs are not required:
  a client that went away is noticed when its connection closes, and a client that stops reading
  is cut after READER_STALL_SECONDS by api/server.py, as any streamed answer);
- the client's pings are answered; its close frame is answered and ends the tail;
- after TAIL_MAX_SECONDS, a close frame 1000 with the reason (the client reconnects with start=);
- a selection that can no longer be answered exactly mid-tail (api/loki/read.py refuses it with
  400), or an unexpected error: a close frame 1011 with the reason, as Loki closes on errors;
- Cassandra going away mid-tail: the tail waits and resumes, as GET /tail does (Loki's frames
  have no place for a notice); the server log says so.
The tail holds its read slot and its thread until the session ends.
"""

from __future__ import annotations

import itertools
import logging

import falcon

from api.loki import params as p
from api.loki.read import LokiResource
from api.tail import HEARTBEAT_SECONDS, MAX_ROWS_PER_POLL, Clock, Control, Signal, SystemClock, TailFollower, follow
from api.websocket import INTERNAL_ERROR, NORMAL, WebSocket, is_upgrade_request
from common.errors import ParameterError
from common.log_store import LogStore
from common.logql import LogQLError, LogQuery, parse
from common.loki_tail import MAX_DELAY_FOR_SECONDS, Entry, Rendered, SelectionReader, frame, history_start
from common.settings import Settings
from common.timestamps import NS_PER_SECOND

log = logging.getLogger(__name__)

MAX_LINES_PER_FRAME = 1000
DEFAULT_START_SECONDS = 3600  # Loki's


def tail_start(params: p.Params, now_ns: int, max_range_seconds: int) -> int:
    text = p.single(params, "start")
    if text is None:
        return now_ns - min(DEFAULT_START_SECONDS, max_range_seconds) * NS_PER_SECOND
    start_ns = p.loki_time(text, "start")
    if now_ns - start_ns > max_range_seconds * NS_PER_SECOND:
        raise ParameterError("start", f"more than {max_range_seconds} seconds ago (QUERY_MAX_RANGE_SECONDS): give "
                                      "a later start, or read older lines with query_range")
    return start_ns


def delay_for(params: p.Params) -> int:
    text = p.single(params, "delay_for")
    if text is None:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise ParameterError("delay_for", f"expected whole seconds, got {text!r}")
    if int(text) > MAX_DELAY_FOR_SECONDS:
        raise ParameterError("delay_for", f"delay_for can't be greater than {MAX_DELAY_FOR_SECONDS}")
    return int(text)


class _SessionClock:
    """The engine's clock, whose sleep is the WebSocket's wait: the client is heard while the tail waits."""

    def __init__(self, clock: Clock, socket: WebSocket):
        self._clock = clock
        self._socket = socket
        self.monotonic = clock.monotonic
        self.now_ns = clock.now_ns

    def sleep(self, seconds: float) -> None:
        self._socket.wait(seconds)


class LokiTailResource(LokiResource):
    def __init__(self, settings: Settings, store: LogStore, *, clock: Clock | None = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, max_rows_per_poll: int = MAX_ROWS_PER_POLL):
        super().__init__(settings, store)
        self._clock = clock or SystemClock()
        self._heartbeat_seconds = heartbeat_seconds
        self._max_rows_per_poll = max_rows_per_poll

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        params = p.request_params(req)
        query = parse(p.required(params, "query"))
        if not isinstance(query, LogQuery):
            raise LogQLError("metric query", "tail takes a log query (a stream selector and its pipeline), not a "
                                             "metric query")
        now_ns = self._clock.now_ns()
        limit = p.limit(params, s.query_max_rows)
        start_ns = tail_start(params, now_ns, s.query_max_range_seconds)
        delay = delay_for(params)
        if not is_upgrade_request(req):
            raise falcon.HTTPBadRequest(title="Not a WebSocket request",
                                        description="GET /loki/api/v1/tail is a WebSocket: send Upgrade: websocket")
        reader = SelectionReader(self._store, query, self._names, s.cassandra_bucket_seconds, delay)
        # The history and the first poll before the 101: Cassandra unreachable now -> 503 (api/errors.py).
        after = history_start(query, reader, start_ns, now_ns - delay * NS_PER_SECOND, limit, self._caps())
        follower = TailFollower(
            reader, None, start_ns=start_ns, lookback_seconds=s.tail_lookback_seconds,
            max_rows=self._max_rows_per_poll, timeout_seconds=s.query_timeout_seconds,
            monotonic=self._clock.monotonic, after=after,
        )
        first_poll = follower.poll(self._clock.now_ns())
        first = next(first_poll, None)
        socket = WebSocket.accept(req)
        resp.status = falcon.HTTP_101
        log.info("event=loki_tail_start query=%r start=%d limit=%d delay_for=%d", p.single(params, "query"),
                 start_ns, limit, delay)
        events = follow(follower, itertools.chain(() if first is None else (first,), first_poll),
                        _SessionClock(self._clock, socket), s, self._heartbeat_seconds, lambda: socket.closed)
        run_session(socket, events, Rendered(query))


def run_session(socket: WebSocket, events, render: Rendered) -> None:
    """Write the engine's events to the WebSocket until the tail ends or the client leaves."""
    pending: list[Entry] = []

    def flush() -> None:
        if pending:
            socket.send_text(frame(pending))
            pending.clear()

    try:
        for event in events:
            if socket.closed:
                break
            if event is Signal.POLLED:
                flush()
            elif event is Signal.HEARTBEAT:
                socket.ping()
            elif isinstance(event, Control):
                if event.kind == "end":
                    socket.close(NORMAL, f"{event.body['reason']}: {event.body['detail']}")
            else:
                entry = render(event)
                if entry is not None:
                    pending.append(entry)
                    if len(pending) >= MAX_LINES_PER_FRAME:
                        flush()
    except ParameterError as error:
        socket.close(INTERNAL_ERROR, error.detail)
    except Exception:
        log.exception("event=loki_tail_error")
        socket.close(INTERNAL_ERROR, "internal error; see the server log")
    finally:
        events.close()
    log.info("event=loki_tail_end")
