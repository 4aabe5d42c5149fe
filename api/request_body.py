"""A request body read within MAX_BODY_BYTES, inflated when it is gzip: the same bounds for every
ingest front (POST /write, and the Loki push)."""

from __future__ import annotations

import zlib

import falcon

GZIP_ENCODINGS = ("gzip", "x-gzip")


def read_body(req: falcon.Request, limit: int, route: str) -> bytes:
    """The body, at most `limit` bytes as sent and as inflated; 413 past it, 400 for broken gzip."""
    too_large = falcon.HTTPContentTooLarge(
        title="Body too large",
        description=f"a {route} body may hold at most {limit} bytes (MAX_BODY_BYTES); send smaller batches",
    )
    if req.content_length is not None and req.content_length > limit:
        raise too_large
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    if (req.get_header("Content-Encoding") or "").strip().lower() in GZIP_ENCODINGS:
        return gunzip(body, limit)
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, every member of it (RFC 1952 allows several back to back), stopping at
    `limit` bytes in all (a gzip bomb gets 413)."""
    inflated: list[bytes] = []
    room, rest = limit + 1, body
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(rest, room)
            inflated.append(data)
            room -= len(data)
            if room <= 0:
                raise falcon.HTTPContentTooLarge(
                    title="Body too large",
                    description=f"the gzip body inflates past {limit} bytes (MAX_BODY_BYTES); send smaller batches",
                )
            if not inflater.eof:
                raise falcon.HTTPBadRequest(title="Invalid body", description="truncated gzip body")
            rest = inflater.unused_data
            if not rest.strip(b"\0"):  # trailing zero padding after the last member is allowed
                return b"".join(inflated)
    except zlib.error as error:
        raise falcon.HTTPBadRequest(title="Invalid body", description=f"not valid gzip: {error}") from None
