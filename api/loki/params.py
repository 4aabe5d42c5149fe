"""Loki's request parameters -> validated values (pure: no I/O). The rules are Loki's own
(pkg/loghttp): times as nanoseconds, seconds (10 digits or fewer, or with a fraction) or RFC 3339;
`step` as seconds or a duration; `direction` forward or backward, backward by default."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

import falcon

from common.errors import ParameterError
from common.log_store import Direction
from common.logql import parse_duration
from common.timestamps import NS_PER_SECOND, TimestampError, parse_rfc3339_ns

DEFAULT_LIMIT = 100
DEFAULT_RANGE_SECONDS = 3600  # Loki's `since` default for queries
DEFAULT_LABELS_RANGE_SECONDS = 6 * 3600  # and for labels, label values and series

MAX_TIME_NS = 2**63 - 1

Params = Mapping[str, str | list[str]]


def request_params(req: falcon.Request) -> dict[str, str | list[str]]:
    """The query string's parameters and, for a form-encoded POST, the body's (Loki accepts both)."""
    params: dict[str, str | list[str]] = dict(req.params)
    if req.method == "POST" and (req.content_type or "").startswith(falcon.MEDIA_URLENCODED):
        body = req.bounded_stream.read().decode("utf-8", errors="replace")
        for name, value in falcon.uri.parse_query_string(body, keep_blank=True).items():
            params[name] = value
    return params


def single(params: Params, name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list):
        raise ParameterError(name, f"'{name}' given more than once: give it once")
    return value.strip() if isinstance(value, str) and value.strip() else None


def many(params: Params, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        value = params.get(name)
        values += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return [value for value in values if value.strip()]


def required(params: Params, name: str) -> str:
    value = single(params, name)
    if value is None:
        raise ParameterError(name, f"missing required parameter '{name}'")
    return value


def loki_time(text: str, name: str) -> int:
    """ns since the epoch, read as Loki reads a time parameter."""
    value = _number_time(text)
    if value is None:
        try:
            value = parse_rfc3339_ns(text)
        except TimestampError:
            raise ParameterError(
                name, f"cannot parse {text!r}: expected nanoseconds since the epoch, seconds (e.g. 1700000000.5) "
                      "or RFC 3339 (e.g. 2024-05-07T00:00:00Z)") from None
    if not 0 <= value <= MAX_TIME_NS:
        raise ParameterError(name, f"{text!r} is outside the times this server stores (1970 to 2262)")
    return value


def _number_time(text: str) -> int | None:
    if "." in text:
        seconds = _decimal(text)
        if seconds is not None:
            return int(seconds * NS_PER_SECOND)
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdigit():
        value = int(text)
        return value * NS_PER_SECOND if len(text) <= 10 else value
    return None


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and abs(value) < 10**12 else None


def time_range(params: Params, now_ns: int, max_range_seconds: int, default_seconds: int) -> tuple[int, int]:
    """(start_ns, end_ns): end defaults to now, start to `default_seconds` before the end."""
    end_text, start_text = single(params, "end"), single(params, "start")
    end_ns = loki_time(end_text, "end") if end_text is not None else now_ns
    if start_text is not None:
        start_ns = loki_time(start_text, "start")
    else:
        since = single(params, "since")
        since_ns = _duration(since, "since") if since is not None else default_seconds * NS_PER_SECOND
        start_ns = min(end_ns, now_ns) - since_ns
    if end_ns < start_ns:
        raise ParameterError("end", "end timestamp must not be before start time")
    if end_ns - start_ns > max_range_seconds * NS_PER_SECOND:
        raise ParameterError(
            "start", f"time range longer than {max_range_seconds} seconds (QUERY_MAX_RANGE_SECONDS): narrow it")
    return start_ns, end_ns


def instant_time(params: Params, now_ns: int) -> int:
    text = single(params, "time")
    return loki_time(text, "time") if text is not None else now_ns


def limit(params: Params, max_rows: int) -> int:
    text = single(params, "limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ParameterError("limit", f"expected a whole number >= 1, got {text!r}")
    if int(text) > max_rows:
        raise ParameterError("limit", f"max entries limit per query exceeded, limit > QUERY_MAX_ROWS ({int(text)} > "
                                      f"{max_rows})")
    return int(text)


def direction(params: Params) -> Direction:
    text = (single(params, "direction") or "backward").lower()
    try:
        return Direction(text)
    except ValueError:
        raise ParameterError("direction", f"expected forward or backward, got {text!r}") from None


def step_ns(params: Params, start_ns: int, end_ns: int) -> int:
    """The step: Loki's default is the range / 250, at least a second."""
    text = single(params, "step")
    if text is None:
        return max((end_ns - start_ns) // NS_PER_SECOND // 250, 1) * NS_PER_SECOND
    step = _duration(text, "step")
    if step <= 0:
        raise ParameterError("step", "zero or negative query resolution step widths are not accepted: "
                                     "try a positive integer")
    return step


def _duration(text: str, name: str) -> int:
    seconds = _decimal(text)
    if seconds is not None:
        return int(seconds * NS_PER_SECOND)
    value = parse_duration(text, extra_units=True)
    if value is None:
        raise ParameterError(name, f"cannot parse {text!r}: expected seconds (e.g. 15) or a duration (e.g. 60000ms, 1m)")
    return value
