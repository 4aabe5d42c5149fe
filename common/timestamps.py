"""Nanosecond timestamps: RFC 3339 text <-> integer nanoseconds since the Unix epoch.

Python's datetime stops at microseconds, and container runtimes stamp lines in nanoseconds, so
times travel through the pipeline as int nanoseconds and are parsed and formatted here.
"""

from __future__ import annotations

import calendar
import functools
import re
import time

NS_PER_SECOND = 1_000_000_000
# Cassandra bigint and the int64 nanosecond range both end in 2262; 1970 keeps buckets non-negative.
MIN_NS = 0
MAX_NS = 2**63 - 1

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?"
)
_OUT_OF_RANGE = "timestamp outside 1970-01-01T00:00:00Z .. 2262-04-11T23:47:16Z"
# An integer `date` this large cannot be seconds (year 5138): fluent-bit's epoch_ms format.
_EPOCH_MS_THRESHOLD = 10**11


class TimestampError(ValueError):
    """A timestamp that is not RFC 3339 or lies outside the storable range."""


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(date: str, clock: str, offset: str) -> int:
    """Seconds since the epoch of a whole second; cached because a batch shares few seconds."""
    try:
        struct = time.strptime(f"{date}T{clock}", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise TimestampError(f"not a valid date and time: {date}T{clock}") from None
    seconds = calendar.timegm(struct)
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise TimestampError(f"not a valid UTC offset: {offset}")
        seconds -= sign * (hours * 3600 + minutes * 60)
    return seconds


def parse_rfc3339_ns(text: str) -> int:
    """'2018-05-03T12:04:57.094408152Z' -> nanoseconds since the epoch.

    Offsets are honoured; without one (fluent-bit's java_sql_timestamp) the time is taken as UTC.
    """
    # Fast path for the shape container runtimes write: UTC with 1 to 9 fraction digits (Go's
    # RFC3339Nano, used by Docker, trims trailing zeros). Every line of a batch shares few seconds,
    # so the whole-second part is a dict lookup and the fraction one int(). (records._to_rows
    # inlines this same path.)
    length = len(text)
    if 21 < length < 31 and text[19] == "." and text[-1] == "Z":
        fraction = text[20:-1]
        if fraction.isdigit() and fraction.isascii():
            second_ns = UTC_SECOND_NS.get(text[:19])
            if second_ns is None:
                second_ns = _cache_utc_second(text[:19])
            if second_ns is not None:
                return second_ns + int(fraction) * FRACTION_SCALE[length]
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise TimestampError(f"not an RFC 3339 timestamp: {text[:64]!r}")
    date, clock, fraction, offset = match.groups()
    offset = offset or "Z"
    ns = _epoch_seconds(date, clock, offset) * NS_PER_SECOND
    if fraction:
        ns += int(fraction.ljust(9, "0"))
    return check_range(ns)


# Nanoseconds per unit of the fraction, by the length of a `YYYY-MM-DDTHH:MM:SS.<fraction>Z` text.
FRACTION_SCALE = {length: 10 ** (30 - length) for length in range(22, 31)}
# "YYYY-MM-DDTHH:MM:SS" -> ns of that UTC second, for valid seconds whose every nanosecond is in
# range (so a hit needs no more checks). Filled by parse_rfc3339_ns, emptied when it grows large.
UTC_SECOND_NS: dict[str, int] = {}
_SECOND_CACHE_SIZE = 4096


def _cache_utc_second(date_and_clock: str) -> int | None:
    """The second's ns once validated and cached; None (slow path) for one that cannot be cached."""
    if not _RFC3339.fullmatch(date_and_clock + "Z"):
        return None
    try:
        ns = _epoch_seconds(date_and_clock[:10], date_and_clock[11:], "Z") * NS_PER_SECOND
    except TimestampError:
        return None
    if not MIN_NS <= ns <= MAX_NS - (NS_PER_SECOND - 1):
        return None
    if len(UTC_SECOND_NS) >= _SECOND_CACHE_SIZE:
        UTC_SECOND_NS.clear()
    UTC_SECOND_NS[date_and_clock] = ns
    return ns


def epoch_seconds_to_ns(seconds: float) -> int:
    """fluent-bit's `date` (float seconds, microsecond precision) -> nanoseconds."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise TimestampError(f"not a finite number of seconds: {seconds}")
    if abs(seconds) > MAX_NS // NS_PER_SECOND + 1:  # also keeps seconds * 10**6 finite (1e303 would not be)
        raise TimestampError(_OUT_OF_RANGE)
    # A double holds ~16 significant digits: rounding to microseconds undoes the float noise.
    return check_range(round(seconds * 1_000_000) * 1000)


def date_value_to_ns(value: float | int | str) -> int:
    """fluent-bit's `date` in any json_date_format: double/epoch seconds, epoch_ms, iso8601, java_sql."""
    if isinstance(value, str):
        return parse_rfc3339_ns(value)
    if isinstance(value, int) and abs(value) >= _EPOCH_MS_THRESHOLD:
        return check_range(value * 1_000_000)
    return epoch_seconds_to_ns(value)


def check_range(ns: int) -> int:
    if not MIN_NS <= ns <= MAX_NS:
        raise TimestampError(_OUT_OF_RANGE)
    return ns


@functools.lru_cache(maxsize=4096)
def _second_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))


def format_rfc3339_ns(ns: int) -> str:
    """Nanoseconds -> RFC 3339 UTC with the fraction's trailing zeros trimmed ('...:00.1Z').

    Once per row of every GET /query answer: the second's text is cached, the fraction is one
    %-format and one rstrip."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    if fraction:
        return _second_prefix(seconds) + ("%09d" % fraction).rstrip("0") + "Z"
    return _second_prefix(seconds)[:-1] + "Z"


def now_ns() -> int:
    return time.time_ns()
