"""Opaque paging cursors: where the next page of a query starts, and in which direction.

A cursor is URL-safe base64 of a small msgpack array, so it survives a query string unescaped.
It names a position in the global line order (log_search.Position), not a row count, so lines
landing meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from common.log_store import Direction, Position
from common.schema import LINE_ID_MAX, LINE_ID_MIN
from common.timestamps import MAX_NS, MIN_NS

_VERSION = 1
_MAX_CURSOR_CHARS = 2048


class CursorError(ValueError):
    """The text is not a cursor this server issued."""


def encode_cursor(after: Position, direction: Direction) -> str:
    packed = msgspec.msgpack.encode([_VERSION, direction.backward, *after])
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def decode_cursor(text: str) -> tuple[Position, bool]:
    """(position, direction) from a cursor; CursorError when it is not one."""
    if len(text) > _MAX_CURSOR_CHARS:
        raise CursorError("cursor too long")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, backward, ts_ns, pod_name, container_name, line_id = msgspec.msgpack.decode(packed)
    except (binascii.Error, ValueError, TypeError, msgspec.DecodeError):
        raise CursorError("not a cursor returned by this server (pass next_cursor back unchanged)") from None
    if (
        version != _VERSION
        or not isinstance(backward, bool)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in (ts_ns, line_id))
        or not all(isinstance(v, str) for v in (pod_name, container_name))
    ):
        raise CursorError("not a cursor returned by this server (pass next_cursor back unchanged)")
    # A position outside the columns' ranges was never issued, and would reach Cassandra as a
    # bound no bigint holds.
    if not (MIN_NS <= ts_ns <= MAX_NS and LINE_ID_MIN <= line_id <= LINE_ID_MAX):
        raise CursorError("not a cursor returned by this server: its position is out of range "
                          "(pass next_cursor back unchanged)")
    return Position(ts_ns, pod_name, container_name, line_id), Direction.BACKWARD if backward else Direction.FORWARD
