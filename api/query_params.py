"""Query-string parameters of the read endpoints -> validated values (pure: no I/O).

Every error names the parameter and says what to send instead; the resources turn it into a 400.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from common.cursor import CursorError, decode_cursor
from common.errors import ParameterError
from common.line_filter import LineFilter
from common.log_search import Scope
from common.log_store import Direction, Position
from common.timestamps import NS_PER_SECOND, TimestampError, parse_rfc3339_ns

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no", "")
DEFAULT_DISCOVERY_SECONDS = 86400



@dataclasses.dataclass(frozen=True)
class LogQuery:
    scope: Scope
    start_ns: int
    end_ns: int
    limit: int | None = None
    direction: Direction = Direction.FORWARD
    after: Position | None = None
    line_filter: LineFilter = LineFilter()
    timestamps: bool = False

    # The seed's names, for the single-container case.
    @property
    def namespace(self) -> str:
        return self.scope.namespace

    @property
    def pod_name(self) -> str | None:
        return self.scope.pod_name

    @property
    def container_name(self) -> str | None:
        return self.scope.container_name


def single_values(params: Mapping[str, object]) -> dict[str, str]:
    """Falcon's params with each name given once (a repeated name is ambiguous: 400)."""
    for name, value in params.items():
        if not isinstance(value, str):
            raise ParameterError(name, f"'{name}' given more than once: give it once")
    return dict(params)  # type: ignore[arg-type]


def parse_log_query(params: Mapping[str, str], now_ns: int, max_range_seconds: int) -> LogQuery:
    """GET /query: the seed's parameters (pod_name and container_name now optional) plus limit,
    direction, cursor, filters and timestamps."""
    scope = parse_scope(params)
    _require(params, "start_time")
    start_ns, end_ns = parse_range(params, now_ns, max_range_seconds)
    direction = _direction(params)
    after = None
    if _given(params, "cursor"):
        try:
            after, cursor_direction = decode_cursor(params["cursor"].strip())
        except CursorError as error:
            raise ParameterError("cursor", str(error)) from None
        if cursor_direction is not direction:
            raise ParameterError(
                "cursor", "this cursor continues a query in the other direction: pass the same direction"
            )
    line_filter = parse_line_filter(params)
    return LogQuery(
        scope, start_ns, end_ns, limit=_limit(params), direction=direction, after=after,
        line_filter=line_filter, timestamps=_bool(params, "timestamps"),
    )


def parse_scope(params: Mapping[str, str], *, pod_required: bool = False) -> Scope:
    _require(params, "namespace")
    if pod_required:
        _require(params, "pod_name")
    pod_name = _optional(params, "pod_name")
    container_name = _optional(params, "container_name")
    if container_name is not None and pod_name is None:
        raise ParameterError("pod_name", "container_name needs pod_name: name the container's pod too")
    return Scope(params["namespace"], pod_name, container_name)


def parse_range(
    params: Mapping[str, str], now_ns: int, max_range_seconds: int,
    default_seconds: int | None = None, start_name: str = "start_time",
) -> tuple[int, int]:
    """(start_ns, end_ns) from start_time/end_time; end defaults to now, start to
    `default_seconds` before the end when given."""
    end_ns = _time(params, "end_time") if _given(params, "end_time") else now_ns
    if _given(params, start_name):
        start_ns = _time(params, start_name)
    elif default_seconds is not None:
        start_ns = end_ns - default_seconds * NS_PER_SECOND
    else:
        raise ParameterError(start_name, f"missing required query parameter '{start_name}'")
    if start_ns >= end_ns:
        raise ParameterError(start_name, f"{start_name} must be before end_time (end_time defaults to now)")
    if end_ns - start_ns > max_range_seconds * NS_PER_SECOND:
        raise ParameterError(
            "end_time", f"time range longer than {max_range_seconds} seconds (QUERY_MAX_RANGE_SECONDS)"
        )
    return start_ns, end_ns


def parse_line_filter(params: Mapping[str, str]) -> LineFilter:
    line_filter = LineFilter(params.get("contains"), params.get("regex"), params.get("stream"))
    line_filter.predicate()  # validates (FilterError is a ParameterError): the client's to fix, now
    return line_filter


def parse_time(params: Mapping[str, str], name: str) -> int | None:
    return _time(params, name) if _given(params, name) else None


def _limit(params: Mapping[str, str]) -> int | None:
    if not _given(params, "limit"):
        return None
    text = params["limit"].strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ParameterError("limit", f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _direction(params: Mapping[str, str]) -> Direction:
    direction = params.get("direction", "forward").strip() or "forward"
    try:
        return Direction(direction)
    except ValueError:
        raise ParameterError("direction", f"expected forward or backward, got {direction!r}") from None


def _bool(params: Mapping[str, str], name: str) -> bool:
    text = params.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParameterError(name, f"expected true or false, got {text!r}")


def _require(params: Mapping[str, str], name: str) -> None:
    if not _given(params, name):
        raise ParameterError(name, f"missing required query parameter '{name}'")


def _given(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    return isinstance(value, str) and bool(value.strip())


def _optional(params: Mapping[str, str], name: str) -> str | None:
    if name in params and not _given(params, name):
        raise ParameterError(name, f"'{name}' is empty: give a value or leave the parameter out")
    return params[name] if name in params else None


def _time(params: Mapping[str, str], name: str) -> int:
    try:
        return parse_rfc3339_ns(params[name].strip())
    except TimestampError as error:
        raise ParameterError(name, f"{error} (expected RFC 3339, e.g. 2018-05-07T00:00:00.000Z)") from None
