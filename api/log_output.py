"""Lines -> response bodies: the seed's JSON document, NDJSON and kubectl-style text, the last two
streamed chunk by chunk so a long answer needs bounded memory."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import msgspec

from common.cursor import encode_cursor
from common.log_search import LogLine, PageEnd, Scope
from common.store import StoreUnavailable
from common.timestamps import format_rfc3339_ns

MEDIA_NDJSON = "application/x-ndjson"
MEDIA_TEXT = "text/plain; charset=utf-8"
OUTPUTS = {"application/json": "json", MEDIA_NDJSON: "ndjson", "text/plain": "text"}
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


def cut_explanation(end: PageEnd, settings_hint: dict[str, str]) -> str:
    return {
        "limit": "more lines follow: pass next_cursor as cursor= for the next page",
        "max_rows": f"more lines than one answer may hold ({settings_hint['max_rows']}); "
                    "pass next_cursor as cursor= for the next page",
        "max_scan": f"read {settings_hint['max_scan']} stored lines without finishing (QUERY_MAX_SCAN_ROWS); "
                    "pass next_cursor as cursor= to go on, or narrow the range or filters",
        "timeout": f"the query ran out of time ({settings_hint['timeout']}); pass next_cursor as cursor= to go on",
    }[end.reason or "limit"]


def trailer(end: PageEnd, backward: bool, hints: dict[str, str]) -> dict:
    """The paging fields of a cut answer: next_cursor always; truncated + detail when the server,
    not the client's limit, cut it (the seed-style request must never be silently partial)."""
    if not end.cut:
        return {}
    fields: dict = {"next_cursor": encode_cursor(end.next_after, backward)}  # type: ignore[arg-type]
    if end.reason != "limit":
        fields["truncated"] = True
        fields["detail"] = cut_explanation(end, hints)
    return fields


def json_document(lines: Iterable[LogLine], end: PageEnd, scope: Scope, backward: bool,
                  hints: dict[str, str]) -> bytes:
    build = row_builder(scope)
    document: dict = {"log_rows": [build(line) for line in lines]}
    document.update(trailer(end, backward, hints))
    return _json.encode(document)


def ndjson_chunks(lines: Iterable[LogLine], end: PageEnd, scope: Scope, backward: bool,
                  hints: dict[str, str]) -> Iterator[bytes]:
    """One JSON row per line; a cut answer ends with a {"next_cursor", ...} line; a store failure
    after the first chunk ends it with an {"error": {"message", "detail"}} line."""
    build = row_builder(scope)
    encode = _json.encode

    def encoded() -> Iterator[bytes]:
        for line in lines:
            yield encode(build(line)) + b"\n"
        if end.cut:
            yield encode(trailer(end, backward, hints)) + b"\n"

    return _primed(_chunked(_ending_with_error(encoded(), lambda error: encode(
        {"error": {"message": "Cassandra unavailable", "detail": str(error)}}) + b"\n")))


def text_chunks(lines: Iterable[LogLine], end: PageEnd, scope: Scope, timestamps: bool,
                hints: dict[str, str]) -> Iterator[bytes]:
    """Lines as `kubectl logs` prints them ([pod/container] prefix when several, optional
    timestamps). A cut made by the server, not by `limit`, is said in a last `#` line."""
    prefix_of = _prefix(scope)

    def encoded() -> Iterator[bytes]:
        for line in lines:
            stamp = format_rfc3339_ns(line.ts_ns) + " " if timestamps else ""
            yield f"{prefix_of(line)}{stamp}{line.log}\n".encode()
        if end.cut and end.reason != "limit":
            yield f"# truncated: {cut_explanation(end, hints)}\n".encode()

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
