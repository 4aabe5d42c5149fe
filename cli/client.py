"""A tiny HTTP client for the log server (standard library only): POST /write, GET /query and GET /tail."""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = "KUBE_INSIGHT_SERVER"
TOKEN_ENV = "KUBE_INSIGHT_TOKEN"
# Answers after which the same batch may succeed later (as fluent-bit sees them).
RETRYABLE_STATUSES = frozenset({408, 429, 503})
# The server sends a heartbeat every 10 s while a tail is quiet: this long without a byte, it is gone.
TAIL_READ_TIMEOUT = 35.0


class ServerError(Exception):
    """The server answered with an error status; message and detail come from its JSON body."""

    def __init__(self, status: int, message: str, detail: str = "", retry_after: float | None = None):
        super().__init__(f"HTTP {status} {message}" + (f": {detail}" if detail else ""))
        self.status = status
        self.message = message
        self.detail = detail
        self.retry_after = retry_after


class ServerUnreachable(Exception):
    """No HTTP answer at all: connection refused or reset, DNS failure, timeout."""


def server_url(flag: str | None, environ: Mapping[str, str]) -> str:
    """The server to talk to: the flag, else KUBE_INSIGHT_SERVER, else the local default."""
    url = (flag or environ.get(SERVER_ENV) or DEFAULT_SERVER).strip().rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"invalid server URL {url!r}: expected http://host:port")
    return url


def add_server_argument(parser) -> None:
    parser.add_argument(
        "--server", metavar="URL", default=None,
        help=f"log server base URL (env {SERVER_ENV}; default {DEFAULT_SERVER}); the flag wins",
    )
    parser.add_argument(
        "--token", metavar="TOKEN", default=None,
        help=f"bearer token the server requires (INGEST_TOKEN or QUERY_TOKEN; env {TOKEN_ENV}, "
             "which is safer: a flag shows in the process list)",
    )


def token_of(flag: str | None, environ: Mapping[str, str]) -> str | None:
    return flag or environ.get(TOKEN_ENV) or None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LogServerClient:
    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        first_backoff: float = 0.5,
        max_delay: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[int, float, Exception], None] | None = None,
        token: str | None = None,
    ):
        self._server = server.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._first_backoff = first_backoff
        self._max_delay = max_delay
        self._sleep = sleep
        self._on_retry = on_retry

    def post_batch(self, records: Sequence[object]) -> dict:
        """POST one batch to /write, retrying on 408/429/503 and connection errors with back-off.

        Re-sending a batch is safe: the server stores a re-sent line over the same row.
        Returns the server's summary, or raises the last ServerError / ServerUnreachable.
        """
        body = json.dumps(records, ensure_ascii=False).encode()
        for attempt in range(1, self._attempts + 1):
            try:
                return self._request("POST", "/write", body)
            except ServerError as error:
                if error.status not in RETRYABLE_STATUSES or attempt == self._attempts:
                    raise
                delay = error.retry_after if error.retry_after is not None else self._backoff(attempt)
                failure: Exception = error
            except ServerUnreachable as error:
                if attempt == self._attempts:
                    raise
                delay, failure = self._backoff(attempt), error
            delay = min(delay, self._max_delay)
            if self._on_retry:
                self._on_retry(attempt, delay, failure)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def query(self, namespace: str, pod_name: str, container_name: str | None, start_time: str,
              end_time: str | None = None, **extra: str) -> dict:
        """GET /query once; end_time None lets the server use its own clock for 'now'; container_name
        None asks for every container of the pod (rows then carry "container"); `extra` holds other
        parameters (limit, direction, cursor, ...)."""
        params = {"namespace": namespace, "pod_name": pod_name, "start_time": start_time}
        if container_name:
            params["container_name"] = container_name
        if end_time:
            params["end_time"] = end_time
        params.update(extra)
        return self._request("GET", "/query?" + urllib.parse.urlencode(params))

    def open_tail(self, namespace: str, pod_name: str, container_name: str | None, since: str, *,
                  read_timeout: float = TAIL_READ_TIMEOUT) -> TailStream:
        """GET /tail from `since` (inclusive), as NDJSON. Raises ServerError for an error status and
        ServerUnreachable when there is no answer; iterate the stream for what follows."""
        params = {"namespace": namespace, "pod_name": pod_name, "since": since}
        if container_name:
            params["container_name"] = container_name
        request = urllib.request.Request(self._server + "/tail?" + urllib.parse.urlencode(params),
                                         headers={"Accept": "application/x-ndjson", **self._auth})
        try:
            response = urllib.request.urlopen(request, timeout=read_timeout)
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise ServerUnreachable(f"{self._server}: {reason}") from None
        return TailStream(response, self._server)

    def _backoff(self, attempt: int) -> float:
        return self._first_backoff * 2 ** (attempt - 1)

    def _request(self, method: str, path: str, body: bytes | None = None) -> dict:
        request = urllib.request.Request(self._server + path, data=body, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json", **self._auth})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise ServerUnreachable(f"{self._server}: {reason}") from None
        except json.JSONDecodeError as error:
            raise ServerError(200, "answer is not JSON", str(error)) from None


class TailStream:
    """An open GET /tail. Iterating yields each object the server sends: rows ({"time", "log"
    [, "container"]}), {"error": {...}} while Cassandra is away, and a last {"end": {...}} when the
    server ends the tail; heartbeats are skipped. Iteration stops when the body ends; a connection
    that breaks, or stays silent past the read timeout, raises ServerUnreachable."""

    def __init__(self, response, server: str):
        self._response = response
        self._server = server

    def __iter__(self) -> Iterator[dict]:
        while True:
            try:
                raw = self._response.readline()
            except (OSError, http.client.HTTPException) as error:
                raise ServerUnreachable(f"{self._server}: connection lost: {error or type(error).__name__}") from None
            if not raw:
                return
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except ValueError:
                raise ServerUnreachable(f"{self._server}: the tail sent a line that is not JSON: {raw[:200]!r}") from None

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> TailStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _server_error(error: urllib.error.HTTPError) -> ServerError:
    retry_after = parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
    try:
        text = error.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        text = ""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and "message" in document:
        return ServerError(error.code, str(document["message"]), str(document.get("detail") or ""), retry_after)
    return ServerError(error.code, error.reason or "error", text.strip()[:500], retry_after)
