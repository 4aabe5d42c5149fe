"""The reads' bounded share of waitress's threads.

Every read (GET /query in any output, /tail, /namespaces, /pods, /containers, Loki's reads) holds an API thread
while it is served, and a streamed one for as long as its client takes to read it. So at most half
of API_THREADS serve reads at once, and the other half always remain for ingest, /ready and
/metrics. One read more gets 429 with Retry-After. A streamed answer keeps its slot until waitress
closes its body: after the last chunk, when the client went away, or when the server cut a client
that stopped reading (api/server.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator

import falcon

from common.settings import Settings


def read_share(settings: Settings) -> int:
    """Threads reads may hold at once: half of API_THREADS (which is at least 2)."""
    return max(1, settings.api_threads // 2)


class ReadSlots:
    """Falcon middleware: a GET (or POST: Loki's queries) on `paths` takes a slot or gets 429 + Retry-After."""

    def __init__(self, settings: Settings, paths: Collection[str]):
        self.limit = read_share(settings)
        self._paths = frozenset(paths)
        self._threads = settings.api_threads
        self._retry_after = settings.retry_after_seconds
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def _take(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def _give_back(self) -> None:
        with self._lock:
            self._open -= 1

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if req.method not in ("GET", "POST") or req.uri_template not in self._paths:
            return
        if not self._take():
            raise falcon.HTTPTooManyRequests(
                title="Too many reads",
                description=f"{self.limit} reads (GET {', '.join(sorted(self._paths))}) are being served, the most "
                            f"this server serves at once (half of API_THREADS={self._threads}, so that ingest "
                            f"always keeps threads); retry later",
                retry_after=self._retry_after,
            )
        req.context.read_slot = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not getattr(req.context, "read_slot", False):
            return
        req.context.read_slot = False
        if resp.stream is None:
            # A whole document (JSON) is written by this same thread after the responder returns,
            # and a client that does not read holds it just as long as a stream: it keeps the slot.
            body = resp.render_body()
            if not body:
                self._give_back()
                return
            resp.text = resp.data = resp.media = None  # else Falcon renders them, not the stream
            resp.content_length = len(body)
            resp.stream = [body]
        resp.stream = SlotBody(resp.stream, self._give_back)


class SlotBody:
    """A streamed body that gives its slot back once, however it ends: waitress calls close()
    after the last chunk, and when the connection is gone. It also gives it back as soon as its
    chunks run out or fail: a WSGI client that reads a body to its end and never closes it (werkzeug's
    test client, which schemathesis drives) must not keep the slot for good."""

    def __init__(self, chunks: Iterable[bytes], release: Callable[[], None]):
        self._source = chunks
        self._chunks: Iterator[bytes] = iter(chunks)
        self._release = release
        self._closed = False

    def __iter__(self) -> SlotBody:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        finally:
            self._release()
