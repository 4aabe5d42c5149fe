"""GET /tail: a pod's (or one container's) lines as they are stored, like `kubectl logs -f`.

Parameters: namespace and pod_name (required), container_name, since (RFC 3339), and the filters of
GET /query (contains, regex, stream). Bad ones get 400 {"message", "detail"}.

Where it starts: at `since` when given (the stored lines from there come first, oldest first, then
the new ones), else at the server's now. A `since` more than QUERY_MAX_RANGE_SECONDS ago is 400.

How it follows: it polls the store every TAIL_POLL_SECONDS, reading up to the server's now. Lines
land late (queue lag, several fluent-bit senders), so each poll re-reads from TAIL_LOOKBACK_SECONDS
before the newest line seen so far and skips the lines already sent: a line landing up to that much
behind the newest one still shows, once; an older one never does. Within a poll lines come in
GET /query's order; a late line comes after newer ones already sent. Only the positions of sent
lines inside the lookback window are remembered, so memory stays bounded. One poll reads at most
MAX_ROWS_PER_POLL stored lines; a poll cut there is followed at once by the next one, from where it
stopped, so a catch-up from an old `since` goes at full speed in bounded steps.

Output, by Accept:
- application/x-ndjson (the default): one row per line, {"time", "log"} plus "container" for a
  whole pod (GET /query's rows). Heartbeat: an empty line. Control lines: {"error": {"message",
  "detail"}} and, last, {"end": {"reason", "detail"}}.
- text/event-stream: `event: line` / `data: <row>` per line; heartbeat `: keepalive`;
  `event: error` and `event: end` with the same objects as data.

Heartbeat: sent while nothing else is, every HEARTBEAT_SECONDS, and at once when the first poll
finds nothing (so the client gets the status line and headers right away). A client that went away
is noticed on a write: waitress raises inside it and closes the body, and since the poll and the
sleep run only between writes, closing the body ends the polling. Between writes the loop also asks
waitress's `waitress.client_disconnected` (true once waitress has closed the connection; it learns
of a silent disconnect only with channel_request_lookahead > 0) and stops when it says so.

Ending: after TAIL_MAX_SECONDS the body ends with the `end` line/event ({"reason": "max_duration"});
a client that wants more reconnects with since= the newest line's time. A body that ends without
`end` was cut: the connection was lost.

Cassandra: unreachable when the tail starts -> 503 with Retry-After (nothing was sent yet).
Unreachable later -> one `error` line/event per outage (the 200 is long gone), then polls back off
(TAIL_POLL_SECONDS doubling, at most MAX_BACKOFF_SECONDS) with heartbeats in between, and lines
resume when it answers. An outage does not end the tail: waiting for lines is its job, and the
client can leave whenever it likes.

Capacity: each open tail holds one of waitress's API_THREADS for up to TAIL_MAX_SECONDS; it counts
against the reads' share of them (api/read_slots.py), which gives its slot back when waitress
closes the body (closing the generator also ends the polling).
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol, Union

import falcon
import msgspec

from api.log_output import CHUNK_BYTES, MEDIA_NDJSON, Row, row_builder
from api.query_params import parse_line_filter, parse_scope, parse_time, single_values
from common.errors import ParameterError
from common.log_search import CutReason, PageEnd, Scope, paginate, read_lines
from common.log_store import LogLine, LogStore, Position, StoreUnavailable
from common.settings import Settings
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns

log = logging.getLogger(__name__)

MEDIA_SSE = "text/event-stream"
HEARTBEAT_SECONDS = 10.0
MAX_ROWS_PER_POLL = 5000
MAX_BACKOFF_SECONDS = 30.0
_json = msgspec.json.Encoder()


class Clock(Protocol):
    """Time as the follow loop sees it; tests pass one that advances only when slept on."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now_ns(self) -> int: ...


class SystemClock:
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)
    now_ns = staticmethod(now_ns)


# --- which lines to send ---


class Followed(Protocol):
    """What the follower reads: a stored line (LogLine), or one carrying more (its labels)."""

    @property
    def ts_ns(self) -> int: ...

    @property
    def position(self) -> Position: ...


# (start_ns, end_ns, after, page_size) -> the lines with start_ns <= ts <= end_ns strictly after
# `after`, oldest first, read lazily.
Reader = Callable[[int, int, "Position | None", int], Iterator[Followed]]


def scope_reader(store: LogStore, scope: Scope, bucket_seconds: int) -> Reader:
    """The lines of one scope (a container, a pod), as GET /tail follows them."""

    def read(start_ns: int, end_ns: int, after: Position | None, page_size: int) -> Iterator[LogLine]:
        return read_lines(store, scope, start_ns, end_ns, bucket_seconds=bucket_seconds, after=after,
                          page_size=page_size)

    return read


