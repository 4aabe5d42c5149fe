"""Lines -> response bodies: the seed's JSON document, NDJSON and kubectl-style text, the last two
streamed chunk by chunk so a long answer needs bounded memory."""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Callable, Iterable, Iterator

import msgspec

from common.cursor import encode_cursor
from common.log_search import CutReason, PageEnd, Scope
from common.log_store import Direction, LogLine, StoreUnavailable
from common.timestamps import format_rfc3339_ns


class Output(enum.Enum):
    JSON = "json"
    NDJSON = "ndjson"
    TEXT = "text"


MEDIA_NDJSON = "application/x-ndjson"
MEDIA_TEXT = "text/plain; charset=utf-8"
OUTPUTS = {"application/json": Output.JSON, MEDIA_NDJSON: Output.NDJSON, "text/plain": Output.TEXT}


@dataclasses.dataclass(frozen=True)
class Caps:
    """The settings behind each server-side cut, as a cut answer names them."""

    max_rows: str  # e.g. "QUERY_MAX_ROWS=100000"
    max_scan: str
    timeout: str
CHUNK_BYTES = 64 * 1024  # a streamed body is written in pieces of about this size
_json = msgspec.json.Encoder()


class Row(msgspec.Struct, omit_defaults=True, gc=False):
    """One line in JSON: the seed's {"time", "log"}, plus whose line it is when the scope spans
    several containers or pods."""

    time: str
    log: str
    container: str | None = None
    pod: str | None = None


def row_builder(scope: Scope) -> Callable[[LogLine], Row]:
    if scope.container_name is not None:
        return lambda line: Row(format_rfc3339_ns(line.ts_ns), line.log)
    if scope.pod_name is not None:
        return lambda line: Row(format_rfc3339_ns(line.ts_ns), line.log, line.container_name)
    return lambda line: Row(format_rfc3339_ns(line.ts_ns), line.log, line.container_name, line.pod_name)


def cut_explanation(end: PageEnd, caps: Caps) -> str:
    return {
        CutReason.LIMIT: "more lines follow: pass next_cursor as cursor= for the next page",
        CutReason.MAX_ROWS: f"more lines than one answer may hold ({caps.max_rows}); "
                            "pass next_cursor as cursor= for the next page",
        CutReason.MAX_SCAN: f"read {caps.max_scan} stored lines without finishing (QUERY_MAX_SCAN_ROWS); "
                            "pass next_cursor as cursor= to go on, or narrow the range or filters",
        CutReason.TIMEOUT: f"the query ran out of time ({caps.timeout}); pass next_cursor as cursor= to go on",
    }[end.reason or CutReason.LIMIT]


def trailer(end: PageEnd, direction: Direction, caps: Caps) -> dict:
    """The paging fields of a cut answer: next_cursor always; truncated + detail when the server,
    not the client's limit, cut it (the seed-style request must never be silently partial)."""
    if not end.cut:
        return {}
    fields: dict = {"next_cursor": encode_cursor(end.next_after, direction)}  # type: ignore[arg-type]
    if end.reason != CutReason.LIMIT:
        fields["truncated"] = True
        fields["detail"] = cut_explanation(end, caps)
    return fields


def json_document(lines: Iterable[LogLine], end: PageEnd, scope: Scope, direction: Direction,
                  caps: Caps) -> bytes:
    build = row_builder(scope)
    document: dict = {"log_rows": [build(line) for line in lines]}
    document.update(trailer(end, direction, caps))
    return _json.encode(document)


def ndjson_chunks(lines: Iterable[LogLine], end: PageEnd, scope: Scope, direction: Direction,
                  caps: Caps) -> Iterator[bytes]:
    """One JSON row per line; a cut answer ends with a {"next_cursor", ...} line; a store failure
    after the first chunk ends it with an {"error": {"message", "detail"}} line."""
    build = row_builder(scope)
    encode = _json.encode

    def encoded() -> Iterator[bytes]:
        for line in lines:
            yield encode(build(line)) + b"\n"
        if end.cut:
            yield encode(trailer(end, direction, caps)) + b"\n"

    return _primed(_chunked(_ending_with_error(encoded(), lambda error: encode(
        {"error": {"message": "Cassandra unavailable", "detail": str(error)}}) + b"\n")))


def text_chunks(lines: Iterable[LogLine], end: PageEnd, scope: Scope, timestamps: bool,
                caps: Caps) -> Iterator[bytes]:
    """Lines as `kubectl logs` prints them ([pod/container] prefix when several, optional
    timestamps). A cut made by the server, not by `limit`, is said in a last `#` line."""
    prefix_of = _prefix(scope)

    def encoded() -> Iterator[bytes]:
        for line in lines:
            stamp = format_rfc3339_ns(line.ts_ns) + " " if timestamps else ""
            yield f"{prefix_of(line)}{stamp}{line.log}\n".encode()
        if end.cut and end.reason != CutReason.LIMIT:
            yield f"# truncated: {cut_explanation(end, caps)}\n".encode()

    return _primed(_chunked(_ending_with_error(
        encoded(), lambda error: f"# error: Cassandra unavailable: {error}\n".encode())))


def _prefix(scope: Scope) -> Callable[[LogLine], str]:
    if scope.container_name is not None:
        return lambda line: ""
    if scope.pod_name is not None:
        return lambda line: f"[{line.container_name}] "
    return lambda line: f"[{line.pod_name}/{line.container_name}] "


def _chunked(pieces: Iterable[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    buffer: list[bytes] = []
    held = 0
    for piece in pieces:
        buffer.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(buffer)
            buffer.clear()
            held = 0
    if buffer:
        yield b"".join(buffer)


def _ending_with_error(pieces: Iterator[bytes], on_error: Callable[[StoreUnavailable], bytes]) -> Iterator[bytes]:
    """A failure before the first piece propagates (the caller answers 503); a later one ends the
    body with `on_error`'s line, since the status has been decided."""
    started = False
    try:
        for piece in pieces:
            started = True
            yield piece
    except StoreUnavailable as error:
        if not started:
            raise
        yield on_error(error)


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Reads the first chunk now, so a store failure before any line becomes a 503."""
    first = next(chunks, None)
    if first is None:
        return iter(())
    return itertools.chain((first,), chunks)