class TailFollower:
    """The lines to send, poll after poll: each once, late ones within the lookback too. `read`
    says which lines (one scope's for GET /tail, a LogQL selection's for Loki's tail); `after`,
    when given, is where the first poll starts: strictly after that line."""

    def __init__(
        self, read: Reader, keep: Callable[[Followed], bool] | None, *, start_ns: int,
        lookback_seconds: int, max_rows: int, timeout_seconds: float,
        monotonic: Callable[[], float] = time.monotonic, after: Position | None = None,
    ):
        self._read = read
        self._keep = keep
        self._start_ns = start_ns
        self._lookback_ns = lookback_seconds * NS_PER_SECOND
        self._max_rows = max_rows
        self._timeout_seconds = timeout_seconds
        self._monotonic = monotonic
        self._newest_ns: int | None = None  # the newest line examined (sent or filtered out)
        self._sent: set[Position] = set()  # sent lines at or after the horizon
        self._resume_after: Position | None = after  # where a cut poll stopped
        self._floor = after  # nothing at or before it is sent, even when re-read within the lookback

    @property
    def behind(self) -> bool:
        """The last poll stopped at its row cap or deadline: the next one goes on from there."""
        return self._resume_after is not None

    @property
    def remembered(self) -> int:
        """Sent positions held to skip them when re-read (those inside the lookback window)."""
        return len(self._sent)

    def horizon_ns(self) -> int:
        """Where the next poll starts reading: the lookback before the newest line seen."""
        if self._newest_ns is None:
            return self._start_ns
        return max(self._start_ns, self._newest_ns - self._lookback_ns)

    def poll(self, now_ns: int) -> Iterator[Followed]:
        """The lines not sent yet with horizon <= ts <= now_ns, in the global order, reading at
        most max_rows stored lines. Lazy: reads the store as it is iterated (StoreUnavailable may
        come from any step; the lines yielded before it count as sent)."""
        end = PageEnd()
        examined = paginate(
            self._read(self.horizon_ns(), now_ns, self._resume_after, min(self._max_rows + 1, MAX_ROWS_PER_POLL)),
            end, limit=self._max_rows, limit_reason=CutReason.MAX_ROWS, max_scan=self._max_rows,
            deadline=self._monotonic() + self._timeout_seconds, clock=self._monotonic,
        )
        keep, sent, floor = self._keep, self._sent, self._floor
        for line in examined:
            if self._newest_ns is None or line.ts_ns > self._newest_ns:
                self._newest_ns = line.ts_ns
            if floor is not None and line.position <= floor:
                continue
            if (keep is None or keep(line)) and line.position not in sent:
                sent.add(line.position)
                yield line
        self._resume_after = end.next_after
        horizon = self.horizon_ns()
        if any(position.ts_ns < horizon for position in sent):
            self._sent = {position for position in sent if position.ts_ns >= horizon}


# --- how lines are written ---


class StreamFormat(NamedTuple):
    media_type: str
    line: Callable[[Row], bytes]
    heartbeat: bytes
    control: Callable[[str, dict], bytes]  # ("error" | "end", object) -> bytes


NDJSON = StreamFormat(
    MEDIA_NDJSON,
    line=lambda row: _json.encode(row) + b"\n",
    heartbeat=b"\n",
    control=lambda kind, body: _json.encode({kind: body}) + b"\n",
)
SSE = StreamFormat(
    MEDIA_SSE,
    line=lambda row: b"event: line\ndata: " + _json.encode(row) + b"\n\n",
    heartbeat=b": keepalive\n\n",
    control=lambda kind, body: b"event: " + kind.encode() + b"\ndata: " + _json.encode(body) + b"\n\n",
)


class Signal(enum.Enum):
    POLLED = "polled"  # a poll's lines have all been given: a front writes what it holds
    HEARTBEAT = "heartbeat"  # nothing was written for heartbeat_seconds (or yet): show the client we are here


class Control(NamedTuple):
    kind: str  # "error" (Cassandra went away; the tail goes on) or "end" (TAIL_MAX_SECONDS)
    body: dict


Event = Union[Followed, Signal, Control]


def follow(
    follower: TailFollower, first_poll: Iterator[Followed], clock: Clock, settings: Settings,
    heartbeat_seconds: float, client_gone: Callable[[], bool],
) -> Iterator[Event]:
    """The tail as events, for a front to write: each poll's lines then POLLED, HEARTBEAT while
    quiet, an `error` Control once per Cassandra outage, and the `end` Control after
    TAIL_MAX_SECONDS (the last event). Sleeps (clock.sleep) only between events, and stops when
    `client_gone` says so; closing the iterator ends the polling."""
    poll_seconds = settings.tail_poll_seconds
    ends_at = clock.monotonic() + settings.tail_max_seconds
    last_write: float | None = None
    failures = 0
    next_poll_at = 0.0
    lines: Iterator[Followed] | None = first_poll
    while True:
        if lines is not None:
            outage: StoreUnavailable | None = None
            sent = False
            try:
                for line in lines:
                    sent = True
                    yield line
            except StoreUnavailable as error:
                outage = error
            yield Signal.POLLED
            if sent:
                last_write = clock.monotonic()
            if outage is None:
                failures = 0
                next_poll_at = clock.monotonic() + (0.0 if follower.behind else poll_seconds)
            else:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, poll_seconds * 2 ** (failures - 1))
                log.warning("event=tail_store_unavailable failures=%d retry_in=%.1fs error=%s", failures, delay, outage)
                if failures == 1:
                    yield Control("error", {
                        "message": "Cassandra unavailable",
                        "detail": f"{outage}; the tail goes on and resumes when Cassandra answers",
                    })
                    last_write = clock.monotonic()
                next_poll_at = clock.monotonic() + delay
            lines = None
        now = clock.monotonic()
        if now >= ends_at:
            yield Control("end", {
                "reason": "max_duration",
                "detail": f"the tail was open TAIL_MAX_SECONDS={settings.tail_max_seconds}; "
                          "reconnect with since= the newest line's time to go on",
            })
            return
        if last_write is None or now - last_write >= heartbeat_seconds:
            yield Signal.HEARTBEAT
            last_write = now
        wake_at = min(next_poll_at, last_write + heartbeat_seconds, ends_at)
        if wake_at > now:
            clock.sleep(wake_at - now)
        if client_gone():
            return
        if clock.monotonic() >= next_poll_at:
            lines = follower.poll(clock.now_ns())


def _stream_body(events: Iterator[Event], fmt: StreamFormat, build_row: Callable[[LogLine], Row]) -> Iterator[bytes]:
    """GET /tail's body: the events in NDJSON or SSE, lines gathered into chunks of about CHUNK_BYTES."""
    buffer = bytearray()
    try:
        for event in events:
            if isinstance(event, Signal):
                if event is Signal.HEARTBEAT:
                    yield fmt.heartbeat
                elif buffer:
                    yield bytes(buffer)
                    buffer.clear()
            elif isinstance(event, Control):
                yield fmt.control(event.kind, event.body)
            else:
                buffer += fmt.line(build_row(event))
                if len(buffer) >= CHUNK_BYTES:  # and the rest when the poll is done
                    yield bytes(buffer)
                    buffer.clear()
    finally:
        events.close()


def _never() -> bool:
    return False


# --- the resource ---


class TailResource:
    def __init__(
        self, settings: Settings, store: LogStore, *, clock: Clock | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS, max_rows_per_poll: int = MAX_ROWS_PER_POLL,
    ):
        self._settings = settings
        self._store = store
        self._clock = clock or SystemClock()
        self._heartbeat_seconds = heartbeat_seconds
        self._max_rows_per_poll = max_rows_per_poll

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        start_ns = self._clock.now_ns()
        params = single_values(req.params)
        scope = parse_scope(params, pod_required=True)
        line_filter = parse_line_filter(params)
        since_ns = parse_time(params, "since")
        if since_ns is not None:
            if start_ns - since_ns > s.query_max_range_seconds * NS_PER_SECOND:
                raise ParameterError(
                    "since", f"more than {s.query_max_range_seconds} seconds ago (QUERY_MAX_RANGE_SECONDS): "
                             f"give a later time, or read older lines with GET /query")
            start_ns = since_ns
        fmt = SSE if req.client_prefers([MEDIA_NDJSON, MEDIA_SSE]) == MEDIA_SSE else NDJSON
        follower = TailFollower(
            scope_reader(self._store, scope, s.cassandra_bucket_seconds), line_filter.predicate(),
            start_ns=start_ns, lookback_seconds=s.tail_lookback_seconds, max_rows=self._max_rows_per_poll, timeout_seconds=s.query_timeout_seconds,
            monotonic=self._clock.monotonic,
        )
        first_poll = follower.poll(self._clock.now_ns())
        first = next(first_poll, None)  # the store's first answer: unreachable now -> 503 (api/errors.py)
        log.info("event=tail_start namespace=%s pod=%s container=%s since=%s",
                 scope.namespace, scope.pod_name, scope.container_name or "-", format_rfc3339_ns(start_ns))
        events = follow(
            follower, itertools.chain(() if first is None else (first,), first_poll), self._clock, s,
            self._heartbeat_seconds, req.env.get("waitress.client_disconnected") or _never,
        )
        chunks = _stream_body(events, fmt, row_builder(scope))
        resp.content_type = fmt.media_type
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # a proxy in front must not hold the lines back
        resp.stream = chunks
